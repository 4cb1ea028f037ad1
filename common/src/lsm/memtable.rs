//! The memtable: what the batches since the last flush wrote, as immutable
//! sorted slices (one per batch; the flush thread merges neighbours as they
//! accumulate, [`super::Lsm::merge_slices`]), and the operations a batch
//! hands in.
//!
//! Both are arenas (issue 36): a batch's operations are encoded once, as a
//! run block's entries ([`entry::encode_into`]), into one buffer with an
//! offset per entry — no heap object per key — sorted by a radix sort
//! ([`super::sort`]), and a slice is that buffer in key order. A flush
//! copies a slice's bytes straight into blocks.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::bloom::{self, Bloom};
use super::entry::{self, Combiner, Entry, EntryRef};

/// One batch's operations, in the order given (a later one on a key wins
/// over an earlier one; deltas add up).
#[derive(Debug, Default, Clone)]
pub struct Ops {
    data: Vec<u8>,
    /// Where each operation starts in `data`.
    at: Vec<u32>,
}

impl Ops {
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.push(key.as_ref(), EntryRef::Put(value.as_ref()));
    }

    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.push(key.as_ref(), EntryRef::Delete);
    }

    pub fn add(&mut self, key: impl AsRef<[u8]>, delta: i64) {
        self.push(key.as_ref(), EntryRef::Add(delta));
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    fn push(&mut self, key: &[u8], e: EntryRef<'_>) {
        self.at.push(offset(self.data.len()));
        entry::encode_into(&mut self.data, key, e);
    }

    fn key(&self, i: u32) -> &[u8] {
        entry::key_at(&self.data, self.at[i as usize] as usize).expect("encoded here")
    }

    /// The bytes of operation `i`.
    fn bytes(&self, i: u32) -> &[u8] {
        let from = self.at[i as usize] as usize;
        let to = self
            .at
            .get(i as usize + 1)
            .map_or(self.data.len(), |&o| o as usize);
        &self.data[from..to]
    }
}

/// Offsets are u32: a batch's operations, and a slice, stay far below
/// 4 GiB (`max_batch` events of at most 64 KiB, and their index entries).
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("a batch's operations fit in 4 GiB")
}

/// A batch's operations as the batch logs of layouts 6 and 7 held them
/// (postcard): read only to upgrade such a store.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LegacyOps(pub Vec<(Vec<u8>, Entry)>);

impl From<LegacyOps> for Ops {
    fn from(legacy: LegacyOps) -> Ops {
        let mut ops = Ops::default();
        for (k, e) in &legacy.0 {
            ops.push(k, e.as_ref());
        }
        ops
    }
}

/// An immutable sorted piece of the memtable: what positions `first..=last`
/// of the caller's log hold, one entry per key.
#[derive(Debug)]
pub struct Slice {
    data: Vec<u8>,
    /// Where each entry starts in `data`, in key order.
    at: Vec<u32>,
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

/// A slice as it is built: entries appended in key order.
struct Building {
    data: Vec<u8>,
    at: Vec<u32>,
}

impl Building {
    fn with_capacity(bytes: usize, entries: usize) -> Building {
        Building {
            data: Vec::with_capacity(bytes),
            at: Vec::with_capacity(entries),
        }
    }

    /// An entry's bytes, as encoded.
    fn copy(&mut self, bytes: &[u8]) {
        self.at.push(offset(self.data.len()));
        self.data.extend_from_slice(bytes);
    }

    fn push(&mut self, key: &[u8], e: EntryRef<'_>) {
        self.at.push(offset(self.data.len()));
        entry::encode_into(&mut self.data, key, e);
    }

    fn done(self, first: u64, last: u64, bloomed: fn(&[u8]) -> bool) -> Slice {
        let Building { data, at } = self;
        let hashes: Vec<u64> = at
            .iter()
            .map(|&o| entry::key_at(&data, o as usize).expect("encoded here"))
            .filter(|k| bloomed(k))
            .map(bloom::hash)
            .collect();
        let filter = Bloom::of_hashes(&hashes);
        Slice {
            bytes: data.capacity() + at.capacity() * 4 + filter.bytes(),
            data,
            at,
            first,
            last,
            filter,
            bloomed,
        }
    }
}

impl Slice {
    /// One batch's operations, sorted, one entry per key.
    pub(super) fn of_batch(first: u64, last: u64, ops: Ops, bloomed: fn(&[u8]) -> bool) -> Slice {
        let order = super::sort::sorted(ops.len(), |i| ops.key(i));
        let mut out = Building::with_capacity(ops.data.len(), ops.len());
        let mut combiner = Combiner::default();
        let mut i = 0;
        while i < order.len() {
            let key = ops.key(order[i]);
            let mut j = i + 1;
            while j < order.len() && ops.key(order[j]) == key {
                j += 1;
            }
            if j == i + 1 {
                // Alone on its key (nearly every one): its bytes as they are.
                out.copy(ops.bytes(order[i]));
            } else {
                // Newest (given last) first; not the bottom: older
                // sources lie below.
                combiner.start();
                for &o in order[i..j].iter().rev() {
                    let (_, e, _) = entry::decode_ref_at(&ops.data, ops.at[o as usize] as usize)
                        .expect("encoded here");
                    combiner.feed(e);
                }
                if let Some(e) = combiner.finish(false) {
                    out.push(key, e);
                }
            }
            i = j;
        }
        out.done(first, last, bloomed)
    }

    /// `newer` over `older`, into one: their bytes copied, the newer's
    /// entry combined over the older's where both hold a key.
    pub(super) fn merge(newer: &Slice, older: &Slice) -> Slice {
        let mut out = Building::with_capacity(
            newer.data.len() + older.data.len(),
            newer.len() + older.len(),
        );
        let mut combiner = Combiner::default();
        let (mut a, mut b) = (0, 0);
        while a < newer.len() || b < older.len() {
            let order = match (a < newer.len(), b < older.len()) {
                (true, true) => newer.key(a).cmp(older.key(b)),
                (true, false) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match order {
                std::cmp::Ordering::Less => {
                    out.copy(newer.entry_bytes(a));
                    a += 1;
                }
                std::cmp::Ordering::Greater => {
                    out.copy(older.entry_bytes(b));
                    b += 1;
                }
                std::cmp::Ordering::Equal => {
                    combiner.start();
                    combiner.feed(newer.entry(a));
                    combiner.feed(older.entry(b));
                    if let Some(e) = combiner.finish(false) {
                        out.push(newer.key(a), e);
                    }
                    a += 1;
                    b += 1;
                }
            }
        }
        out.done(older.first, newer.last, newer.bloomed)
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    pub fn key(&self, i: usize) -> &[u8] {
        entry::key_at(&self.data, self.at[i] as usize).expect("encoded here")
    }

    pub fn entry(&self, i: usize) -> EntryRef<'_> {
        let (_, e, _) =
            entry::decode_ref_at(&self.data, self.at[i] as usize).expect("encoded here");
        e
    }

    fn entry_bytes(&self, i: usize) -> &[u8] {
        let from = self.at[i] as usize;
        let to = self.at.get(i + 1).map_or(self.data.len(), |&o| o as usize);
        &self.data[from..to]
    }

    /// The number of entries whose keys `before` holds for (they lead).
    pub(super) fn partition_point(&self, before: impl Fn(&[u8]) -> bool) -> usize {
        self.at.partition_point(|&o| {
            before(entry::key_at(&self.data, o as usize).expect("encoded here"))
        })
    }

    /// `hashed`: the key's [`bloom::hash`], if it is of those the slice's
    /// filter holds.
    pub(super) fn get(&self, key: &[u8], hashed: Option<u64>) -> Option<EntryRef<'_>> {
        if hashed.is_some_and(|h| !self.filter.may_contain_hash(h)) {
            return None;
        }
        let i = self.partition_point(|k| k < key);
        (i < self.len() && self.key(i) == key).then(|| self.entry(i))
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
