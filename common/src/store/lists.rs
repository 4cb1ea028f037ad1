//! Index lists over the engine ([`crate::lsm`]). A list (a posting list, a
//! sort order, the records of one checkpoint item) is the sorted set of
//! entries `(suffix, value)` under a list prefix, one engine key per entry:
//! the engine's runs pack neighbouring entries into compressed blocks, so a
//! batch's index changes join the memtable rather than rewriting sled keys (layout v5 kept blocks of 48 entries as sled values
//! for that reason, and still paid a sled write per touched block).

use std::ops::Bound;

use sled::IVec;

use crate::lsm::{Snapshot, Value};

use super::StoreError;

/// Entries of lists, as full keys (prefix + suffix) and values, in order.
pub type EntryIter = Box<dyn Iterator<Item = Result<(IVec, IVec), StoreError>>>;

fn joined(list: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(list.len() + suffix.len());
    k.extend_from_slice(list);
    k.extend_from_slice(suffix);
    k
}

/// The first key after every key that starts with `prefix`. List prefixes
/// start with a keyspace byte, never 0xFF, so there is one.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    crate::lsm::prefix_end(prefix).expect("a list prefix is not all 0xFF")
}

/// A resolved value as the store's readers take it: bytes, or a count as
/// a big-endian u64.
pub(super) fn bytes_of(v: Value) -> IVec {
    match v {
        Value::Bytes(b) => IVec::from(b),
        Value::Count(n) => IVec::from(&(n.max(0) as u64).to_be_bytes()[..]),
    }
}

fn entries(range: crate::lsm::Range) -> EntryIter {
    Box::new(range.map(|kv| {
        let (k, v) = kv?;
        Ok((IVec::from(k), bytes_of(v)))
    }))
}

/// Whether `list` holds an entry with `suffix`.
pub fn contains(snap: &Snapshot, list: &[u8], suffix: &[u8]) -> Result<bool, StoreError> {
    Ok(snap.get(&joined(list, suffix))?.is_some())
}

/// Every entry of `list`, ascending or descending.
pub fn scan(snap: &Snapshot, list: &[u8], ascending: bool) -> EntryIter {
    entries(snap.range(
        Bound::Included(list.to_vec()),
        Bound::Excluded(prefix_end(list)),
        !ascending,
    ))
}

/// The entries of `list` from `bound` on (ascending), or strictly before it
/// (descending).
pub fn scan_from(snap: &Snapshot, list: &[u8], bound: &[u8], ascending: bool) -> EntryIter {
    let range = if ascending {
        snap.range(
            Bound::Included(joined(list, bound)),
            Bound::Excluded(prefix_end(list)),
            false,
        )
    } else {
        snap.range(
            Bound::Included(list.to_vec()),
            Bound::Excluded(joined(list, bound)),
            true,
        )
    };
    entries(range)
}
