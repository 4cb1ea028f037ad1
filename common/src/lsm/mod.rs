//! The storage engine of store v3 (issue 24): a log-structured merge tree
//! whose durable medium is sled, used for what sled does cheaply — a few
//! large values per atomic batch — and never as a per-entry index. The
//! store (layout v7) keeps its records, index lists and counts in it.
//!
//! - **One log write per batch.** [`Lsm::stage`] puts a batch's operations
//!   (puts, deletes, count deltas) into the caller's `sled::Batch` as one
//!   compressed batch log (`L` seq), beside whatever the caller adds — its
//!   checkpoints — so they land in one atomic write. [`Lsm::commit`] then
//!   makes them visible.
//! - **A memtable** of immutable sorted slices, one per batch, merged with
//!   their neighbours as they accumulate (a binary counter: O(log n) slices).
//!   At open it is rebuilt from the batch logs the manifest has not covered.
//! - **Immutable sorted runs** ([`run`]): a flush writes the memtable as a
//!   run, then installs it and drops the batch logs it covers in ONE small
//!   atomic write of the manifest (`M`). Merges combine neighbouring runs of
//!   similar size (size-tiered) and install the result the same way; a
//!   flush or merge killed at any point leaves the old manifest, and its
//!   runs, in force (the unlisted run is deleted at the next writable
//!   open; [`Lsm::open_read_only`] deletes nothing).
//! - **Reads** take a [`Snapshot`]: one version of the memtable and runs,
//!   held for as long as the reader wants, so a page, its count and its
//!   marker come from the same state.

mod bloom;
mod chunked;
mod cursor;
pub mod entry;
mod memtable;
mod run;
mod snapshot;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

pub use cursor::Range;
pub use entry::{Entry, Value};
use memtable::push_slice;
pub use memtable::{Ops, Slice};
use run::{BlockCache, Run, RunMeta, RunWriter};
use snapshot::Version;
pub use snapshot::{prefix_end, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("store i/o: {0}")]
    Sled(#[from] sled::Error),
    #[error("store holds an undecodable value under key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// A merge given up because its store is closing.
    #[error("the merge was stopped")]
    Stopped,
}

impl LsmError {
    fn corrupt(key: &[u8], reason: impl std::fmt::Display) -> LsmError {
        LsmError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_string(),
        }
    }
}

impl From<postcard::Error> for LsmError {
    fn from(e: postcard::Error) -> LsmError {
        LsmError::corrupt(b"(postcard)", e)
    }
}

/// The engine's keys in the tree it shares with its caller: upper-case
/// first bytes (the store's own keyspaces are lower-case).
pub mod layout {
    /// `L` seq part → a batch's operations (postcard, zstd), in parts
    /// ([`super::chunked`])
    pub const BATCH_LOG: u8 = b'L';
    /// `R` run block → a run's block (zstd)
    pub const RUN_BLOCK: u8 = b'R';
    /// `S` run part → its metadata (postcard), in parts
    pub const RUN_META: u8 = b'S';
    /// `M` → the manifest (postcard)
    pub const MANIFEST: &[u8] = b"M";
    /// `N` → the highest run id handed out (u64): written before a run's
    /// first block, so an id is never used twice, even by a run killed
    /// before any manifest listed it.
    pub const RUN_IDS: &[u8] = b"N";

    pub fn batch_log(seq: u64) -> Vec<u8> {
        [&[BATCH_LOG][..], &seq.to_be_bytes()].concat()
    }

    pub fn run_block(run: u64, block: u32) -> Vec<u8> {
        [&[RUN_BLOCK][..], &run.to_be_bytes(), &block.to_be_bytes()].concat()
    }

    pub fn run_meta(run: u64) -> Vec<u8> {
        [&[RUN_META][..], &run.to_be_bytes()].concat()
    }

    pub fn read_seq(k: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
    }
}

/// The engine's settings.
#[derive(Clone)]
pub struct Config {
    /// Raw bytes per run block before it is cut (compressed, a block is
    /// about a third of this).
    pub block_bytes: usize,
    /// Decoded blocks kept in memory.
    pub cache_bytes: usize,
    /// A flush is due once the memtable holds this many bytes.
    pub memtable_bytes: usize,
    /// This many runs of one size tier are merged into one.
    pub merge_width: usize,
    /// The keys point reads ask for, which runs' Bloom filters hold.
    pub bloomed: fn(&[u8]) -> bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            // About 16-24 KiB compressed: what sled reads and writes best
            // (docs/benchmarks.md, "Store v3").
            block_bytes: 48 << 10,
            cache_bytes: 128 << 20,
            memtable_bytes: 64 << 20,
            merge_width: 4,
            bloomed: |_| true,
        }
    }
}

/// What the manifest lists: the runs in force, newest first, and the last
/// batch whose operations they hold.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    runs: Vec<u64>,
    flushed_through: u64,
    next_run: u64,
}

struct State {
    manifest: Manifest,
    /// The next batch log's number.
    next_seq: u64,
    /// A flush is writing the batches up to this one: newer slices must not
    /// merge into theirs, or the flush would drop them with its own.
    flushing_through: u64,
}

pub struct Lsm {
    tree: sled::Tree,
    config: Config,
    /// The memtable's bound (the config's, until set).
    memtable_bytes: std::sync::atomic::AtomicUsize,
    cache: Arc<BlockCache>,
    /// Writes, flushes and merges install versions one at a time.
    state: Mutex<State>,
    current: Mutex<Arc<Version>>,
    graveyard: std::sync::mpsc::Sender<RunMeta>,
    buried: Mutex<std::sync::mpsc::Receiver<RunMeta>>,
    /// One flush at a time, and one merge, from whichever thread; a flush
    /// runs beside a merge (only their installs take turns, on `state`),
    /// so ingest never waits for a merge.
    flushing: Mutex<()>,
    merging: Mutex<()>,
    /// Unit tests make flushes fail (1) or panic (2).
    #[cfg(test)]
    pub(crate) broken: std::sync::atomic::AtomicU8,
}

/// A lock that guards no data of its own (a turn to flush or merge): a
/// panic while it was held leaves nothing half-changed behind it.
fn turn(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What an install writes beside the manifest, the run it adds, and the
/// positions (in the run list) of the runs it replaces.
type Installing = (sled::Batch, Option<RunMeta>, std::ops::Range<usize>);

/// A batch staged into a sled batch, to be committed once that is written.
pub struct Staged {
    slice: Slice,
}

impl Lsm {
    /// Opens the engine over `tree`: the manifest's runs, and the memtable
    /// rebuilt from the batch logs after them. Runs no manifest lists (a
    /// flush or merge that did not finish: its blocks, with or without its
    /// metadata) are deleted.
    pub fn open(tree: sled::Tree, config: Config) -> Result<Lsm, LsmError> {
        Self::open_with(tree, config, true)
    }

    /// Opens the engine to read it only: nothing is deleted, and the caller
    /// never flushes or merges.
    pub fn open_read_only(tree: sled::Tree, config: Config) -> Result<Lsm, LsmError> {
        Self::open_with(tree, config, false)
    }

    fn open_with(tree: sled::Tree, config: Config, clean: bool) -> Result<Lsm, LsmError> {
        let mut manifest: Manifest = match tree.get(layout::MANIFEST)? {
            Some(v) => {
                postcard::from_bytes(&v).map_err(|e| LsmError::corrupt(layout::MANIFEST, e))?
            }
            None => Manifest::default(),
        };
        let cache = Arc::new(BlockCache::new(config.cache_bytes));
        let (graveyard, buried) = std::sync::mpsc::channel();
        let mut runs = Vec::new();
        for &id in &manifest.runs {
            let key = layout::run_meta(id);
            let v = chunked::get(&tree, &key)?.ok_or_else(|| {
                LsmError::corrupt(&key, "the manifest lists a run that is not stored")
            })?;
            let meta: RunMeta = postcard::from_bytes(&v).map_err(|e| LsmError::corrupt(&key, e))?;
            runs.push(Arc::new(Run::new(
                meta,
                tree.clone(),
                cache.clone(),
                graveyard.clone(),
            )));
        }
        if let Some(v) = tree.get(layout::RUN_IDS)? {
            let handed = layout::read_seq(&[&[0][..], &v].concat())
                .ok_or_else(|| LsmError::corrupt(layout::RUN_IDS, "bad run id"))?;
            manifest.next_run = manifest.next_run.max(handed);
        }
        if clean {
            let seen = run::delete_unlisted(&tree, &manifest.runs)?;
            manifest.next_run = manifest.next_run.max(seen);
        }
        let mut slices: Vec<Arc<Slice>> = Vec::new();
        let mut next_seq = manifest.flushed_through + 1;
        for kv in chunked::scan(&tree, layout::BATCH_LOG) {
            let (k, v) = kv?;
            let seq =
                layout::read_seq(&k).ok_or_else(|| LsmError::corrupt(&k, "bad batch log key"))?;
            if seq <= manifest.flushed_through {
                continue;
            }
            let raw = run::decompress(&k, &v, MAX_BATCH_LOG_BYTES)?;
            let ops: Ops = postcard::from_bytes(&raw).map_err(|e| LsmError::corrupt(&k, e))?;
            push_slice(&mut slices, Slice::of_batch(seq, ops), 0);
            next_seq = seq + 1;
        }
        Ok(Lsm {
            tree,
            memtable_bytes: config.memtable_bytes.into(),
            config,
            cache,
            state: Mutex::new(State {
                manifest,
                next_seq,
                flushing_through: 0,
            }),
            current: Mutex::new(Arc::new(Version { slices, runs })),
            graveyard,
            buried: Mutex::new(buried),
            flushing: Mutex::new(()),
            merging: Mutex::new(()),
            #[cfg(test)]
            broken: Default::default(),
        })
    }

    /// Puts a batch's log into `batch`. One writer: stage, apply the sled
    /// batch, then [`Lsm::commit`], before the next stage.
    pub fn stage(&self, ops: Ops, batch: &mut sled::Batch) -> Result<Staged, LsmError> {
        let seq = self.state.lock().expect("lsm state").next_seq;
        let raw = postcard::to_allocvec(&ops)?;
        let z = zstd::bulk::compress(&raw, 1).expect("zstd compresses in memory");
        chunked::put(batch, &layout::batch_log(seq), &z);
        Ok(Staged {
            slice: Slice::of_batch(seq, ops),
        })
    }

    /// Makes a staged batch visible, once its sled batch is written.
    pub fn commit(&self, staged: Staged) {
        let mut state = self.state.lock().expect("lsm state");
        state.next_seq = staged.slice.last + 1;
        let mut current = self.current.lock().expect("lsm version");
        // Taken out of `current`, so that the slices no snapshot holds are
        // ours alone and merge by moving their entries.
        let held = std::mem::take(&mut *current);
        let mut next = Arc::try_unwrap(held).unwrap_or_else(|v| (*v).clone());
        push_slice(&mut next.slices, staged.slice, state.flushing_through);
        *current = Arc::new(next);
    }

    /// The block cache's counted and real bytes ([`BlockCache::usage`]).
    pub fn cache_usage(&self) -> (usize, usize) {
        self.cache.usage()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: self.current.lock().expect("lsm version").clone(),
            bloomed: self.config.bloomed,
        }
    }

    /// Whether the memtable is over its bound.
    pub fn flush_due(&self) -> bool {
        self.memtable_bytes()
            >= self
                .memtable_bytes
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the memtable is past twice its bound: flushes fell behind.
    pub fn far_over_bound(&self) -> bool {
        self.memtable_bytes()
            >= 2 * self
                .memtable_bytes
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the memtable's bound.
    pub fn set_memtable_bytes(&self, bytes: usize) {
        self.memtable_bytes
            .store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes in the memtable.
    pub fn memtable_bytes(&self) -> usize {
        let v = self.current.lock().expect("lsm version").clone();
        v.slices.iter().map(|s| s.bytes).sum()
    }

    /// Writes the memtable as of now as a run and installs it, dropping the
    /// batch logs it covers. Returns whether there was anything to flush.
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
        let keys: usize = version.slices.iter().map(|s| s.entries.len()).sum();
        let mut writer = RunWriter::new(&self.tree, &self.config, id, keys);
        // Only the memtable's slices: runs are older, so this is no bottom
        // unless there are none.
        let bottom = version.runs.is_empty();
        let never = std::sync::atomic::AtomicBool::new(false);
        let meta = self.or_discard(id, || {
            merge_into(&version.slices, &[], bottom, &mut writer, &never)?;
            writer.finish()
        })?;
        self.or_discard(id, || {
            self.install(|manifest, next: &mut Version| {
                let flushed = manifest.flushed_through;
                manifest.flushed_through = through;
                if let Some(m) = &meta {
                    manifest.runs.insert(0, m.id);
                }
                next.slices.retain(|s| s.first > through);
                let mut batch = sled::Batch::default();
                let covered = layout::batch_log(flushed + 1)..layout::batch_log(through + 1);
                for k in self.tree.range(covered).keys() {
                    batch.remove(k?);
                }
                Ok((batch, meta.clone(), 0..0))
            })
        })?;
        Ok(true)
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
    fn write_without_install(&self, merge: bool, blocks_only: bool) -> Result<(), LsmError> {
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
    fn next_run_id(&self) -> Result<u64, LsmError> {
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
        self.bury()
    }

    /// Deletes the blocks of replaced runs no reader holds any more.
    fn bury(&self) -> Result<(), LsmError> {
        let buried = self.buried.lock().expect("graveyard");
        while let Ok(meta) = buried.try_recv() {
            run::delete(&self.tree, &meta)?;
        }
        Ok(())
    }
}

/// The largest batch log, decoded: far above any batch's (`max_batch`
/// events of at most 64 KiB each, and their index operations).
const MAX_BATCH_LOG_BYTES: usize = 1 << 30;

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
    let mut n = 0u32;
    while let Some((key, entries)) = raw.next_key()? {
        n = n.wrapping_add(1);
        if n.is_multiple_of(4096) && stop.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(false);
        }
        let refs: Vec<&Entry> = entries.iter().collect();
        if let Some(e) = entry::combine(&refs, bottom) {
            writer.push(&key, &e)?;
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
