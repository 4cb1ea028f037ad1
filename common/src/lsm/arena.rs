//! Entries in one buffer: each encoded as a run block's entry
//! ([`entry::encode_into`]), one after another, with the offset where each
//! starts — no heap object per entry. A batch's operations, a memtable
//! slice and a block as read are each one (issue 36).

use super::entry::{self, EntryRef};

#[derive(Debug, Default, Clone)]
pub struct Arena {
    data: Vec<u8>,
    /// Where each entry starts in `data`.
    at: Vec<u32>,
}

/// Offsets are u32: a batch's operations, a slice and a block stay far
/// below 4 GiB (`max_batch` events of at most 64 KiB and their index
/// entries; a block is cut at `block_bytes`).
fn offset(n: usize) -> u32 {
    u32::try_from(n).expect("an arena's entries fit in 4 GiB")
}

impl Arena {
    pub fn with_capacity(bytes: usize, entries: usize) -> Arena {
        Arena {
            data: Vec::with_capacity(bytes),
            at: Vec::with_capacity(entries),
        }
    }

    /// Entries already encoded back to back (a block of format 0), their
    /// offsets found by walking them. `None` when empty or when an entry
    /// runs past the end.
    pub fn of_encoded(data: Vec<u8>) -> Option<Arena> {
        if data.is_empty() {
            return None;
        }
        let mut at = Vec::new();
        let mut i = 0;
        while i < data.len() {
            at.push(offset(i));
            i = entry::skip_at(&data, i).filter(|&next| next <= data.len())?;
        }
        Some(Arena { data, at })
    }

    pub fn push(&mut self, key: &[u8], e: EntryRef<'_>) {
        self.at.push(offset(self.data.len()));
        entry::encode_into(&mut self.data, key, e);
    }

    /// An entry's bytes as encoded ([`Arena::bytes`] of another arena).
    pub fn copy(&mut self, bytes: &[u8]) {
        self.at.push(offset(self.data.len()));
        self.data.extend_from_slice(bytes);
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Bytes of all its entries.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    pub fn key(&self, i: usize) -> &[u8] {
        entry::key_at(&self.data, self.at[i] as usize).expect("a well-formed entry")
    }

    pub fn entry(&self, i: usize) -> EntryRef<'_> {
        let (_, e, _) =
            entry::decode_ref_at(&self.data, self.at[i] as usize).expect("a well-formed entry");
        e
    }

    /// Entry `i`'s bytes as encoded.
    pub fn bytes(&self, i: usize) -> &[u8] {
        let from = self.at[i] as usize;
        let to = self.at.get(i + 1).map_or(self.data.len(), |&o| o as usize);
        &self.data[from..to]
    }

    /// The number of leading entries whose keys `before` holds for (the
    /// entries sorted by key).
    pub fn partition_point(&self, before: impl Fn(&[u8]) -> bool) -> usize {
        self.at.partition_point(|&o| {
            before(entry::key_at(&self.data, o as usize).expect("a well-formed entry"))
        })
    }

    /// The first entry at or after `key` (the entries sorted by key).
    pub fn lower_bound(&self, key: &[u8]) -> usize {
        self.partition_point(|k| k < key)
    }

    /// The memory it holds: its bytes' allocation and its offsets'.
    pub fn held(&self) -> usize {
        self.data.capacity() + self.at.capacity() * std::mem::size_of::<u32>()
    }

    /// Its entries' bytes, back to back (a block of format 0).
    #[cfg(any(test, feature = "testkit"))]
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }
}
