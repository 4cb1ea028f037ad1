//! Immutable sorted runs in sled. A run is a sorted sequence of entries cut
//! into blocks of about [`Config::block_bytes`] raw bytes, each compressed
//! and stored as ONE sled value (`R` run block): sled is cheap per large
//! value and dear per key, and values stay under the ~128 KiB past which
//! sled moves them to files of their own. Its metadata — the first key of
//! every block (fences), its last key and a Bloom filter of its point-read
//! keys — is one more value (`S` run), written before the run is installed
//! and kept in memory while it is, so a point read costs at most one block
//! read — and one frame of it decompressed ([`block`], format 2).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::block::{self, Block, Builder};
use super::bloom::Bloom;
use super::entry::{Entry, EntryRef};
use super::{layout, Config, LsmError};

/// zstd's level for run blocks. A fast level (-3) above the bottom run was
/// measured against 1 in interleaved 1M loads (15c4aa7): 60,054 and 88,649
/// events/s against 91,150 and 94,904, and 1,828–1,872 MiB on disk against
/// 1,614–1,694 — the bytes it adds cost sled more than the compressor
/// saves (docs/benchmarks.md, "The lean write path, second session").
const BLOCK_LEVEL: i32 = 1;

/// A run's metadata, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunMeta {
    pub id: u64,
    pub entries: u64,
    /// Compressed bytes of its blocks.
    pub bytes: u64,
    /// The first key of each block.
    pub fences: Vec<Vec<u8>>,
    pub last: Vec<u8>,
    pub bloom: Bloom,
}

/// Decoded blocks, bounded in bytes, oldest out first. A block is cached
/// whole (scans read it so) or, for point reads, by its frames and the
/// table of their first keys ([`Part`]).
pub struct BlockCache {
    inner: Mutex<CacheInner>,
    capacity: usize,
}

/// What of a block a cache entry holds: the block whole, the first keys of
/// its frames, or one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Part {
    Whole,
    FrameKeys,
    Frame(u16),
}

/// A cache entry's place: the run, the block, the part.
type At = (u64, u32, Part);

#[derive(Default)]
struct CacheInner {
    blocks: HashMap<At, Arc<Block>>,
    order: VecDeque<At>,
    bytes: usize,
}

impl BlockCache {
    pub fn new(capacity: usize) -> BlockCache {
        BlockCache {
            inner: Mutex::default(),
            capacity,
        }
    }

    fn get(&self, at: At) -> Option<Arc<Block>> {
        self.inner
            .lock()
            .expect("cache lock")
            .blocks
            .get(&at)
            .cloned()
    }

    fn insert(&self, at: At, block: Arc<Block>) {
        let mut c = self.inner.lock().expect("cache lock");
        c.bytes += block.held();
        // Two readers that missed the same block both insert it: the
        // second replaces the first, whose bytes are no longer held.
        match c.blocks.insert(at, block) {
            Some(old) => c.bytes -= old.held(),
            None => c.order.push_back(at),
        }
        while c.bytes > self.capacity {
            let Some(old) = c.order.pop_front() else {
                break;
            };
            if let Some(b) = c.blocks.remove(&old) {
                c.bytes -= b.held();
            }
        }
    }

    /// The bytes the cache counts, and the bytes its blocks really hold
    /// (their allocations): the two must agree, or the bound means nothing.
    pub fn usage(&self) -> (usize, usize) {
        let c = self.inner.lock().expect("cache lock");
        let held = c.blocks.values().map(|b| b.held()).sum();
        (c.bytes, held)
    }
}

/// An installed run. Dropped once no version holds it; if the manifest no
/// longer lists it by then, its blocks are handed to `graveyard` to delete.
pub struct Run {
    pub meta: RunMeta,
    tree: sled::Tree,
    cache: Arc<BlockCache>,
    /// Set when a manifest without this run was written.
    pub(super) obsolete: AtomicBool,
    graveyard: std::sync::mpsc::Sender<RunMeta>,
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            let _ = self.graveyard.send(self.meta.clone());
        }
    }
}

impl Run {
    pub(super) fn new(
        meta: RunMeta,
        tree: sled::Tree,
        cache: Arc<BlockCache>,
        graveyard: std::sync::mpsc::Sender<RunMeta>,
    ) -> Run {
        Run {
            meta,
            tree,
            cache,
            obsolete: AtomicBool::new(false),
            graveyard,
        }
    }

    /// Block `i`, through the cache when `cached` (reads); a merge reads
    /// around it, so that it does not evict the queries' working set with
    /// blocks it reads once.
    pub fn block(&self, i: usize, cached: bool) -> Result<Arc<Block>, LsmError> {
        let at = (self.meta.id, i as u32, Part::Whole);
        if let Some(b) = self.cache.get(at) {
            return Ok(b);
        }
        let key = layout::run_block(self.meta.id, i as u32);
        let block = Arc::new(block::read(&key, &self.stored(&key)?)?);
        if cached {
            self.cache.insert(at, block.clone());
        }
        Ok(block)
    }

    /// A block's bytes as stored.
    fn stored(&self, key: &[u8]) -> Result<sled::IVec, LsmError> {
        self.tree
            .get(key)?
            .ok_or_else(|| LsmError::corrupt(key, "a run block is missing"))
    }

    /// The entries of block `i` that would hold `key`, through the cache:
    /// the block whole if a scan cached it, else the one frame `key` falls
    /// in (a block of format 0 or 1 is one frame). What it decodes is
    /// cached when `fill`; a bulk read (an export) looks in the cache but
    /// fills it not, so it neither evicts the queries' working set nor
    /// grows the cache.
    fn entries_for(&self, i: usize, key: &[u8], fill: bool) -> Result<Arc<Block>, LsmError> {
        let insert = |at: At, b: &Arc<Block>| {
            if fill {
                self.cache.insert(at, b.clone());
            }
        };
        let at = |part| (self.meta.id, i as u32, part);
        if let Some(b) = self.cache.get(at(Part::Whole)) {
            return Ok(b);
        }
        let bkey = layout::run_block(self.meta.id, i as u32);
        let mut stored = None;
        let firsts = match self.cache.get(at(Part::FrameKeys)) {
            Some(f) => f,
            None => {
                let s = self.stored(&bkey)?;
                let Some(firsts) = block::frame_keys(&bkey, &s)? else {
                    let block = Arc::new(block::read(&bkey, &s)?);
                    insert(at(Part::Whole), &block);
                    return Ok(block);
                };
                let firsts = Arc::new(firsts);
                insert(at(Part::FrameKeys), &firsts);
                stored = Some(s);
                firsts
            }
        };
        // The block's fence is its first frame's first key: `key` is at or
        // past it.
        let f = firsts
            .partition_point(|first| first <= key)
            .saturating_sub(1);
        let part = Part::Frame(u16::try_from(f).expect("frames are counted in u16"));
        if let Some(frame) = self.cache.get(at(part)) {
            return Ok(frame);
        }
        let s = match stored {
            Some(s) => s,
            None => self.stored(&bkey)?,
        };
        let frame = Arc::new(block::read_frame(&bkey, &s, f)?);
        insert(at(part), &frame);
        Ok(frame)
    }

    /// The block whose range may hold `key`.
    pub fn block_for(&self, key: &[u8]) -> Option<usize> {
        if key > self.meta.last.as_slice() {
            return None;
        }
        self.meta
            .fences
            .partition_point(|f| f.as_slice() <= key)
            .checked_sub(1)
    }

    /// The entry for `key`, if this run has one (`hashed`: the key is of
    /// those the filter holds), first looking in `near`: the frame (or block) the last
    /// read of this run found its key in. A key within that frame's keys
    /// is answered there — no filter, no cache lookup, no frame search: the
    /// run's entry for it can be nowhere else — so ascending keys near each
    /// other (a page's records, by number) cost one lookup per frame, not
    /// per key; `near` is then this key's frame. `fill`: whether what is
    /// decoded joins the cache ([`Run::entries_for`]).
    pub fn get_near(
        &self,
        key: &[u8],
        hashed: Option<u64>,
        near: &mut Option<Arc<Block>>,
        fill: bool,
    ) -> Result<Option<Entry>, LsmError> {
        let within = |b: &Block| !b.is_empty() && b.key(0) <= key && key <= b.key(b.len() - 1);
        let block = match near.as_ref().filter(|b| within(b)) {
            Some(b) => b.clone(),
            None => {
                if hashed.is_some_and(|h| !self.meta.bloom.may_contain_hash(h)) {
                    return Ok(None);
                }
                let Some(b) = self.block_for(key) else {
                    return Ok(None);
                };
                let block = self.entries_for(b, key, fill)?;
                *near = Some(block.clone());
                block
            }
        };
        let i = block.lower_bound(key);
        Ok((i < block.len() && block.key(i) == key).then(|| block.entry(i).to_owned()))
    }
}

/// Writes a run's blocks as entries come, in key order; `finish` writes its
/// metadata. Nothing is visible until a manifest lists the run.
pub struct RunWriter<'a> {
    tree: &'a sled::Tree,
    config: &'a Config,
    meta: RunMeta,
    block: Builder,
    pending: sled::Batch,
    pending_blocks: usize,
    /// The hashes of the keys the Bloom filter is to hold.
    bloomed: Vec<u64>,
}

impl<'a> RunWriter<'a> {
    /// A writer of run `id`, about `keys` entries.
    pub fn new(tree: &'a sled::Tree, config: &'a Config, id: u64, keys: usize) -> RunWriter<'a> {
        RunWriter {
            tree,
            config,
            meta: RunMeta {
                id,
                entries: 0,
                bytes: 0,
                fences: Vec::new(),
                last: Vec::new(),
                bloom: Bloom::new(0),
            },
            bloomed: Vec::with_capacity(keys / 8),
            block: Builder::default(),
            pending: sled::Batch::default(),
            pending_blocks: 0,
        }
    }

    pub fn push(&mut self, key: &[u8], e: EntryRef<'_>) -> Result<(), LsmError> {
        debug_assert!(self.meta.entries == 0 || key > self.meta.last.as_slice());
        if self.block.is_empty() {
            self.meta.fences.push(key.to_vec());
        }
        self.block.push(key, e);
        // Point reads decompress one frame: small ones where they go.
        if (self.config.bloomed)(key) {
            self.bloomed.push(super::bloom::hash(key));
            if self.block.frame_bytes() >= self.config.frame_bytes {
                self.block.cut_frame();
            }
        }
        self.meta.entries += 1;
        self.meta.last.clear();
        self.meta.last.extend_from_slice(key);
        // A block's frames are counted in u16 (tiny frames in big blocks
        // would pass it).
        if self.block.whole_bytes() >= self.config.block_bytes
            || self.block.frames() >= usize::from(u16::MAX) - 1
        {
            self.cut()?;
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<(), LsmError> {
        if self.block.is_empty() {
            return Ok(());
        }
        let n = self.meta.fences.len() as u32 - 1;
        let z = self.block.finish(BLOCK_LEVEL);
        self.meta.bytes += z.len() as u64;
        self.pending.insert(layout::run_block(self.meta.id, n), z);
        self.pending_blocks += 1;
        // Blocks go to sled a few at a time: one huge batch holds sled's
        // write lock (and so every query) for its whole length.
        if self.pending_blocks >= 16 {
            self.tree.apply_batch(std::mem::take(&mut self.pending))?;
            self.pending_blocks = 0;
        }
        Ok(())
    }

    /// Writes the last block and the metadata; `None` for a run with no
    /// entries (nothing was written).
    pub fn finish(mut self) -> Result<Option<RunMeta>, LsmError> {
        self.cut()?;
        if self.meta.entries == 0 {
            return Ok(None);
        }
        // Sized on the keys point reads ask for, not on every entry (a
        // record has about 13 index entries and counts besides).
        self.meta.bloom = Bloom::of_hashes(&self.bloomed);
        let meta = postcard::to_allocvec(&self.meta)?;
        super::chunked::put(&mut self.pending, &layout::run_meta(self.meta.id), &meta);
        self.tree.apply_batch(self.pending)?;
        Ok(Some(self.meta))
    }

    /// Writes what is pending and stops, as a process killed between two
    /// groups of blocks would leave the run: blocks, no metadata.
    #[cfg(test)]
    pub fn abandon(self) -> Result<(), LsmError> {
        self.tree.apply_batch(self.pending)?;
        Ok(())
    }
}

/// Deletes a run's blocks and metadata (it is in no manifest).
pub fn delete(tree: &sled::Tree, meta: &RunMeta) -> Result<(), LsmError> {
    let blocks = (0..meta.fences.len() as u32).map(|i| Ok(layout::run_block(meta.id, i).into()));
    let parts = tree.scan_prefix(layout::run_meta(meta.id)).keys();
    remove_all(tree, blocks.chain(parts))
}

/// Deletes whatever run `id` wrote (it is in no manifest): its blocks and
/// metadata parts, however many of them there are.
pub fn delete_id(tree: &sled::Tree, id: u64) -> Result<(), LsmError> {
    let keys = [layout::RUN_BLOCK, layout::RUN_META]
        .into_iter()
        .flat_map(|space| {
            let prefix = [&[space][..], &id.to_be_bytes()].concat();
            tree.scan_prefix(prefix).keys()
        });
    remove_all(tree, keys)
}

/// Keys removed of a group at a time. A deletion needs no atomicity (no
/// manifest lists what it deletes; a kill leaves the rest to the next
/// open), and one sled batch holds sled's write lock — every read and write
/// of the store, the writer's included — for its whole length: a merged
/// run at 3M records has thousands of blocks.
const DELETE_GROUP: usize = 64;

fn remove_all(
    tree: &sled::Tree,
    keys: impl IntoIterator<Item = Result<sled::IVec, sled::Error>>,
) -> Result<(), LsmError> {
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    for k in keys {
        batch.remove(k?);
        pending += 1;
        if pending == DELETE_GROUP {
            tree.apply_batch(std::mem::take(&mut batch))?;
            pending = 0;
        }
    }
    tree.apply_batch(batch)?;
    Ok(())
}

/// Deletes every block and metadata part of runs not in `listed`: what a
/// flush or merge killed before its install left, with its metadata or
/// without (killed between two groups of blocks). Seeks past each listed
/// run's keys rather than reading them. Returns the highest run id seen.
pub fn delete_unlisted(tree: &sled::Tree, listed: &[u64]) -> Result<u64, LsmError> {
    let mut highest = 0;
    let mut batch = sled::Batch::default();
    let mut pending = 0;
    for space in [layout::RUN_META, layout::RUN_BLOCK] {
        let mut from = vec![space];
        loop {
            let Some(kv) = tree.range(from.clone()..vec![space + 1]).next() else {
                break;
            };
            let (k, _) = kv?;
            let id = layout::read_seq(&k).ok_or_else(|| LsmError::corrupt(&k, "bad run key"))?;
            highest = highest.max(id);
            if listed.contains(&id) {
                match id.checked_add(1) {
                    Some(next) => from = [&[space][..], &next.to_be_bytes()].concat(),
                    None => break,
                }
                continue;
            }
            batch.remove(k.clone());
            pending += 1;
            if pending == DELETE_GROUP {
                tree.apply_batch(std::mem::take(&mut batch))?;
                pending = 0;
            }
            from = [&k[..], &[0]].concat();
        }
    }
    tree.apply_batch(batch)?;
    Ok(highest)
}
