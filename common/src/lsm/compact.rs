//! Flushes and merges: writing the memtable, or a window of runs, as a new
//! run, and installing it with the manifest in one small atomic write. A
//! flush and a merge take separate turns, so one runs beside the other;
//! only their installs serialise (on `state`).

use std::sync::Arc;

use super::cursor;
use super::entry;
use super::memtable::neighbours_to_merge;
use super::run::{self, Run, RunWriter};
use super::snapshot::Version;
use super::{layout, turn, Installing, Lsm, LsmError, Manifest, Slice};

impl Lsm {
    /// Writes the memtable as of now as a run and installs it, with the last
    /// log position it covers. Returns whether there was anything to flush.
    pub fn flush(&self) -> Result<bool, LsmError> {
        let _turn = turn(&self.flushing);
        #[cfg(test)]
        match self.broken.load(std::sync::atomic::Ordering::Relaxed) {
            1 => return Err(LsmError::corrupt(b"(test)", "a flush made to fail")),
            2 => panic!("a flush made to panic"),
            _ => {}
        }
        let version = {
            let mut state = self.state.lock().expect("lsm state");
            let version = self.current.lock().expect("lsm version").clone();
            if let Some(s) = version.slices.first() {
                state.flushing_through = s.last;
            }
            version
        };
        let Some(through) = version.slices.first().map(|s| s.last) else {
            return Ok(false);
        };
        let id = self.next_run_id()?;
        let keys: usize = version.slices.iter().map(|s| s.len()).sum();
        // Only the memtable's slices: runs are older, so this is no bottom
        // unless there are none.
        let bottom = version.runs.is_empty();
        let mut writer = RunWriter::new(&self.tree, &self.config, id, keys);
        let never = std::sync::atomic::AtomicBool::new(false);
        let meta = self.or_discard(id, || {
            merge_into(&version.slices, &[], bottom, &mut writer, &never)?;
            writer.finish()
        })?;
        self.or_discard(id, || {
            self.install(|manifest, next: &mut Version| {
                manifest.flushed_through = through;
                if let Some(m) = &meta {
                    manifest.runs.insert(0, m.id);
                }
                next.slices.retain(|s| s.first > through);
                Ok((sled::Batch::default(), meta.clone(), 0..0))
            })
        })?;
        Ok(true)
    }

    /// Merges the newest pair of neighbouring memtable slices that is due
    /// ([`neighbours_to_merge`]), outside every lock, and installs the
    /// result unless a flush took them meanwhile. Returns whether it did.
    /// The flush thread's, not the writer's: a batch only adds its slice.
    pub fn merge_slices(&self) -> bool {
        let _turn = turn(&self.flushing);
        let (version, due) = self.slices_to_merge();
        let Some(i) = due else {
            return false;
        };
        let (newer, older) = (&version.slices[i], &version.slices[i + 1]);
        let merged = Arc::new(Slice::merge(newer, older));
        let state = self.state.lock().expect("lsm state");
        let mut current = self.current.lock().expect("lsm version");
        // Newer batches' slices may have come in front meanwhile.
        let Some(at) = current.slices.iter().position(|s| Arc::ptr_eq(s, newer)) else {
            return false;
        };
        let still = current
            .slices
            .get(at + 1)
            .is_some_and(|s| Arc::ptr_eq(s, older) && s.last > state.flushing_through);
        if !still {
            return false;
        }
        let mut next = (**current).clone();
        next.slices.splice(at..at + 2, [merged]);
        *current = Arc::new(next);
        true
    }

    /// Whether memtable slices are due to merge ([`Lsm::merge_slices`]).
    pub fn slices_due(&self) -> bool {
        self.slices_to_merge().1.is_some()
    }

    /// The current version, and the pair of its slices due to merge.
    fn slices_to_merge(&self) -> (Arc<Version>, Option<usize>) {
        let version = self.current.lock().expect("lsm version").clone();
        let frozen = self.state.lock().expect("lsm state").flushing_through;
        let due = neighbours_to_merge(&version.slices, frozen);
        (version, due)
    }

    /// Forgets everything the engine holds, for a caller whose keys
    /// changed meaning (a store upgraded by deriving its engine again from
    /// its log): in one atomic write, the manifest lists no run and nothing
    /// flushed, and the batch logs of layouts 6 and 7 are deleted; the
    /// runs' blocks are deleted after, as replaced runs are. The caller then
    /// commits its whole log again. Run again after a kill, it finds
    /// nothing more to forget.
    pub fn discard(&self) -> Result<(), LsmError> {
        let _turns = (turn(&self.flushing), turn(&self.merging));
        self.install(|manifest, version| {
            manifest.flushed_through = 0;
            manifest.runs.clear();
            version.slices.clear();
            let mut batch = sled::Batch::default();
            for k in self.tree.scan_prefix([layout::BATCH_LOG]).keys() {
                batch.remove(k?);
            }
            Ok((batch, None, 0..version.runs.len()))
        })?;
        self.state.lock().expect("lsm state").flushing_through = 0;
        Ok(())
    }

    /// `work` on run `id`; when it fails, the blocks it wrote are deleted
    /// at once (best effort: the next writable open deletes what is left), so a
    /// maintenance thread retrying on a full disk does not leave a partial
    /// run behind on every try.
    fn or_discard<T>(
        &self,
        id: u64,
        work: impl FnOnce() -> Result<T, LsmError>,
    ) -> Result<T, LsmError> {
        let done = work();
        if done.is_err() {
            let _ = run::delete_id(&self.tree, id);
        }
        done
    }

    /// Merges the newest window of `merge_width` neighbouring runs of one
    /// size tier (or smaller) into one, if there is such a window.
    pub fn merge(&self) -> Result<bool, LsmError> {
        self.merge_unless(&std::sync::atomic::AtomicBool::new(false))
    }

    /// [`Lsm::merge`], given up (its partial run deleted, `Ok(false)`) as
    /// soon as `stop` is set: a store closing does not wait for a merge of
    /// gigabytes.
    pub fn merge_unless(&self, stop: &std::sync::atomic::AtomicBool) -> Result<bool, LsmError> {
        let _turn = turn(&self.merging);
        let version = self.current.lock().expect("lsm version").clone();
        let Some(window) = pick_window(&version.runs, self.config.merge_width) else {
            return Ok(false);
        };
        let inputs: Vec<Arc<Run>> = version.runs[window.clone()].to_vec();
        let bottom = window.end == version.runs.len();
        let id = self.next_run_id()?;
        let keys = inputs.iter().map(|r| r.meta.entries as usize).sum();
        let mut writer = RunWriter::new(&self.tree, &self.config, id, keys);
        let meta = self.or_discard(id, || {
            if !merge_into(&[], &inputs, bottom, &mut writer, stop)? {
                return Err(LsmError::Stopped);
            }
            writer.finish()
        });
        let meta = match meta {
            Err(LsmError::Stopped) => return Ok(false),
            m => m?,
        };
        let ids: Vec<u64> = inputs.iter().map(|r| r.meta.id).collect();
        self.or_discard(id, || {
            self.install(|manifest, _| {
                // A flush may have installed runs before the window meanwhile.
                let at = manifest.runs.iter().position(|id| *id == ids[0]);
                let Some(at) = at.filter(|&at| manifest.runs[at..].starts_with(&ids)) else {
                    return Err(LsmError::corrupt(
                        layout::MANIFEST,
                        "a merge's runs are no longer listed together",
                    ));
                };
                manifest.runs.drain(at..at + ids.len());
                if let Some(m) = &meta {
                    manifest.runs.insert(at, m.id);
                }
                Ok((sled::Batch::default(), meta.clone(), at..at + ids.len()))
            })
        })?;
        Ok(true)
    }

    /// A flush (or merge) killed after writing its run, before installing it.
    #[cfg(test)]
    pub(crate) fn write_without_install(
        &self,
        merge: bool,
        blocks_only: bool,
    ) -> Result<(), LsmError> {
        let version = self.current.lock().expect("lsm version").clone();
        let id = self.next_run_id()?;
        let mut writer = RunWriter::new(&self.tree, &self.config, id, 64);
        let never = std::sync::atomic::AtomicBool::new(false);
        if blocks_only {
            // Killed between two groups of blocks: no metadata yet.
            merge_into(&version.slices, &version.runs, false, &mut writer, &never)?;
            writer.abandon()?;
            return Ok(());
        }
        if merge {
            if let Some(window) = pick_window(&version.runs, self.config.merge_width) {
                merge_into(&[], &version.runs[window], false, &mut writer, &never)?;
            }
        } else {
            merge_into(&version.slices, &[], false, &mut writer, &never)?;
        }
        writer.finish()?;
        Ok(())
    }

    /// A run id no run has had, recorded before any block is written
    /// under it.
    pub(super) fn next_run_id(&self) -> Result<u64, LsmError> {
        let mut state = self.state.lock().expect("lsm state");
        let id = state.manifest.next_run + 1;
        self.tree.insert(layout::RUN_IDS, &id.to_be_bytes())?;
        state.manifest.next_run = id;
        Ok(id)
    }

    /// Writes the manifest `change` makes with its extra removals in one
    /// atomic batch, then installs the new run (and drops the replaced ones,
    /// `replaced` in the version's run list) in the version readers get.
    fn install(
        &self,
        change: impl FnOnce(&mut Manifest, &mut Version) -> Result<Installing, LsmError>,
    ) -> Result<(), LsmError> {
        // `state` keeps commits and other installs out until the swap, so
        // the version cloned here is still current then; `current` is not
        // held across the write, so readers never wait on sled.
        let mut state = self.state.lock().expect("lsm state");
        let mut manifest = state.manifest.clone();
        let mut next = (**self.current.lock().expect("lsm version")).clone();
        let (mut batch, meta, replaced) = change(&mut manifest, &mut next)?;
        batch.insert(layout::MANIFEST, postcard::to_allocvec(&manifest)?);
        self.tree.apply_batch(batch)?;
        state.manifest = manifest;
        let mut current = self.current.lock().expect("lsm version");
        let fresh = meta.map(|m| {
            Arc::new(Run::new(
                m,
                self.tree.clone(),
                self.cache.clone(),
                self.graveyard.clone(),
            ))
        });
        let at = if replaced.is_empty() {
            0
        } else {
            replaced.start
        };
        for old in next.runs.drain(replaced) {
            old.obsolete
                .store(true, std::sync::atomic::Ordering::Release);
        }
        if let Some(r) = fresh {
            next.runs.insert(at, r);
        }
        *current = Arc::new(next);
        drop(current);
        drop(state);
        // Installed: a failure from here on must not fail the install (its
        // caller would discard the run the manifest now lists). What is
        // not deleted now, no manifest lists: the next writable open
        // deletes it.
        if let Err(e) = self.bury() {
            tracing::warn!(error = %e, "the blocks of replaced runs were not deleted; the next open deletes them");
        }
        Ok(())
    }

    /// Deletes the blocks of replaced runs no reader holds any more.
    fn bury(&self) -> Result<(), LsmError> {
        #[cfg(test)]
        if self.broken.load(std::sync::atomic::Ordering::Relaxed) == 3 {
            return Err(LsmError::corrupt(b"(test)", "a deletion made to fail"));
        }
        let buried = self.buried.lock().expect("graveyard");
        while let Ok(meta) = buried.try_recv() {
            run::delete(&self.tree, &meta)?;
        }
        Ok(())
    }
}

/// Writes the merge of `slices` then `runs` (all newest first) as one run;
/// `false` when `stop` was set before it was all written.
fn merge_into(
    slices: &[Arc<Slice>],
    runs: &[Arc<Run>],
    bottom: bool,
    writer: &mut RunWriter<'_>,
    stop: &std::sync::atomic::AtomicBool,
) -> Result<bool, LsmError> {
    let mut raw = cursor::Raw::new(slices, runs)?;
    let (mut key, mut combiner) = (Vec::new(), entry::Combiner::default());
    let mut n = 0u32;
    while raw.next_into(&mut key, &mut combiner)? {
        n = n.wrapping_add(1);
        if n.is_multiple_of(4096) && stop.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(false);
        }
        if let Some(e) = combiner.finish(bottom) {
            writer.push(&key, e)?;
        }
    }
    Ok(true)
}

/// The newest window of `width` neighbouring runs, each no more than twice
/// the size of the smallest of them (one size tier).
fn pick_window(runs: &[Arc<Run>], width: usize) -> Option<std::ops::Range<usize>> {
    if runs.len() < width {
        return None;
    }
    (0..=runs.len() - width)
        .find(|&i| {
            let sizes: Vec<u64> = runs[i..i + width]
                .iter()
                .map(|r| r.meta.bytes.max(1))
                .collect();
            let small = *sizes.iter().min().expect("width > 0");
            sizes.iter().all(|s| *s <= 2 * small)
        })
        .map(|i| i..i + width)
        // Too many runs of mixed sizes: merge the newest ones anyway.
        .or_else(|| (runs.len() >= 3 * width).then_some(0..width))
}
