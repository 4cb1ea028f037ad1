//! Recovery at open (issue 36): the event log is the write-ahead log. The
//! engine's runs hold what the event log held up to the chunk
//! [`crate::lsm::Lsm::flushed_through`] names; what it holds after that is
//! decoded, folded and derived again — by the code [`Store::apply_batch`]
//! runs — and committed to the memtable. Nothing is written, so a store
//! opened to read recovers the same way.
//!
//! A binary whose derivation differs would recover a different memtable
//! than the one that was served before: the store records the
//! [`FOLD_VERSION`] it was written with, and recovering another's events is
//! refused ([`StoreError::Fold`]).

use super::apply::derive;
use super::listing::Input;
use super::*;

/// Events recovered into one memtable slice: about a batch's.
const EVENTS_PER_SLICE: usize = 10_000;

/// The engine's position of an event-log chunk. Chunks are numbered from
/// 0 and the engine's positions from 1 (0: nothing flushed yet).
pub(super) fn position(chunk: u64) -> u64 {
    chunk + 1
}

/// The position of the chunk before `next`: what a store whose next chunk
/// is `next` has logged up to (0 before any).
#[cfg(test)]
pub(super) fn position_after(next: u64) -> u64 {
    next
}

impl Store {
    /// Derives the memtable again from the event-log chunks after the
    /// engine's last flush (numbering new records from the engine's count
    /// there); returns how many events it folded, and the next number.
    /// A writable store flushes as it goes, as ingest does: an engine
    /// derived again whole ([`crate::lsm::Lsm::discard`]) fits its bound.
    pub(super) fn recover(&self, path: &str) -> Result<(u64, Numbering), StoreError> {
        // The first chunk after the flushed position.
        let from = self.lsm.flushed_through();
        let pending = || {
            self.tree
                .range(keys::event_log(from)..keys::event_log_end())
        };
        let written_by = fold_version(&self.tree)?;
        if written_by != Some(FOLD_VERSION) {
            if pending().next().is_some() {
                return Err(StoreError::Fold {
                    path: path.to_owned(),
                    found: written_by.map_or_else(|| "none".into(), |v| format!("v{v}")),
                });
            }
            if self.access == Access::Write {
                self.tree
                    .insert(keys::META_FOLD, &FOLD_VERSION.to_be_bytes())?;
            }
        }
        let mut touched: BTreeMap<String, Touched> = BTreeMap::new();
        // Each slice is folded against the engine as the slices before it
        // left it.
        let mut view = self.view();
        let mut numbering = Numbering(view.numbered()?);
        let (mut first, mut last, mut events, mut folded) = (None, 0, 0, 0);
        for kv in pending() {
            let (k, v) = kv?;
            let chunk = keys::read_event_log(&k)
                .ok_or_else(|| StoreError::corrupt(&k, "bad event-log key"))?;
            let entries = read::log_chunk(&k, &v)?;
            for (index, e) in entries.iter().enumerate() {
                let listing = self.listing.get();
                let input = Input::decode(listing, None, Some(&e.raw)).map_err(|(_, r)| {
                    StoreError::corrupt(&k, format!("entry {index} no longer decodes: {r}"))
                })?;
                let effect = self.fold_input(&view, &mut touched, &mut numbering, &input)?;
                if effect != e.effect {
                    return Err(StoreError::corrupt(
                        &k,
                        format!(
                            "entry {index} was folded as {:?} and is now folded as {:?}",
                            e.effect, effect
                        ),
                    ));
                }
                let at = LogRef {
                    chunk,
                    index: index as u32,
                };
                touched
                    .get_mut(input.record_id())
                    .expect("folded above")
                    .log
                    .push(at);
            }
            first.get_or_insert(chunk);
            last = chunk;
            events += entries.len();
            folded += entries.len() as u64;
            if events >= EVENTS_PER_SLICE {
                let derived = derive(&touched, self.names.naming(), self.listing.get())?;
                self.names.commit(derived.names);
                let first = first.take().expect("set above");
                self.lsm
                    .commit(position(first), position(last), derived.ops);
                touched.clear();
                view = self.view();
                events = 0;
                if self.access == Access::Write {
                    self.maintain();
                    self.check_maintenance()?;
                }
            }
        }
        if let Some(first) = first {
            let derived = derive(&touched, self.names.naming(), self.listing.get())?;
            self.names.commit(derived.names);
            self.lsm
                .commit(position(first), position(last), derived.ops);
        }
        Ok((folded, numbering))
    }
}

/// The fold version the store was written with (none before layout 8).
fn fold_version(tree: &sled::Tree) -> Result<Option<u32>, StoreError> {
    tree.get(keys::META_FOLD)?
        .map(|v| {
            v.as_ref()
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| StoreError::corrupt(keys::META_FOLD, "bad fold version"))
        })
        .transpose()
}
