//! The memtable: what the batches since the last flush wrote, as immutable
//! sorted slices (one per batch; the flush thread merges neighbours as they
//! accumulate, [`super::Lsm::merge_slices`]), and the operations a batch
//! hands in.
//!
//! Both are arenas ([`Arena`], issue 36): a batch's operations are encoded
//! once, sorted by a radix sort ([`super::sort`]), and a slice is their
//! bytes in key order.

use std::sync::Arc;

use super::arena::Arena;
use super::bloom::{self, Bloom};
use super::entry::{Combiner, EntryRef};

/// One batch's operations, in the order given (a later one on a key wins
/// over an earlier one; deltas add up).
#[derive(Debug, Default, Clone)]
pub struct Ops(Arena);

impl Ops {
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0.push(key.as_ref(), EntryRef::Put(value.as_ref()));
    }

    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.0.push(key.as_ref(), EntryRef::Delete);
    }

    pub fn add(&mut self, key: impl AsRef<[u8]>, delta: i64) {
        self.0.push(key.as_ref(), EntryRef::Add(delta));
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An immutable sorted piece of the memtable: what positions `first..=last`
/// of the caller's log hold, one entry per key.
#[derive(Debug)]
pub struct Slice {
    /// In key order.
    pub(super) entries: Arena,
    pub(super) first: u64,
    pub(super) last: u64,
    /// The memory it holds.
    pub(super) bytes: usize,
    /// The keys point reads ask for ([`super::Config::bloomed`]), so that
    /// a read of a key no slice holds — a batch's new records — skips
    /// the slice without a binary search.
    filter: Bloom,
    bloomed: fn(&[u8]) -> bool,
}

impl Slice {
    /// Entries in key order, as one slice.
    fn new(entries: Arena, first: u64, last: u64, bloomed: fn(&[u8]) -> bool) -> Slice {
        let hashes: Vec<u64> = (0..entries.len())
            .map(|i| entries.key(i))
            .filter(|k| bloomed(k))
            .map(bloom::hash)
            .collect();
        let filter = Bloom::of_hashes(&hashes);
        Slice {
            bytes: entries.held() + filter.bytes(),
            entries,
            first,
            last,
            filter,
            bloomed,
        }
    }

    /// One batch's operations, sorted, one entry per key.
    pub(super) fn of_batch(first: u64, last: u64, ops: Ops, bloomed: fn(&[u8]) -> bool) -> Slice {
        let ops = ops.0;
        let order = super::sort::sorted(ops.len(), |i| ops.key(i as usize));
        let mut out = Arena::with_capacity(ops.data_len(), ops.len());
        let mut combiner = Combiner::default();
        let mut i = 0;
        while i < order.len() {
            let key = ops.key(order[i] as usize);
            let mut j = i + 1;
            while j < order.len() && ops.key(order[j] as usize) == key {
                j += 1;
            }
            if j == i + 1 {
                // Alone on its key (nearly every one): its bytes as they are.
                out.copy(ops.bytes(order[i] as usize));
            } else {
                // Newest (given last) first; not the bottom: older
                // sources lie below.
                combiner.start();
                for &o in order[i..j].iter().rev() {
                    combiner.feed(ops.entry(o as usize));
                }
                if let Some(e) = combiner.finish(false) {
                    out.push(key, e);
                }
            }
            i = j;
        }
        Slice::new(out, first, last, bloomed)
    }

    /// `newer` over `older`, into one: their bytes copied, the newer's
    /// entry combined over the older's where both hold a key.
    pub(super) fn merge(newer: &Slice, older: &Slice) -> Slice {
        let (a, b) = (&newer.entries, &older.entries);
        let mut out = Arena::with_capacity(a.data_len() + b.data_len(), a.len() + b.len());
        let mut combiner = Combiner::default();
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let order = match (i < a.len(), j < b.len()) {
                (true, true) => a.key(i).cmp(b.key(j)),
                (true, false) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    out.copy(a.bytes(i));
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.copy(b.bytes(j));
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    combiner.start();
                    combiner.feed(a.entry(i));
                    combiner.feed(b.entry(j));
                    if let Some(e) = combiner.finish(false) {
                        out.push(a.key(i), e);
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Slice::new(out, older.first, newer.last, newer.bloomed)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `hashed`: the key's [`bloom::hash`], if it is of those the slice's
    /// filter holds.
    pub(super) fn get(&self, key: &[u8], hashed: Option<u64>) -> Option<EntryRef<'_>> {
        if hashed.is_some_and(|h| !self.filter.may_contain_hash(h)) {
            return None;
        }
        let i = self.entries.lower_bound(key);
        (i < self.len() && self.entries.key(i) == key).then(|| self.entries.entry(i))
    }
}

/// Where a batch's new slice goes: first (the newest). Merging it with its
/// neighbours is the flush thread's ([`neighbours_to_merge`]).
pub(super) fn push_slice(slices: &mut Vec<Arc<Slice>>, slice: Slice) {
    slices.insert(0, Arc::new(slice));
}

/// The newest pair of neighbouring slices to merge, `(i, i + 1)`: the older
/// no more than twice the newer's size (a binary counter: O(log n) slices
/// to read), neither of them one a flush is writing (positions up to
/// `frozen`).
pub(super) fn neighbours_to_merge(slices: &[Arc<Slice>], frozen: u64) -> Option<usize> {
    (0..slices.len().saturating_sub(1)).find(|&i| {
        let (newer, older) = (&slices[i], &slices[i + 1]);
        older.last > frozen && older.len() <= 2 * newer.len().max(1)
    })
}
