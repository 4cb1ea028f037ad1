//! The memtable: what the batches since the last flush wrote, as immutable
//! sorted slices (one per batch, merged with their neighbours as they
//! accumulate), and the operations a batch hands in.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::bloom::{self, Bloom};
use super::entry::{self, Entry};

/// One batch's operations, in the order given (a later one on a key wins
/// over an earlier one; deltas add up).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Ops(pub(super) Vec<(Vec<u8>, Entry)>);

impl Ops {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.0.push((key, Entry::Put(value)));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.0.push((key, Entry::Delete));
    }

    pub fn add(&mut self, key: Vec<u8>, delta: i64) {
        self.0.push((key, Entry::Add(delta)));
    }
}

/// An immutable sorted piece of the memtable: what positions `first..=last`
/// of the caller's log hold.
#[derive(Debug, Clone)]
pub struct Slice {
    pub(crate) entries: Vec<(Vec<u8>, Entry)>,
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) bytes: usize,
    /// The keys point reads ask for ([`super::Config::bloomed`]), so that
    /// a read of a key no slice holds — a batch's new records — skips
    /// the slice without a binary search.
    filter: Bloom,
    bloomed: fn(&[u8]) -> bool,
}

impl Slice {
    /// One batch's operations, sorted, one entry per key.
    pub(super) fn of_batch(first: u64, last: u64, ops: Ops, bloomed: fn(&[u8]) -> bool) -> Slice {
        let mut ops = ops.0;
        // By key; a stable sort keeps a key's operations in the order
        // given, the newest last.
        ops.sort_by(|(a, _), (b, _)| a.cmp(b));
        let mut entries: Vec<(Vec<u8>, Entry)> = Vec::with_capacity(ops.len());
        let mut ops = ops.into_iter().peekable();
        while let Some((key, e)) = ops.next() {
            if ops.peek().is_none_or(|(k, _)| *k != key) {
                // Alone on its key (nearly every one): moved, not combined.
                entries.push((key, e));
                continue;
            }
            let mut group = vec![e];
            while let Some((_, e)) = ops.next_if(|(k, _)| *k == key) {
                group.push(e);
            }
            group.reverse();
            let newest_first: Vec<&Entry> = group.iter().collect();
            // Not the bottom: older sources lie below.
            if let Some(e) = entry::combine(&newest_first, false) {
                entries.push((key, e));
            }
        }
        Slice::new(entries, first, last, bloomed)
    }

    fn new(
        entries: Vec<(Vec<u8>, Entry)>,
        first: u64,
        last: u64,
        bloomed: fn(&[u8]) -> bool,
    ) -> Slice {
        let bytes = entries.iter().map(|(k, e)| k.len() + entry_bytes(e)).sum();
        let hashes: Vec<u64> = entries
            .iter()
            .filter(|(k, _)| bloomed(k))
            .map(|(k, _)| bloom::hash(k))
            .collect();
        Slice {
            entries,
            first,
            last,
            bytes,
            filter: Bloom::of_hashes(&hashes),
            bloomed,
        }
    }

    /// `newer` over `older`, into one. Owned: entries move, not copy (a
    /// slice a snapshot still holds is copied by the caller).
    fn merge(newer: Slice, older: Slice) -> Slice {
        let (first, last, bloomed) = (older.first, newer.last, newer.bloomed);
        let mut out = Vec::with_capacity(newer.entries.len() + older.entries.len());
        let (mut a, mut b) = (
            newer.entries.into_iter().peekable(),
            older.entries.into_iter().peekable(),
        );
        loop {
            let took = match (a.peek(), b.peek()) {
                (Some((ka, _)), Some((kb, _))) => match ka.cmp(kb) {
                    std::cmp::Ordering::Equal => {
                        let (k, ea) = a.next().expect("peeked");
                        let (_, eb) = b.next().expect("peeked");
                        entry::combine(&[&ea, &eb], false).map(|e| (k, e))
                    }
                    std::cmp::Ordering::Less => a.next(),
                    std::cmp::Ordering::Greater => b.next(),
                },
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            out.extend(took);
        }
        Slice::new(out, first, last, bloomed)
    }

    /// `bloomed`: the key is of those the slice's filter holds.
    pub(super) fn get(&self, key: &[u8], bloomed: bool) -> Option<&Entry> {
        if bloomed && !self.filter.may_contain(key) {
            return None;
        }
        self.entries
            .binary_search_by(|(k, _)| k.as_slice().cmp(key))
            .ok()
            .map(|i| &self.entries[i].1)
    }
}

/// What an entry costs in memory beyond its key's bytes: its place in the
/// slice (the key's and the entry's inline parts) and its value's bytes.
/// Index entries are small keys with empty values, so counting payload
/// alone would let the memtable hold about twice its bound.
fn entry_bytes(e: &Entry) -> usize {
    let inline = std::mem::size_of::<(Vec<u8>, Entry)>();
    match e {
        Entry::Put(v) => inline + v.len(),
        _ => inline,
    }
}

/// Adds a batch's slice to the memtable, merging it with the slices before
/// it while they are no more than twice its size (few slices to read), but
/// never with a slice a flush is writing (positions up to `frozen`).
pub(super) fn push_slice(slices: &mut Vec<Arc<Slice>>, slice: Slice, frozen: u64) {
    let mut slice = slice;
    while let Some(prev) = slices.first() {
        if prev.last <= frozen || prev.entries.len() > 2 * slice.entries.len().max(1) {
            break;
        }
        let prev = Arc::try_unwrap(slices.remove(0)).unwrap_or_else(|held| (*held).clone());
        slice = Slice::merge(slice, prev);
    }
    slices.insert(0, Arc::new(slice));
}
