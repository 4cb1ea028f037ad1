//! Index lists stored as blocks. A list (a posting list, a sort order, the
//! records of one checkpoint item) is a sorted set of entries `(suffix,
//! value)` under a list prefix. Rather than one sled key per entry, runs of up
//! to [`MAX_ENTRIES`] neighbouring entries share one key, `prefix + first
//! suffix`, so a batch rewrites each block it touches once: the write cost
//! follows the blocks a batch touches, not its index entries (sled inserts
//! are what bounds the apply rate). Reads see the same entries in the same
//! order as before; a point lookup reads the one block whose range holds it.
//!
//! Invariants (checked by `Store::check_consistency`): blocks are non-empty,
//! sorted, at most `MAX_ENTRIES` long (one entry in unblocked lists), keyed
//! by their first entry, and every entry of a block sorts before the next
//! block's key.

use std::collections::BTreeMap;

use sled::{Batch, IVec, Tree};

use super::StoreError;

/// Entries per block; a fuller block splits. Unit tests use tiny blocks so
/// that small generated worlds still split, merge and span blocks.
pub const MAX_ENTRIES: usize = if cfg!(test) { 4 } else { 48 };

/// One entry: the key suffix after the list prefix, and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A batch's changes to one list: suffix → new value, or `None` to remove.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Entries of lists, as full keys (prefix + suffix) and values, in order.
pub type EntryIter = Box<dyn Iterator<Item = Result<(IVec, IVec), StoreError>>>;

/// A block's bytes: the entry count, each entry's offset (so a lookup
/// binary-searches without decoding), then the entries, each a
/// length-prefixed suffix and value.
fn encode(entries: &[Entry]) -> Vec<u8> {
    let size: usize = entries.iter().map(|(s, v)| 8 + s.len() + v.len()).sum();
    let mut out = Vec::with_capacity(2 + size);
    out.extend_from_slice(&(entries.len() as u16).to_be_bytes());
    let mut at = 0u32;
    for (s, v) in entries {
        out.extend_from_slice(&at.to_be_bytes());
        at += (4 + s.len() + v.len()) as u32;
    }
    for (s, v) in entries {
        out.extend_from_slice(&(s.len() as u16).to_be_bytes());
        out.extend_from_slice(s);
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// A borrowed view of a block's bytes.
struct BlockRef<'a> {
    count: usize,
    offsets: &'a [u8],
    body: &'a [u8],
}

impl<'a> BlockRef<'a> {
    fn new(bytes: &'a [u8]) -> Option<BlockRef<'a>> {
        let count = u16::from_be_bytes(bytes.get(..2)?.try_into().ok()?) as usize;
        let offsets = bytes.get(2..2 + 4 * count)?;
        let body = bytes.get(2 + 4 * count..)?;
        Some(BlockRef {
            count,
            offsets,
            body,
        })
    }

    /// Entry `i`: its suffix and value.
    fn entry(&self, i: usize) -> Option<(&'a [u8], &'a [u8])> {
        let at = u32::from_be_bytes(self.offsets.get(4 * i..4 * i + 4)?.try_into().ok()?) as usize;
        let len = |at: usize| -> Option<usize> {
            Some(u16::from_be_bytes(self.body.get(at..at + 2)?.try_into().ok()?) as usize)
        };
        let sl = len(at)?;
        let s = self.body.get(at + 2..at + 2 + sl)?;
        let vl = len(at + 2 + sl)?;
        let v = self.body.get(at + 4 + sl..at + 4 + sl + vl)?;
        Some((s, v))
    }

    /// Whether an entry has `suffix`; `None` if the block is malformed.
    fn contains(&self, suffix: &[u8]) -> Option<bool> {
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.entry(mid)?.0.cmp(suffix) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(true),
            }
        }
        Some(false)
    }
}

fn decode(key: &[u8], bytes: &[u8]) -> Result<Vec<Entry>, StoreError> {
    let bad = || StoreError::corrupt(key, "bad index block");
    let block = BlockRef::new(bytes).ok_or_else(bad)?;
    (0..block.count)
        .map(|i| {
            let (s, v) = block.entry(i).ok_or_else(bad)?;
            Ok((s.to_vec(), v.to_vec()))
        })
        .collect()
}

fn joined(list: &[u8], suffix: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(list.len() + suffix.len());
    k.extend_from_slice(list);
    k.extend_from_slice(suffix);
    k
}

/// The first key after every key that starts with `prefix`. List prefixes
/// end in a string terminator or a tag byte, never 0xFF.
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    if let Some(last) = end.last_mut() {
        *last += 1;
    }
    end
}

/// The block whose range holds `suffix`: the last block keyed at or before
/// it. Every key in `[list, list + suffix]` starts with `list`.
fn block_at_or_before(
    tree: &Tree,
    list: &[u8],
    suffix: &[u8],
) -> Result<Option<(IVec, IVec)>, StoreError> {
    Ok(tree
        .range(list.to_vec()..=joined(list, suffix))
        .next_back()
        .transpose()?)
}

/// The entries stored under one key of a list: a block's, or in an
/// unblocked list the one entry the key and value are.
pub fn stored(list: &[u8], blocked: bool, k: &[u8], v: &[u8]) -> Result<Vec<Entry>, StoreError> {
    if blocked {
        decode(k, v)
    } else {
        Ok(vec![(k[list.len()..].to_vec(), v.to_vec())])
    }
}

/// Whether `list` holds an entry with `suffix`.
pub fn contains(
    tree: &Tree,
    list: &[u8],
    blocked: bool,
    suffix: &[u8],
) -> Result<bool, StoreError> {
    if !blocked {
        return Ok(tree.contains_key(joined(list, suffix))?);
    }
    match block_at_or_before(tree, list, suffix)? {
        None => Ok(false),
        Some((k, v)) => BlockRef::new(&v)
            .and_then(|b| b.contains(suffix))
            .ok_or_else(|| StoreError::corrupt(&k, "bad index block")),
    }
}

/// Every entry of `list`, ascending or descending.
pub fn scan(tree: &Tree, list: &[u8], blocked: bool, ascending: bool) -> EntryIter {
    let blocks = tree.scan_prefix(list);
    let blocks: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>> = match ascending {
        true => Box::new(blocks),
        false => Box::new(blocks.rev()),
    };
    flatten(list, blocked, blocks, ascending, None)
}

/// The entries of `list` from `bound` on (ascending), or strictly before it
/// (descending).
pub fn scan_from(
    tree: &Tree,
    list: &[u8],
    blocked: bool,
    bound: &[u8],
    ascending: bool,
) -> Result<EntryIter, StoreError> {
    let blocks: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>> = if ascending {
        // From the block holding the bound (it may start before it).
        let start = match block_at_or_before(tree, list, bound)? {
            Some((k, _)) => k.to_vec(),
            None => list.to_vec(),
        };
        Box::new(tree.range(start..prefix_end(list)))
    } else {
        Box::new(tree.range(list.to_vec()..joined(list, bound)).rev())
    };
    Ok(flatten(
        list,
        blocked,
        blocks,
        ascending,
        Some(bound.to_vec()),
    ))
}

fn flatten(
    list: &[u8],
    blocked: bool,
    blocks: Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>>>,
    ascending: bool,
    bound: Option<Vec<u8>>,
) -> EntryIter {
    let list = list.to_vec();
    Box::new(blocks.flat_map(move |kv| {
        let entries: Vec<Result<(IVec, IVec), StoreError>> = match kv
            .map_err(StoreError::from)
            .and_then(|(k, v)| stored(&list, blocked, &k, &v))
        {
            Err(e) => vec![Err(e)],
            Ok(mut entries) => {
                if let Some(b) = &bound {
                    entries.retain(|(s, _)| (s.as_slice() >= b.as_slice()) == ascending);
                }
                if !ascending {
                    entries.reverse();
                }
                entries
                    .into_iter()
                    .map(|(s, v)| Ok((IVec::from(joined(&list, &s)), IVec::from(v))))
                    .collect()
            }
        };
        entries
    }))
}

/// Writes `changes` (suffix → new value, or `None` to remove) to `list` as
/// part of `batch`: each touched block is read once and written once. One
/// call per list per batch: blocks are read from the tree as it was before
/// the batch.
///
/// Lists whose entries land at random places (orders by id or plan, the
/// records of a checkpoint item) gain nothing from blocks — every new entry
/// would rewrite a whole block — so with `blocked` false each entry is a
/// block of its own, written directly.
pub fn apply(
    tree: &Tree,
    batch: &mut Batch,
    list: &[u8],
    blocked: bool,
    changes: &Changes,
) -> Result<(), StoreError> {
    if !blocked {
        for (suffix, change) in changes {
            let key = joined(list, suffix);
            match change {
                Some(v) => batch.insert(key, v.as_slice()),
                None => batch.remove(key),
            }
        }
        return Ok(());
    }
    let end = prefix_end(list);
    // The loaded block: its key (None for a new list), its entries, and the
    // key of the next block (its range ends there).
    let mut open: Option<(Option<IVec>, Vec<Entry>, Option<IVec>)> = None;
    for (suffix, change) in changes {
        let key = joined(list, suffix);
        let inside = open
            .as_ref()
            .is_some_and(|(_, _, next)| next.as_ref().is_none_or(|n| key < n.to_vec()));
        if !inside {
            if let Some((old, entries, _)) = open.take() {
                write(batch, list, old, entries);
            }
            let found = match block_at_or_before(tree, list, suffix)? {
                Some(kv) => Some(kv),
                // Before the first block: it joins the first block.
                None => tree.scan_prefix(list).next().transpose()?,
            };
            open = Some(match found {
                None => (None, Vec::new(), None),
                Some((k, v)) => {
                    let entries = decode(&k, &v)?;
                    let mut after = k.to_vec();
                    after.push(0);
                    let next = tree.range(after..end.clone()).next().transpose()?;
                    (Some(k), entries, next.map(|(n, _)| n))
                }
            });
        }
        let (_, entries, _) = open.as_mut().expect("a block is open");
        match (
            entries.binary_search_by(|(s, _)| s.as_slice().cmp(suffix)),
            change,
        ) {
            (Ok(i), Some(v)) => entries[i].1 = v.clone(),
            (Ok(i), None) => {
                entries.remove(i);
            }
            (Err(i), Some(v)) => entries.insert(i, (suffix.clone(), v.clone())),
            (Err(_), None) => {}
        }
    }
    if let Some((old, entries, _)) = open {
        write(batch, list, old, entries);
    }
    Ok(())
}

/// Writes one block's new entries (split when over full) in place of the old.
fn write(batch: &mut Batch, list: &[u8], old: Option<IVec>, entries: Vec<Entry>) {
    if let Some(old) = old {
        batch.remove(old);
    }
    let pieces = entries.len().div_ceil(MAX_ENTRIES / 2).max(1);
    let per = if entries.len() > MAX_ENTRIES {
        entries.len().div_ceil(pieces)
    } else {
        MAX_ENTRIES
    };
    for piece in entries.chunks(per) {
        batch.insert(joined(list, &piece[0].0), encode(piece));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    const LIST: &[u8] = b"Lst\0\x01";

    fn entries_of(tree: &Tree, blocked: bool) -> Vec<Entry> {
        scan(tree, LIST, blocked, true)
            .map(|r| {
                let (k, v) = r.unwrap();
                (k[LIST.len()..].to_vec(), v.to_vec())
            })
            .collect()
    }

    proptest! {
        /// After random batches of inserts and removals, the blocks hold
        /// exactly the model's entries, in order both ways, every lookup and
        /// bounded scan agrees, and the blocks keep their invariants.
        #[test]
        fn blocks_behave_like_a_sorted_map(
            batches in proptest::collection::vec(
                proptest::collection::btree_map(0u16..600, proptest::option::of(0u8..4), 0..300), 1..6),
            probes in proptest::collection::vec(0u16..600, 1..20),
            blocked in any::<bool>(),
        ) {
            let db = sled::Config::new().temporary(true).open().unwrap();
            let tree = db.open_tree("t").unwrap();
            // Neighbouring keyspaces must stay untouched.
            tree.insert(b"Lss", b"x".to_vec()).unwrap();
            tree.insert(b"Lsu", b"y".to_vec()).unwrap();
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for b in &batches {
                let changes: Changes = b
                    .iter()
                    .map(|(k, v)| (k.to_be_bytes().to_vec(), v.map(|v| vec![v])))
                    .collect();
                let mut batch = Batch::default();
                apply(&tree, &mut batch, LIST, blocked, &changes).unwrap();
                tree.apply_batch(batch).unwrap();
                for (k, v) in changes {
                    match v { Some(v) => { model.insert(k, v); } None => { model.remove(&k); } }
                }
                let want: Vec<Entry> = model.clone().into_iter().collect();
                prop_assert_eq!(entries_of(&tree, blocked), want.clone());
                let mut rev = want.clone();
                rev.reverse();
                let have_rev: Vec<Entry> = scan(&tree, LIST, blocked, false)
                    .map(|r| { let (k, v) = r.unwrap(); (k[LIST.len()..].to_vec(), v.to_vec()) })
                    .collect();
                prop_assert_eq!(have_rev, rev);
                let mut keys = BTreeSet::new();
                for kv in tree.scan_prefix(LIST) {
                    let (k, v) = kv.unwrap();
                    let es = stored(LIST, blocked, &k, &v).unwrap();
                    let max = if blocked { MAX_ENTRIES } else { 1 };
                    prop_assert!(!es.is_empty() && es.len() <= max, "{} entries", es.len());
                    prop_assert_eq!(&k[LIST.len()..], es[0].0.as_slice());
                    keys.insert(k.to_vec());
                }
                for p in &probes {
                    let s = p.to_be_bytes().to_vec();
                    prop_assert_eq!(contains(&tree, LIST, blocked, &s).unwrap(), model.contains_key(&s));
                    let up: Vec<Vec<u8>> = scan_from(&tree, LIST, blocked, &s, true).unwrap()
                        .map(|r| r.unwrap().0[LIST.len()..].to_vec()).collect();
                    let want_up: Vec<Vec<u8>> = model.range(s.clone()..).map(|(k, _)| k.clone()).collect();
                    prop_assert_eq!(up, want_up);
                    let down: Vec<Vec<u8>> = scan_from(&tree, LIST, blocked, &s, false).unwrap()
                        .map(|r| r.unwrap().0[LIST.len()..].to_vec()).collect();
                    let want_down: Vec<Vec<u8>> = model.range(..s.clone()).rev().map(|(k, _)| k.clone()).collect();
                    prop_assert_eq!(down, want_down);
                }
            }
            prop_assert_eq!(tree.get(b"Lss").unwrap().unwrap().to_vec(), b"x".to_vec());
            prop_assert_eq!(tree.get(b"Lsu").unwrap().unwrap().to_vec(), b"y".to_vec());
        }
    }
}
