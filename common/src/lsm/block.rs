//! A run block's bytes, as stored and as read.
//!
//! - **Format 2** (layout 18 on, [`FORMAT_FRAMED`]): the entries cut into
//!   frames, each its own zstd frame of format 1's bytes, behind a table of
//!   the frames' first keys and ends. A block stays one sled value (sled is
//!   dear per value), but a point read decompresses the one frame its key is
//!   in, not the whole block: a page's records were a 48 KiB decompression
//!   each. The run's writer cuts frames of about
//!   [`Config::frame_bytes`](super::Config) where point reads go, and
//!   nowhere else (a scan reads whole blocks, and small frames compress
//!   worse and cost a flush more).
//! - **Format 1** (layouts 9–17, [`FORMAT_PREFIXED`]): each entry's key
//!   prefix-compressed against the entry before it (the store's keys share
//!   leading bytes), a restart — an entry with its key whole — every
//!   [`RESTART`] entries, and the restarts' offsets at the end; stored as
//!   the format's code, then one zstd frame.
//! - **Format 0** (layouts 6–8): entries whole ([`entry::encode_into`]),
//!   stored as the zstd frame alone. Told apart by zstd's magic number,
//!   which no format code equals.
//!
//! A read expands any of them into entries whole ([`Block`], an [`Arena`]):
//! the block cache holds them so, and a reader borrows keys from it.

use super::arena::Arena;
use super::entry::{self, EntryRef};
use super::{codec, LsmError};

/// The code a stored block of format 2 starts with.
pub const FORMAT_FRAMED: u8 = 2;
/// The code a stored block of format 1 starts with.
pub const FORMAT_PREFIXED: u8 = 1;
/// The first bytes of a zstd frame: a stored block of format 0.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
/// Entries between restarts.
const RESTART: usize = 16;
/// No block decodes to more than this: `block_bytes` plus one entry (a
/// record, under the store's 64 KiB event bound, well within it).
const MAX_BLOCK_BYTES: usize = 16 << 20;
/// Format 2's table: per frame, where its compressed bytes end (u32) and
/// its first key's length (u16).
const FRAME_ROW: usize = 6;

/// A block as read: its entries whole.
pub type Block = Arena;

/// A block from its stored bytes, of any format: every entry.
pub fn read(key: &[u8], stored: &[u8]) -> Result<Block, LsmError> {
    let block = match stored.first() {
        Some(&FORMAT_FRAMED) => {
            let framed = Framed::parse(stored).ok_or_else(|| malformed(key))?;
            let raws = (0..framed.len())
                .map(|f| codec::decompress(key, framed.bodies[f], MAX_BLOCK_BYTES))
                .collect::<Result<Vec<_>, _>>()?;
            let bytes: usize = raws.iter().map(Vec::len).sum();
            if bytes > MAX_BLOCK_BYTES {
                return Err(malformed(key));
            }
            let mut block = Arena::with_capacity(2 * bytes, 0);
            raws.iter()
                .all(|raw| expand_into(raw, &mut block).is_some())
                .then_some(block)
        }
        Some(&FORMAT_PREFIXED) => {
            let mut block = Arena::default();
            let raw = codec::decompress(key, &stored[1..], MAX_BLOCK_BYTES)?;
            expand_into(&raw, &mut block).map(|()| block)
        }
        // Format 0: the entries whole, as read.
        _ if stored.starts_with(&ZSTD_MAGIC) => {
            Arena::of_encoded(codec::decompress(key, stored, MAX_BLOCK_BYTES)?)
        }
        _ => return Err(LsmError::corrupt(key, "a run block of an unknown format")),
    };
    block.ok_or_else(|| malformed(key))
}

/// The first keys of a block's frames, as keys of an arena (their entries
/// empty), for a point read to pick its frame by; `None` for a block of
/// format 0 or 1, which is one frame.
pub fn frame_keys(key: &[u8], stored: &[u8]) -> Result<Option<Block>, LsmError> {
    if stored.first() != Some(&FORMAT_FRAMED) {
        return Ok(None);
    }
    let framed = Framed::parse(stored).ok_or_else(|| malformed(key))?;
    let mut keys = Arena::with_capacity(framed.firsts.iter().map(|k| k.len() + 4).sum(), 0);
    for first in &framed.firsts {
        keys.push(first, EntryRef::Delete);
    }
    Ok(Some(keys))
}

/// Frame `f` of a block of format 2: the entries of that frame only.
pub fn read_frame(key: &[u8], stored: &[u8], f: usize) -> Result<Block, LsmError> {
    let framed = Framed::parse(stored).ok_or_else(|| malformed(key))?;
    let body = framed.bodies.get(f).ok_or_else(|| malformed(key))?;
    let raw = codec::decompress(key, body, MAX_BLOCK_BYTES)?;
    let mut block = Arena::with_capacity(2 * raw.len(), 0);
    expand_into(&raw, &mut block).ok_or_else(|| malformed(key))?;
    Ok(block)
}

fn malformed(key: &[u8]) -> LsmError {
    LsmError::corrupt(key, "a malformed run block")
}

/// A stored block of format 2, its parts borrowed.
struct Framed<'a> {
    firsts: Vec<&'a [u8]>,
    bodies: Vec<&'a [u8]>,
}

impl<'a> Framed<'a> {
    /// `None` unless the table, the keys and the frames fit the bytes
    /// exactly, and there is a frame.
    fn parse(stored: &'a [u8]) -> Option<Framed<'a>> {
        let n = u16::from_be_bytes(stored.get(1..3)?.try_into().ok()?) as usize;
        let table = stored.get(3..3 + FRAME_ROW * n)?;
        let rows = table.chunks_exact(FRAME_ROW).map(|r| {
            let end = u32::from_be_bytes(r[..4].try_into().expect("4 bytes")) as usize;
            (end, u16::from_be_bytes([r[4], r[5]]) as usize)
        });
        let mut at = 3 + table.len();
        let mut firsts = Vec::with_capacity(n);
        let mut ends = Vec::with_capacity(n);
        for (end, len) in rows {
            firsts.push(stored.get(at..at + len)?);
            ends.push(end);
            at += len;
        }
        let data = stored.get(at..)?;
        let mut bodies = Vec::with_capacity(n);
        let mut from = 0;
        for end in ends {
            bodies.push(data.get(from..end).filter(|b| !b.is_empty())?);
            from = end;
        }
        (n > 0 && from == data.len()).then_some(Framed { firsts, bodies })
    }

    fn len(&self) -> usize {
        self.bodies.len()
    }
}

/// Format 1's bytes (one frame of format 2), expanded onto `block`. `None`
/// unless every entry, every shared prefix and every restart is where the
/// trailer says.
fn expand_into(raw: &[u8], block: &mut Block) -> Option<()> {
    let n = u32_at(raw, raw.len().checked_sub(4)?)? as usize;
    let trailer = 4 + 4 * n;
    let end = raw.len().checked_sub(trailer)?;
    let (entries, restarts) = (&raw[..end], &raw[end..raw.len() - 4]);
    if entries.is_empty() {
        return None;
    }
    let base = block.len();
    let (mut at, mut key) = (0, Vec::new());
    while at < entries.len() {
        let i = block.len() - base;
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
    ((block.len() - base).div_ceil(RESTART) == n).then_some(())
}

/// A stored block of any format, stored again in format 0, as layouts
/// 6–8 wrote it: for tests of a store written before layout 9.
#[cfg(any(test, feature = "testkit"))]
pub fn as_format_0(key: &[u8], stored: &[u8]) -> Result<Vec<u8>, LsmError> {
    Ok(codec::compress(read(key, stored)?.as_bytes(), 1))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// One frame of format 1's bytes as it is written, entries in key order.
#[derive(Default)]
struct Frame {
    raw: Vec<u8>,
    last: Vec<u8>,
    restarts: Vec<u32>,
    entries: usize,
    /// What the frame expands to when read.
    whole: usize,
}

impl Frame {
    fn push(&mut self, key: &[u8], e: EntryRef<'_>) {
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

    /// Its bytes with the restarts' trailer; the frame is empty again.
    fn finish(&mut self) -> Vec<u8> {
        let mut raw = std::mem::take(&mut self.raw);
        for r in &self.restarts {
            raw.extend_from_slice(&r.to_be_bytes());
        }
        raw.extend_from_slice(&(self.restarts.len() as u32).to_be_bytes());
        self.restarts.clear();
        self.entries = 0;
        self.whole = 0;
        raw
    }
}

/// A block of format 2 as it is written, entries in key order; its writer
/// says where a frame ends ([`Builder::cut_frame`]).
#[derive(Default)]
pub struct Builder {
    frame: Frame,
    first: Vec<u8>,
    /// Closed frames: their first keys and bytes (compressed at `finish`).
    frames: Vec<(Vec<u8>, Vec<u8>)>,
    /// What the block's closed frames expand to when read.
    whole: usize,
}

impl Builder {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty() && self.frame.entries == 0
    }

    /// Bytes of its entries whole, as a read expands them.
    pub fn whole_bytes(&self) -> usize {
        self.whole + self.frame.whole
    }

    /// Frames closed so far.
    pub fn frames(&self) -> usize {
        self.frames.len()
    }

    /// Bytes of the open frame's entries whole.
    pub fn frame_bytes(&self) -> usize {
        self.frame.whole
    }

    pub fn push(&mut self, key: &[u8], e: EntryRef<'_>) {
        if self.frame.entries == 0 {
            self.first.clear();
            self.first.extend_from_slice(key);
        }
        self.frame.push(key, e);
    }

    /// Ends the open frame: the next entry starts another.
    pub fn cut_frame(&mut self) {
        if self.frame.entries > 0 {
            self.whole += self.frame.whole;
            let first = std::mem::take(&mut self.first);
            self.frames.push((first, self.frame.finish()));
        }
    }

    /// The stored bytes, each frame zstd at `level`; the builder is empty
    /// again.
    pub fn finish(&mut self, level: i32) -> Vec<u8> {
        self.cut_frame();
        let bodies: Vec<Vec<u8>> = self
            .frames
            .iter()
            .map(|(_, raw)| codec::compress(raw, level))
            .collect();
        let n = u16::try_from(self.frames.len()).expect("a block has at most 65,535 frames");
        let keys: usize = self.frames.iter().map(|(k, _)| k.len()).sum();
        let data: usize = bodies.iter().map(Vec::len).sum();
        let mut stored = Vec::with_capacity(3 + FRAME_ROW * bodies.len() + keys + data);
        stored.push(FORMAT_FRAMED);
        stored.extend_from_slice(&n.to_be_bytes());
        let mut end = 0u32;
        for ((first, _), body) in self.frames.iter().zip(&bodies) {
            end += body.len() as u32;
            stored.extend_from_slice(&end.to_be_bytes());
            let len = u16::try_from(first.len()).expect("keys are under 64 KiB");
            stored.extend_from_slice(&len.to_be_bytes());
        }
        for (first, _) in &self.frames {
            stored.extend_from_slice(first);
        }
        for body in &bodies {
            stored.extend_from_slice(body);
        }
        self.frames.clear();
        self.whole = 0;
        stored
    }
}

/// A block of format 1, as layouts 9–17 wrote it: for tests that a store
/// written before layout 18 still reads.
#[cfg(any(test, feature = "testkit"))]
pub fn as_format_1(key: &[u8], stored: &[u8]) -> Result<Vec<u8>, LsmError> {
    let block = read(key, stored)?;
    let mut frame = Frame::default();
    for i in 0..block.len() {
        frame.push(block.key(i), block.entry(i));
    }
    let mut out = vec![FORMAT_PREFIXED];
    out.extend_from_slice(&codec::compress(&frame.finish(), 1));
    Ok(out)
}

#[cfg(test)]
mod tests;
