//! Reading a version: cursors over each source (memtable slices, runs) and
//! the merge of them that a range read walks, in either direction. Sources
//! are in precedence order (newest first); for each key the merge resolves
//! every source's entry ([`entry::resolve`]) and skips keys that hold
//! nothing.

use std::ops::Bound;
use std::sync::Arc;

use super::block::Block;
use super::entry::{self, Combiner, EntryRef, Value};
use super::run::Run;
use super::{LsmError, Slice};

/// Where a cursor stands in one source.
enum Cursor {
    Slice {
        slice: Arc<Slice>,
        /// The current entry, or `None` once past either end.
        at: Option<usize>,
    },
    Run {
        run: Arc<Run>,
        /// The current block, its number and the entry in it.
        at: Option<(usize, Arc<Block>, usize)>,
        /// Reads go through the block cache (a merge's do not).
        cached: bool,
    },
}

impl Cursor {
    fn key(&self) -> Option<&[u8]> {
        match self {
            Cursor::Slice { slice, at } => at.map(|i| slice.entries.key(i)),
            Cursor::Run { at, .. } => at.as_ref().map(|(_, b, i)| b.key(*i)),
        }
    }

    fn entry(&self) -> Option<EntryRef<'_>> {
        match self {
            Cursor::Slice { slice, at } => at.map(|i| slice.entries.entry(i)),
            Cursor::Run { at, .. } => at.as_ref().map(|(_, b, i)| b.entry(*i)),
        }
    }

    /// Forward: at the first entry at or after `key`; reverse: at the last
    /// entry at or before it. `None` for `key`: from the first (last) entry.
    fn seek(&mut self, key: Option<&[u8]>, reverse: bool) -> Result<(), LsmError> {
        match self {
            Cursor::Slice { slice, at } => {
                let n = slice.len();
                let i = match key {
                    None if reverse => n,
                    None => 0,
                    Some(k) if reverse => slice.entries.partition_point(|e| e <= k),
                    Some(k) => slice.entries.partition_point(|e| e < k),
                };
                *at = if reverse {
                    i.checked_sub(1)
                } else {
                    (i < n).then_some(i)
                };
            }
            Cursor::Run { run, at, cached } => {
                let blocks = run.meta.fences.len();
                *at = None;
                if blocks == 0 {
                    return Ok(());
                }
                if reverse {
                    let b = match key {
                        None => Some(blocks - 1),
                        Some(k) => run
                            .meta
                            .fences
                            .partition_point(|f| f.as_slice() <= k)
                            .checked_sub(1),
                    };
                    let Some(b) = b else { return Ok(()) };
                    let block = run.block(b, *cached)?;
                    let i = match key {
                        None => block.len(),
                        Some(k) => {
                            let i = block.lower_bound(k);
                            if i < block.len() && block.key(i) == k {
                                i + 1
                            } else {
                                i
                            }
                        }
                    };
                    // Fences are first keys: block `b` holds one at or before `key`.
                    *at = Some((b, block, i.max(1) - 1));
                } else {
                    let b = match key {
                        None => 0,
                        Some(k) => run.block_for(k).unwrap_or(0),
                    };
                    if key.is_some_and(|k| k > run.meta.last.as_slice()) {
                        return Ok(());
                    }
                    let block = run.block(b, *cached)?;
                    let i = key.map_or(0, |k| block.lower_bound(k));
                    if i < block.len() {
                        *at = Some((b, block, i));
                    } else if b + 1 < blocks {
                        *at = Some((b + 1, run.block(b + 1, *cached)?, 0));
                    }
                }
            }
        }
        Ok(())
    }

    fn step(&mut self, reverse: bool) -> Result<(), LsmError> {
        match self {
            Cursor::Slice { slice, at } => {
                *at = match *at {
                    Some(i) if reverse => i.checked_sub(1),
                    Some(i) => (i + 1 < slice.len()).then_some(i + 1),
                    None => None,
                };
            }
            Cursor::Run { run, at, cached } => {
                let Some((b, block, i)) = at.take() else {
                    return Ok(());
                };
                *at = if reverse {
                    if i > 0 {
                        Some((b, block, i - 1))
                    } else if b > 0 {
                        let prev = run.block(b - 1, *cached)?;
                        let last = prev.len() - 1;
                        Some((b - 1, prev, last))
                    } else {
                        None
                    }
                } else if i + 1 < block.len() {
                    Some((b, block, i + 1))
                } else if b + 1 < run.meta.fences.len() {
                    Some((b + 1, run.block(b + 1, *cached)?, 0))
                } else {
                    None
                };
            }
        }
        Ok(())
    }
}

/// A cursor per source, in precedence order, not yet placed.
fn unplaced(slices: &[Arc<Slice>], runs: &[Arc<Run>], cached: bool) -> Vec<Cursor> {
    slices
        .iter()
        .map(|s| Cursor::Slice {
            slice: s.clone(),
            at: None,
        })
        .chain(runs.iter().map(|r| Cursor::Run {
            run: r.clone(),
            at: None,
            cached,
        }))
        .collect()
}

/// The resolved keys of a version between two bounds, in key order or
/// reversed.
pub struct Range {
    cursors: Vec<Cursor>,
    reverse: bool,
    lo: Bound<Vec<u8>>,
    hi: Bound<Vec<u8>>,
    done: bool,
    error: Option<LsmError>,
}

impl Range {
    pub(super) fn new(
        slices: &[Arc<Slice>],
        runs: &[Arc<Run>],
        lo: Bound<Vec<u8>>,
        hi: Bound<Vec<u8>>,
        reverse: bool,
    ) -> Range {
        let mut cursors = unplaced(slices, runs, true);
        let start: Option<&[u8]> = match (reverse, &lo, &hi) {
            (false, Bound::Included(k) | Bound::Excluded(k), _) => Some(k),
            (true, _, Bound::Included(k) | Bound::Excluded(k)) => Some(k),
            _ => None,
        };
        let mut error = None;
        for c in &mut cursors {
            if let Err(e) = c.seek(start, reverse) {
                error = Some(e);
                break;
            }
        }
        Range {
            cursors,
            reverse,
            lo,
            hi,
            done: false,
            error,
        }
    }

    fn within(&self, key: &[u8]) -> bool {
        let above_lo = match &self.lo {
            Bound::Included(l) => key >= l.as_slice(),
            Bound::Excluded(l) => key > l.as_slice(),
            Bound::Unbounded => true,
        };
        let below_hi = match &self.hi {
            Bound::Included(h) => key <= h.as_slice(),
            Bound::Excluded(h) => key < h.as_slice(),
            Bound::Unbounded => true,
        };
        above_lo && below_hi
    }

    fn advance(&mut self) -> Result<Option<(Vec<u8>, Value)>, LsmError> {
        loop {
            let mut best: Option<&[u8]> = None;
            for c in &self.cursors {
                if let Some(k) = c.key() {
                    let better = match best {
                        None => true,
                        Some(b) if self.reverse => k > b,
                        Some(b) => k < b,
                    };
                    if better {
                        best = Some(k);
                    }
                }
            }
            let Some(key) = best.map(<[u8]>::to_vec) else {
                return Ok(None);
            };
            if !self.within(&key) {
                // Past the far bound (the seek placed every cursor inside
                // the near one, but an excluded start may still match).
                let past = match self.reverse {
                    false => matches!(&self.lo, Bound::Excluded(l) if *l == key),
                    true => matches!(&self.hi, Bound::Excluded(h) if *h == key),
                };
                if !past {
                    return Ok(None);
                }
            }
            let mut entries = Vec::new();
            for c in &mut self.cursors {
                if c.key() == Some(key.as_slice()) {
                    entries.extend(c.entry().map(EntryRef::to_owned));
                    c.step(self.reverse)?;
                }
            }
            if !self.within(&key) {
                continue;
            }
            if let Some(v) = entry::resolve(&entries) {
                return Ok(Some((key, v)));
            }
        }
    }
}

impl Iterator for Range {
    type Item = Result<(Vec<u8>, Value), LsmError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.error.take() {
            self.done = true;
            return Some(Err(e));
        }
        if self.done {
            return None;
        }
        match self.advance() {
            Ok(Some(kv)) => Some(Ok(kv)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Every source's entries key by key, ascending: what a flush or a merge
/// combines, with nothing allocated per key.
pub(super) struct Raw {
    cursors: Vec<Cursor>,
}

impl Raw {
    pub(super) fn new(slices: &[Arc<Slice>], runs: &[Arc<Run>]) -> Result<Raw, LsmError> {
        let mut cursors = unplaced(slices, runs, false);
        for c in &mut cursors {
            c.seek(None, false)?;
        }
        Ok(Raw { cursors })
    }

    /// Moves to the next key: its bytes into `key`, its entries (newest
    /// first) fed to `combiner`. False when there is none.
    pub(super) fn next_into(
        &mut self,
        key: &mut Vec<u8>,
        combiner: &mut Combiner,
    ) -> Result<bool, LsmError> {
        let Some(next) = self.cursors.iter().filter_map(Cursor::key).min() else {
            return Ok(false);
        };
        key.clear();
        key.extend_from_slice(next);
        combiner.start();
        for c in &mut self.cursors {
            if c.key() == Some(key.as_slice()) {
                if let Some(e) = c.entry() {
                    combiner.feed(e);
                }
                c.step(false)?;
            }
        }
        Ok(true)
    }
}
