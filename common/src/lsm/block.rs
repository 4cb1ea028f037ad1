//! A run block's bytes, as stored and as read.
//!
//! - **Format 1** (layout 9 on, [`FORMAT_PREFIXED`]): each entry's key
//!   prefix-compressed against the entry before it (the store's keys share
//!   40–60 leading bytes), a restart — an entry with its key whole — every
//!   [`RESTART`] entries, and the restarts' offsets at the end; stored as
//!   the format's code, then one zstd frame.
//! - **Format 0** (layouts 6–8): entries whole ([`entry::encode_into`]),
//!   stored as the zstd frame alone. Told apart by zstd's magic number,
//!   which no format code equals.
//!
//! A read expands either into entries whole ([`Block`], an [`Arena`]): the
//! block cache holds them so, and a reader borrows keys from it.

use super::arena::Arena;
use super::entry::{self, EntryRef};
use super::{codec, LsmError};

/// The code a stored block of format 1 starts with.
pub const FORMAT_PREFIXED: u8 = 1;
/// The first bytes of a zstd frame: a stored block of format 0.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Entries between restarts.
const RESTART: usize = 16;
/// No block decodes to more than this: `block_bytes` plus one entry (a
/// record, under the store's 64 KiB event bound, well within it).
const MAX_BLOCK_BYTES: usize = 16 << 20;

/// A block as read: its entries whole.
pub type Block = Arena;

/// A block from its stored bytes, of either format.
pub fn read(key: &[u8], stored: &[u8]) -> Result<Block, LsmError> {
    let block = match stored.first() {
        Some(&FORMAT_PREFIXED) => expand(&codec::decompress(key, &stored[1..], MAX_BLOCK_BYTES)?),
        // Format 0: the entries whole, as read.
        _ if stored.starts_with(&ZSTD_MAGIC) => {
            Arena::of_encoded(codec::decompress(key, stored, MAX_BLOCK_BYTES)?)
        }
        _ => return Err(LsmError::corrupt(key, "a run block of an unknown format")),
    };
    block.ok_or_else(|| LsmError::corrupt(key, "a malformed run block"))
}

/// Format 1's bytes, expanded. `None` unless every entry, every shared
/// prefix and every restart is where the trailer says.
fn expand(raw: &[u8]) -> Option<Block> {
    let n = u32_at(raw, raw.len().checked_sub(4)?)? as usize;
    let trailer = 4 + 4 * n;
    let end = raw.len().checked_sub(trailer)?;
    let (entries, restarts) = (&raw[..end], &raw[end..raw.len() - 4]);
    if entries.is_empty() {
        return None;
    }
    let mut block = Arena::with_capacity(2 * entries.len(), 0);
    let (mut at, mut key) = (0, Vec::new());
    while at < entries.len() {
        let i = block.len();
        let shared = u16::from_be_bytes(entries.get(at..at + 2)?.try_into().ok()?) as usize;
        if i.is_multiple_of(RESTART)
            && (shared != 0 || u32_at(restarts, 4 * (i / RESTART))? != at as u32)
        {
            return None;
        }
        let (suffix, e, next) = entry::decode_ref_at(entries, at + 2)?;
        // `key` is the entry before's; the key and the block stay within
        // what format 0 can hold and a block may expand to.
        if shared > key.len() || shared + suffix.len() > u16::MAX as usize {
            return None;
        }
        key.truncate(shared);
        key.extend_from_slice(suffix);
        if block.data_len() + key.len() + entries.len() > MAX_BLOCK_BYTES {
            return None;
        }
        block.push(&key, e);
        at = next;
    }
    (block.len().div_ceil(RESTART) == n).then_some(block)
}

/// A stored block of either format, stored again in format 0, as layouts
/// 6–8 wrote it: for tests of a store written before layout 9.
#[cfg(any(test, feature = "testkit"))]
pub fn as_format_0(key: &[u8], stored: &[u8]) -> Result<Vec<u8>, LsmError> {
    Ok(codec::compress(read(key, stored)?.as_bytes(), 1))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// A block of format 1 as it is written, entries in key order.
#[derive(Default)]
pub struct Builder {
    raw: Vec<u8>,
    last: Vec<u8>,
    restarts: Vec<u32>,
    entries: usize,
    /// What the block expands to when read: where it is cut.
    whole: usize,
}

impl Builder {
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes of its entries whole, as a read expands them.
    pub fn whole_bytes(&self) -> usize {
        self.whole
    }

    pub fn push(&mut self, key: &[u8], e: EntryRef<'_>) {
        let shared = if self.entries.is_multiple_of(RESTART) {
            self.restarts.push(self.raw.len() as u32);
            0
        } else {
            super::sort::common_prefix(&self.last, key).min(u16::MAX as usize)
        };
        self.raw.extend_from_slice(&(shared as u16).to_be_bytes());
        let before = self.raw.len();
        entry::encode_into(&mut self.raw, &key[shared..], e);
        self.whole += self.raw.len() - before + shared;
        self.last.clear();
        self.last.extend_from_slice(key);
        self.entries += 1;
    }

    /// The stored bytes, zstd at `level`; the builder is empty again.
    pub fn finish(&mut self, level: i32) -> Vec<u8> {
        for r in &self.restarts {
            self.raw.extend_from_slice(&r.to_be_bytes());
        }
        self.raw
            .extend_from_slice(&(self.restarts.len() as u32).to_be_bytes());
        let z = codec::compress(&self.raw, level);
        let mut stored = Vec::with_capacity(1 + z.len());
        stored.push(FORMAT_PREFIXED);
        stored.extend_from_slice(&z);
        self.raw.clear();
        self.restarts.clear();
        self.entries = 0;
        self.whole = 0;
        stored
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::Entry;
    use proptest::prelude::*;

    /// Damaged block bytes are refused, never decoded into an entry that
    /// a read would then panic on.
    #[test]
    fn an_overrunning_entry_or_an_empty_block_is_not_a_block() {
        let mut raw = Vec::new();
        entry::encode_into(&mut raw, b"key", EntryRef::Put(&[1; 100]));
        assert!(Arena::of_encoded(raw.clone()).is_some());
        raw.truncate(raw.len() - 1);
        assert!(Arena::of_encoded(raw).is_none(), "a value past the end");
        assert!(Arena::of_encoded(Vec::new()).is_none(), "an empty block");
        let z = codec::compress(b"", 1);
        assert!(matches!(read(b"R", &z), Err(LsmError::Corrupt { .. })));
        let mut empty = Builder::default();
        assert!(read(b"R", &empty.finish(1)).is_err(), "no entries");
        assert!(read(b"R", &[7, 1, 2, 3]).is_err(), "an unknown format");
        // A shared prefix that would make a key longer than a key can be
        // (its length would wrap to 0 in the block as read).
        let long = [b'k'; u16::MAX as usize];
        let mut raw = 0u16.to_be_bytes().to_vec();
        entry::encode_into(&mut raw, &long, EntryRef::Delete);
        raw.extend_from_slice(&u16::MAX.to_be_bytes());
        entry::encode_into(&mut raw, b"x", EntryRef::Delete);
        raw.extend_from_slice(&0u32.to_be_bytes());
        raw.extend_from_slice(&1u32.to_be_bytes());
        assert!(expand(&raw).is_none(), "a key past 64 KiB");
    }

    fn arb_block() -> impl Strategy<Value = Vec<(Vec<u8>, Entry)>> {
        let key = (0usize..70, proptest::collection::vec(0u8..3, 0..4))
            .prop_map(|(shared, tail)| [vec![b'k'; shared], tail].concat());
        let e = prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Entry::Put),
            Just(Entry::Delete),
            any::<i64>().prop_map(Entry::Add),
            any::<i64>().prop_map(Entry::Count),
        ];
        proptest::collection::btree_map(key, e, 1..80).prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        /// A block written in format 1 reads back as the same entries as
        /// format 0 holds them, at any zstd level; and a format-0 block
        /// (layouts 6–8) still reads.
        #[test]
        fn both_formats_read_back_the_entries_written(entries in arb_block(), fast in any::<bool>()) {
            let mut b = Builder::default();
            let mut whole = Vec::new();
            for (k, e) in &entries {
                b.push(k, e.as_ref());
                entry::encode_into(&mut whole, k, e.as_ref());
            }
            prop_assert_eq!(b.whole_bytes(), whole.len());
            let stored = b.finish(if fast { -3 } else { 1 });
            prop_assert_eq!(stored[0], FORMAT_PREFIXED);
            let legacy = codec::compress(&whole, 1);
            for block in [read(b"R", &stored).unwrap(), read(b"R", &legacy).unwrap()] {
                prop_assert_eq!(block.len(), entries.len());
                prop_assert_eq!(block.as_bytes(), &whole[..]);
                for (i, (k, e)) in entries.iter().enumerate() {
                    prop_assert_eq!(block.key(i), k.as_slice());
                    prop_assert_eq!(block.entry(i), e.as_ref());
                    prop_assert_eq!(block.lower_bound(k), i);
                }
            }
        }

        /// A format-1 block cut short or with a byte changed is refused or
        /// reads without a panic (sled's checksums catch what is torn on
        /// disk; this guards the decoder against its own bounds).
        #[test]
        fn a_damaged_block_is_refused_or_reads_as_written(
            entries in arb_block(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<bool>(),
        ) {
            let mut b = Builder::default();
            for (k, e) in &entries {
                b.push(k, e.as_ref());
            }
            b.finish(1);
            for (k, e) in &entries {
                b.push(k, e.as_ref());
            }
            let mut raw = b.raw.clone();
            for r in &b.restarts {
                raw.extend_from_slice(&r.to_be_bytes());
            }
            raw.extend_from_slice(&(b.restarts.len() as u32).to_be_bytes());
            let i = at.index(raw.len());
            if cut {
                raw.truncate(i);
            } else {
                raw[i] = byte;
            }
            if let Some(block) = expand(&raw) {
                for i in 0..block.len() {
                    let _ = (block.key(i), block.entry(i));
                }
            }
        }
    }
}
