//! Reading one version of the engine: the memtable's slices and the runs
//! as they were when the snapshot was taken.

use std::ops::Bound;
use std::sync::Arc;

use super::entry::{self, Entry, Value};
use super::run::Run;
use super::{LsmError, Range, Slice};

/// The frame each run's last read found its key in ([`Snapshot::get_many`]).
struct Near {
    frames: Vec<Option<Arc<super::block::Block>>>,
}

/// One version of the engine: the memtable's slices and the runs, each
/// newest first (every slice is newer than every run).
#[derive(Clone, Default)]
pub(super) struct Version {
    pub(super) slices: Vec<Arc<Slice>>,
    pub(super) runs: Vec<Arc<Run>>,
}

/// A consistent read of the engine: every read through it sees the same
/// version, whatever is written, flushed or merged meanwhile.
#[derive(Clone)]
pub struct Snapshot {
    pub(super) version: Arc<Version>,
    pub(super) bloomed: fn(&[u8]) -> bool,
}

impl Snapshot {
    /// What `key` holds.
    pub fn get(&self, key: &[u8]) -> Result<Option<Value>, LsmError> {
        self.get_near(key, None, true)
    }

    /// What each of `keys` holds, in their order. Ascending keys read
    /// fastest: each run keeps the frame its last key was found in
    /// ([`super::run::Run::get_near`]), so keys near each other — a page's
    /// records, by number — share one lookup of their frame. `fill`: what
    /// is decoded joins the block cache (a bulk read passes `false`: it
    /// reads what the cache holds and leaves it as it was).
    pub fn get_many<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        fill: bool,
    ) -> Result<Vec<Option<Value>>, LsmError> {
        let mut near = Near {
            frames: vec![None; self.version.runs.len()],
        };
        keys.iter()
            .map(|k| self.get_near(k.as_ref(), Some(&mut near), fill))
            .collect()
    }

    /// What `key` holds, each run looking first in its frame in `near`
    /// when given (a lone read keeps none: nothing to allocate).
    fn get_near(
        &self,
        key: &[u8],
        mut near: Option<&mut Near>,
        fill: bool,
    ) -> Result<Option<Value>, LsmError> {
        let mut entries: Vec<Entry> = Vec::new();
        let done = |entries: &Vec<Entry>| {
            matches!(
                entries.last(),
                Some(Entry::Put(_) | Entry::Delete | Entry::Count(_))
            )
        };
        let hashed = (self.bloomed)(key).then(|| super::bloom::hash(key));
        for s in &self.version.slices {
            if let Some(e) = s.get(key, hashed) {
                entries.push(e.to_owned());
                if done(&entries) {
                    return Ok(entry::resolve(&entries));
                }
            }
        }
        for (i, r) in self.version.runs.iter().enumerate() {
            let mut none = None;
            let frame = match near.as_deref_mut() {
                Some(n) => &mut n.frames[i],
                None => &mut none,
            };
            if let Some(e) = r.get_near(key, hashed, frame, fill)? {
                entries.push(e);
                if done(&entries) {
                    break;
                }
            }
        }
        Ok(entry::resolve(&entries))
    }

    /// The keys between `lo` and `hi` that hold something, ascending (or
    /// descending with `reverse`).
    pub fn range(&self, lo: Bound<Vec<u8>>, hi: Bound<Vec<u8>>, reverse: bool) -> Range {
        Range::new(&self.version.slices, &self.version.runs, lo, hi, reverse)
    }

    /// The keys that start with `prefix`, ascending.
    pub fn prefix(&self, prefix: &[u8]) -> Range {
        let hi = prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        self.range(Bound::Included(prefix.to_vec()), hi, false)
    }

    /// Runs in force, and memtable slices.
    pub fn shape(&self) -> (usize, usize) {
        (self.version.runs.len(), self.version.slices.len())
    }
}

/// The first key after every key starting with `prefix` (none if all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}
