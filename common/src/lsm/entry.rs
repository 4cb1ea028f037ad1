//! What one key holds in one source (a memtable slice or a run), and how the
//! sources' entries for one key resolve into what a reader sees. Counts are
//! additive deltas (RocksDB's merge operator, ClickHouse's
//! SummingMergeTree): a batch adds +1/−1 without reading the count, and the
//! deltas are summed where they meet — at a read, or in a merge.

use serde::{Deserialize, Serialize};

/// One key's entry in one source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// The key holds this value (hiding anything older).
    Put(Vec<u8>),
    /// The key holds nothing (hiding anything older).
    Delete,
    /// A count: add this to what older sources hold.
    Add(i64),
    /// A count written whole (a merge's sum of deltas over a delete),
    /// hiding anything older.
    Count(i64),
}

/// A key as a reader sees it, all sources resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Bytes(Vec<u8>),
    Count(i64),
}

/// An entry where it is held (a slice, a block), not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRef<'a> {
    Put(&'a [u8]),
    Delete,
    Add(i64),
    Count(i64),
}

impl Entry {
    pub fn as_ref(&self) -> EntryRef<'_> {
        match self {
            Entry::Put(v) => EntryRef::Put(v),
            Entry::Delete => EntryRef::Delete,
            Entry::Add(d) => EntryRef::Add(*d),
            Entry::Count(c) => EntryRef::Count(*c),
        }
    }
}

impl EntryRef<'_> {
    pub fn to_owned(self) -> Entry {
        match self {
            EntryRef::Put(v) => Entry::Put(v.to_vec()),
            EntryRef::Delete => Entry::Delete,
            EntryRef::Add(d) => Entry::Add(d),
            EntryRef::Count(c) => Entry::Count(c),
        }
    }
}

/// [`combine`] for a flush or merge, fed one key's entries as its cursors
/// reach them, newest first, copying nothing but the value it keeps (into
/// a buffer it reuses from key to key).
#[derive(Debug, Default)]
pub struct Combiner {
    sum: Option<i64>,
    kept: Option<Kept>,
    value: Vec<u8>,
}

/// What hides everything older, once it is met.
#[derive(Debug, Clone, Copy)]
enum Kept {
    Put,
    Delete,
    /// A count written whole.
    Whole(i64),
}

impl Combiner {
    /// Ready for the next key.
    pub fn start(&mut self) {
        self.sum = None;
        self.kept = None;
    }

    /// The next-older entry of the key.
    pub fn feed(&mut self, e: EntryRef<'_>) {
        if self.kept.is_some() {
            return;
        }
        self.kept = match (e, self.sum) {
            (EntryRef::Add(d), _) => {
                *self.sum.get_or_insert(0) += d;
                None
            }
            (EntryRef::Count(c), s) => Some(Kept::Whole(s.unwrap_or(0) + c)),
            (EntryRef::Put(v), None) => {
                self.value.clear();
                self.value.extend_from_slice(v);
                Some(Kept::Put)
            }
            (EntryRef::Delete, None) => Some(Kept::Delete),
            (EntryRef::Put(_) | EntryRef::Delete, Some(s)) => Some(Kept::Whole(s)),
        };
    }

    /// The one entry the key keeps (or none); `bottom` as in [`combine`].
    pub fn finish(&self, bottom: bool) -> Option<EntryRef<'_>> {
        match (self.kept, bottom) {
            (Some(Kept::Put), _) => Some(EntryRef::Put(&self.value)),
            (Some(Kept::Delete), _) => (!bottom).then_some(EntryRef::Delete),
            (Some(Kept::Whole(0)), true) => None,
            (Some(Kept::Whole(n)), true) => Some(EntryRef::Add(n)),
            (Some(Kept::Whole(n)), false) => Some(EntryRef::Count(n)),
            (None, _) => match self.sum {
                Some(0) if bottom => None,
                Some(s) => Some(EntryRef::Add(s)),
                None => None,
            },
        }
    }
}

/// Resolves one key's entries, newest first, into what it holds: the newest
/// put, count or delete hides everything older; deltas above it add up. A
/// count of 0 holds nothing.
pub fn resolve<'a>(newest_first: impl IntoIterator<Item = &'a Entry>) -> Option<Value> {
    let mut sum: Option<i64> = None;
    for e in newest_first {
        match e {
            Entry::Add(d) => *sum.get_or_insert(0) += d,
            Entry::Count(c) => return count(sum.unwrap_or(0) + c),
            Entry::Put(v) => {
                return match sum {
                    None => Some(Value::Bytes(v.clone())),
                    // Deltas over a value count from nothing.
                    Some(s) => count(s),
                };
            }
            Entry::Delete => break,
        }
    }
    sum.and_then(count)
}

fn count(n: i64) -> Option<Value> {
    (n != 0).then_some(Value::Count(n))
}

/// Combines one key's entries, newest first, into the one entry a merged run
/// keeps (or none). `bottom`: nothing older exists below the merge, so what
/// only hides older entries can be dropped.
pub fn combine(newest_first: &[&Entry], bottom: bool) -> Option<Entry> {
    let mut sum: Option<i64> = None;
    for e in newest_first {
        let whole = match e {
            Entry::Add(d) => {
                *sum.get_or_insert(0) += d;
                continue;
            }
            Entry::Count(c) => sum.unwrap_or(0) + c,
            Entry::Put(v) => match sum {
                None => return Some(Entry::Put(v.to_vec())),
                Some(s) => s,
            },
            Entry::Delete => match sum {
                None => return (!bottom).then_some(Entry::Delete),
                Some(s) => s,
            },
        };
        // A count that hides what is older.
        return match (bottom, whole) {
            (true, 0) => None,
            (true, n) => Some(Entry::Add(n)),
            (false, n) => Some(Entry::Count(n)),
        };
    }
    match sum {
        Some(0) if bottom => None,
        Some(s) => Some(Entry::Add(s)),
        None => None,
    }
}

const TAG_PUT: u8 = 0;
const TAG_DELETE: u8 = 1;
const TAG_ADD: u8 = 2;
const TAG_COUNT: u8 = 3;

/// Appends `(key, entry)` to a block's bytes: key length (u16), key, tag,
/// then the value (u32 length and bytes) or the delta (i64).
pub fn encode_into(out: &mut Vec<u8>, key: &[u8], e: EntryRef<'_>) {
    out.extend_from_slice(&(key.len() as u16).to_be_bytes());
    out.extend_from_slice(key);
    match e {
        EntryRef::Put(v) => {
            out.push(TAG_PUT);
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v);
        }
        EntryRef::Delete => out.push(TAG_DELETE),
        EntryRef::Add(d) => {
            out.push(TAG_ADD);
            out.extend_from_slice(&d.to_be_bytes());
        }
        EntryRef::Count(c) => {
            out.push(TAG_COUNT);
            out.extend_from_slice(&c.to_be_bytes());
        }
    }
}

/// Reads the entry at `at`: its key, its entry, and where the next begins.
#[cfg(test)]
pub fn decode_at(bytes: &[u8], at: usize) -> Option<(&[u8], Entry, usize)> {
    decode_ref_at(bytes, at).map(|(k, e, next)| (k, e.to_owned(), next))
}

/// [`decode_at`], the entry borrowed from `bytes`.
pub fn decode_ref_at(bytes: &[u8], at: usize) -> Option<(&[u8], EntryRef<'_>, usize)> {
    let kl = u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize;
    let key = bytes.get(at + 2..at + 2 + kl)?;
    let mut i = at + 2 + kl;
    let tag = *bytes.get(i)?;
    i += 1;
    let e = match tag {
        TAG_PUT => {
            let vl = u32::from_be_bytes(bytes.get(i..i + 4)?.try_into().ok()?) as usize;
            let v = bytes.get(i + 4..i + 4 + vl)?;
            i += 4 + vl;
            EntryRef::Put(v)
        }
        TAG_DELETE => EntryRef::Delete,
        TAG_ADD | TAG_COUNT => {
            let n = i64::from_be_bytes(bytes.get(i..i + 8)?.try_into().ok()?);
            i += 8;
            if tag == TAG_ADD {
                EntryRef::Add(n)
            } else {
                EntryRef::Count(n)
            }
        }
        _ => return None,
    };
    Some((key, e, i))
}

/// Where a key's entry ends, without copying its value.
pub fn skip_at(bytes: &[u8], at: usize) -> Option<usize> {
    let kl = u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize;
    let i = at + 2 + kl;
    Some(match *bytes.get(i)? {
        TAG_PUT => {
            let vl = u32::from_be_bytes(bytes.get(i + 1..i + 5)?.try_into().ok()?) as usize;
            i + 5 + vl
        }
        TAG_DELETE => i + 1,
        TAG_ADD | TAG_COUNT => i + 9,
        _ => return None,
    })
}

/// The key of the entry at `at`.
pub fn key_at(bytes: &[u8], at: usize) -> Option<&[u8]> {
    let kl = u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?) as usize;
    bytes.get(at + 2..at + 2 + kl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_put_or_delete_wins_and_deltas_add_up() {
        let put = |v: &[u8]| Entry::Put(v.to_vec());
        assert_eq!(
            resolve(&[put(b"b"), put(b"a")]),
            Some(Value::Bytes(b"b".to_vec()))
        );
        assert_eq!(resolve(&[Entry::Delete, put(b"a")]), None);
        assert_eq!(
            resolve(&[Entry::Add(2), Entry::Add(-1), Entry::Add(3)]),
            Some(Value::Count(4))
        );
        assert_eq!(
            resolve(&[Entry::Add(1), Entry::Delete, Entry::Add(5)]),
            Some(Value::Count(1))
        );
        assert_eq!(resolve(&[Entry::Add(1), Entry::Add(-1)]), None);
        assert_eq!(
            resolve(&[Entry::Add(2), Entry::Count(3), Entry::Add(9)]),
            Some(Value::Count(5))
        );
    }

    use proptest::prelude::*;

    /// A key's entries in one source after another, newest first.
    fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
        proptest::collection::vec(
            proptest::prop_oneof![
                (0u8..3).prop_map(|v| Entry::Put(vec![v; 2])),
                proptest::strategy::Just(Entry::Delete),
                (-3i64..4).prop_map(Entry::Add),
                (-2i64..3).prop_map(Entry::Count),
            ],
            0..8,
        )
    }

    proptest::proptest! {
        /// Combining any run of a key's entries (as a merge does) and
        /// resolving what is left gives what resolving them all gives.
        #[test]
        fn combining_then_resolving_equals_resolving(
            entries in arb_entries(),
            split in 0usize..8,
            bottom in proptest::bool::ANY,
        ) {
            let split = split.min(entries.len());
            let (newer, older) = entries.split_at(split);
            // A bottom merge takes everything; otherwise older entries stay.
            let (merged, rest) = if bottom { (&entries[..], &[][..]) } else { (newer, older) };
            let refs: Vec<&Entry> = merged.iter().collect();
            let mut after: Vec<Entry> = combine(&refs, bottom).into_iter().collect();
            after.extend(rest.iter().cloned());
            prop_assert_eq!(resolve(&after), resolve(&entries));
        }
    }

    proptest::proptest! {
        /// The streaming combiner keeps what `combine` keeps.
        #[test]
        fn the_combiner_equals_combine(
            entries in arb_entries(),
            bottom in proptest::bool::ANY,
        ) {
            let mut c = Combiner::default();
            // A key before, to show the buffer is reset between keys.
            c.start();
            c.feed(EntryRef::Put(b"earlier"));
            c.start();
            for e in &entries {
                c.feed(e.as_ref());
            }
            let refs: Vec<&Entry> = entries.iter().collect();
            prop_assert_eq!(c.finish(bottom).map(EntryRef::to_owned), combine(&refs, bottom));
        }
    }

    #[test]
    fn entries_roundtrip_through_block_bytes() {
        let entries = [
            (b"a".to_vec(), Entry::Put(b"xyz".to_vec())),
            (b"b".to_vec(), Entry::Delete),
            (b"c".to_vec(), Entry::Add(-7)),
            (b"d".to_vec(), Entry::Count(7)),
        ];
        let mut bytes = Vec::new();
        for (k, e) in &entries {
            encode_into(&mut bytes, k, e.as_ref());
        }
        let mut at = 0;
        for (k, e) in &entries {
            assert_eq!(key_at(&bytes, at), Some(&k[..]));
            let (key, entry, next) = decode_at(&bytes, at).unwrap();
            assert_eq!((key, &entry), (&k[..], e));
            assert_eq!(skip_at(&bytes, at), Some(next));
            at = next;
        }
        assert_eq!(at, bytes.len());
    }
}
