//! The storage engine of store v3 (issue 24): a log-structured merge tree
//! whose durable medium is sled, used for what sled does cheaply — a few
//! large values per atomic batch — and never as a per-entry index. The
//! store (layout v9) keeps its records, index lists and counts in it.
//!
//! - **The caller's log is the write-ahead log** (issue 36). The engine
//!   writes nothing per batch: its caller logs what it needs to derive a
//!   batch's operations (the store: its events) in its own atomic write,
//!   then hands them to [`Lsm::commit`] tagged with their positions in that
//!   log. At open the caller derives again, and commits, what its log holds
//!   after [`Lsm::flushed_through`].
//! - **A memtable** of immutable sorted slices, one per batch, merged with
//!   their neighbours as they accumulate (a binary counter: O(log n) slices).
//! - **Immutable sorted runs** ([`run`]): a flush writes the memtable as a
//!   run, then installs it with the last log position it covers in ONE
//!   small atomic write of the manifest (`M`). Merges combine neighbouring
//!   runs of similar size (size-tiered) and install the result the same
//!   way; a flush or merge killed at any point leaves the old manifest, and
//!   its runs, in force (the unlisted run is deleted at the next writable
//!   open; [`Lsm::open_read_only`] deletes nothing).
//! - **Reads** take a [`Snapshot`]: one version of the memtable and runs,
//!   held for as long as the reader wants, so a page, its count and its
//!   marker come from the same state.
//! - A caller whose keys change meaning starts its engine again from
//!   nothing ([`Lsm::discard`]) and commits its whole log anew.

mod arena;
mod block;
mod bloom;
mod chunked;
pub mod codec;
mod compact;
mod cursor;
pub mod entry;
mod memtable;
mod run;
mod snapshot;
mod sort;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "testkit"))]
pub use block::{as_format_0, as_format_1};
pub use cursor::Range;
pub use entry::{Entry, Value};
use memtable::push_slice;
pub use memtable::{Ops, Slice};
use run::{BlockCache, Run, RunMeta};
use snapshot::Version;
pub use snapshot::{prefix_end, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("store i/o: {0}")]
    Sled(#[from] sled::Error),
    #[error("store holds an undecodable value under key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    /// A merge given up because its store is closing.
    #[error("the merge was stopped")]
    Stopped,
}

impl LsmError {
    fn corrupt(key: &[u8], reason: impl std::fmt::Display) -> LsmError {
        LsmError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_string(),
        }
    }
}

impl From<postcard::Error> for LsmError {
    fn from(e: postcard::Error) -> LsmError {
        LsmError::corrupt(b"(postcard)", e)
    }
}

/// The engine's keys in the tree it shares with its caller: upper-case
/// first bytes (the store's own keyspaces are lower-case).
pub mod layout {
    /// `L` seq part → a batch's operations: layouts 6 and 7 only, deleted
    /// when such a store is upgraded ([`super::Lsm::discard`]).
    pub const BATCH_LOG: u8 = b'L';
    /// `R` run block → a run's block (zstd)
    pub const RUN_BLOCK: u8 = b'R';
    /// `S` run part → its metadata (postcard), in parts
    pub const RUN_META: u8 = b'S';
    /// `M` → the manifest (postcard)
    pub const MANIFEST: &[u8] = b"M";
    /// `N` → the highest run id handed out (u64): written before a run's
    /// first block, so an id is never used twice, even by a run killed
    /// before any manifest listed it.
    pub const RUN_IDS: &[u8] = b"N";

    #[cfg(test)]
    pub fn batch_log(seq: u64) -> Vec<u8> {
        [&[BATCH_LOG][..], &seq.to_be_bytes()].concat()
    }

    pub fn run_block(run: u64, block: u32) -> Vec<u8> {
        [&[RUN_BLOCK][..], &run.to_be_bytes(), &block.to_be_bytes()].concat()
    }

    pub fn run_meta(run: u64) -> Vec<u8> {
        [&[RUN_META][..], &run.to_be_bytes()].concat()
    }

    pub fn read_seq(k: &[u8]) -> Option<u64> {
        Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
    }
}

/// The engine's settings.
#[derive(Clone)]
pub struct Config {
    /// Raw bytes per run block before it is cut (compressed, a block is
    /// about a third of this).
    pub block_bytes: usize,
    /// Raw bytes per frame of a block where point reads go (the `bloomed`
    /// keys; format 2, [`block`]): what a point read decompresses.
    pub frame_bytes: usize,
    /// Decoded blocks kept in memory.
    pub cache_bytes: usize,
    /// A flush is due once the memtable holds this many bytes.
    pub memtable_bytes: usize,
    /// This many runs of one size tier are merged into one.
    pub merge_width: usize,
    /// The keys point reads ask for, which runs' Bloom filters hold.
    pub bloomed: fn(&[u8]) -> bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            // About 16-24 KiB compressed: what sled reads and writes best
            // (docs/benchmarks.md, "Store v3").
            block_bytes: 48 << 10,
            // About ten records: a page's record reads decompress this much
            // each instead of a whole block (docs/benchmarks.md, "Frames").
            frame_bytes: 4 << 10,
            cache_bytes: 128 << 20,
            memtable_bytes: 64 << 20,
            merge_width: 4,
            bloomed: |_| true,
        }
    }
}

/// What the manifest lists: the runs in force, newest first, and the last
/// position of the caller's log whose operations they hold.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Manifest {
    runs: Vec<u64>,
    flushed_through: u64,
    next_run: u64,
}

struct State {
    manifest: Manifest,
    /// A flush is writing the batches up to this one: newer slices must not
    /// merge into theirs, or the flush would drop them with its own.
    flushing_through: u64,
}

pub struct Lsm {
    tree: sled::Tree,
    config: Config,
    /// The memtable's bound (the config's, until set).
    memtable_bytes: std::sync::atomic::AtomicUsize,
    cache: Arc<BlockCache>,
    /// Writes, flushes and merges install versions one at a time.
    state: Mutex<State>,
    current: Mutex<Arc<Version>>,
    graveyard: std::sync::mpsc::Sender<RunMeta>,
    buried: Mutex<std::sync::mpsc::Receiver<RunMeta>>,
    /// One flush at a time, and one merge, from whichever thread; a flush
    /// runs beside a merge (only their installs take turns, on `state`),
    /// so ingest never waits for a merge.
    flushing: Mutex<()>,
    merging: Mutex<()>,
    /// Unit tests make flushes fail (1) or panic (2), or the deletion of
    /// replaced runs fail (3).
    #[cfg(test)]
    pub(crate) broken: std::sync::atomic::AtomicU8,
}

/// A lock that guards no data of its own (a turn to flush or merge): a
/// panic while it was held leaves nothing half-changed behind it.
fn turn(m: &Mutex<()>) -> MutexGuard<'_, ()> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What an install writes beside the manifest, the run it adds, and the
/// positions (in the run list) of the runs it replaces.
type Installing = (sled::Batch, Option<RunMeta>, std::ops::Range<usize>);

impl Lsm {
    /// Opens the engine over `tree`: the manifest's runs, and an empty
    /// memtable for the caller to fill from its log after
    /// [`Lsm::flushed_through`]. Runs no manifest lists (a
    /// flush or merge that did not finish: its blocks, with or without its
    /// metadata) are deleted.
    pub fn open(tree: sled::Tree, config: Config) -> Result<Lsm, LsmError> {
        Self::open_with(tree, config, true)
    }

    /// Opens the engine to read it only: nothing is deleted, and the caller
    /// never flushes or merges.
    pub fn open_read_only(tree: sled::Tree, config: Config) -> Result<Lsm, LsmError> {
        Self::open_with(tree, config, false)
    }

    fn open_with(tree: sled::Tree, config: Config, clean: bool) -> Result<Lsm, LsmError> {
        let mut manifest: Manifest = match tree.get(layout::MANIFEST)? {
            Some(v) => {
                postcard::from_bytes(&v).map_err(|e| LsmError::corrupt(layout::MANIFEST, e))?
            }
            None => Manifest::default(),
        };
        let cache = Arc::new(BlockCache::new(config.cache_bytes));
        let (graveyard, buried) = std::sync::mpsc::channel();
        let mut runs = Vec::new();
        for &id in &manifest.runs {
            let key = layout::run_meta(id);
            let v = chunked::get(&tree, &key)?.ok_or_else(|| {
                LsmError::corrupt(&key, "the manifest lists a run that is not stored")
            })?;
            let meta: RunMeta = postcard::from_bytes(&v).map_err(|e| LsmError::corrupt(&key, e))?;
            runs.push(Arc::new(Run::new(
                meta,
                tree.clone(),
                cache.clone(),
                graveyard.clone(),
            )));
        }
        if let Some(v) = tree.get(layout::RUN_IDS)? {
            let handed = layout::read_seq(&[&[0][..], &v].concat())
                .ok_or_else(|| LsmError::corrupt(layout::RUN_IDS, "bad run id"))?;
            manifest.next_run = manifest.next_run.max(handed);
        }
        if clean {
            let seen = run::delete_unlisted(&tree, &manifest.runs)?;
            manifest.next_run = manifest.next_run.max(seen);
        }
        Ok(Lsm {
            tree,
            memtable_bytes: config.memtable_bytes.into(),
            config,
            cache,
            state: Mutex::new(State {
                manifest,
                flushing_through: 0,
            }),
            current: Mutex::new(Arc::new(Version {
                slices: Vec::new(),
                runs,
            })),
            graveyard,
            buried: Mutex::new(buried),
            flushing: Mutex::new(()),
            merging: Mutex::new(()),
            #[cfg(test)]
            broken: Default::default(),
        })
    }

    /// Makes a batch's operations visible, once what they derive from is
    /// durable at positions `first..=last` of the caller's log (positions
    /// only grow).
    pub fn commit(&self, first: u64, last: u64, ops: Ops) {
        let slice = Slice::of_batch(first, last, ops, self.config.bloomed);
        let _state = self.state.lock().expect("lsm state");
        let mut current = self.current.lock().expect("lsm version");
        let mut next = (**current).clone();
        push_slice(&mut next.slices, slice);
        *current = Arc::new(next);
    }

    /// The last position of the caller's log whose operations the runs
    /// hold: the caller commits again what its log holds after it.
    pub fn flushed_through(&self) -> u64 {
        self.state
            .lock()
            .expect("lsm state")
            .manifest
            .flushed_through
    }

    /// The block cache's counted and real bytes ([`BlockCache::usage`]).
    pub fn cache_usage(&self) -> (usize, usize) {
        self.cache.usage()
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: self.current.lock().expect("lsm version").clone(),
            bloomed: self.config.bloomed,
        }
    }

    /// Whether the memtable is over its bound.
    pub fn flush_due(&self) -> bool {
        self.memtable_bytes()
            >= self
                .memtable_bytes
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the memtable is past twice its bound: flushes fell behind.
    pub fn far_over_bound(&self) -> bool {
        self.memtable_bytes()
            >= 2 * self
                .memtable_bytes
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sets the memtable's bound.
    pub fn set_memtable_bytes(&self, bytes: usize) {
        self.memtable_bytes
            .store(bytes.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The memtable's bound.
    pub fn memtable_bound(&self) -> usize {
        self.memtable_bytes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes in the memtable.
    pub fn memtable_bytes(&self) -> usize {
        let v = self.current.lock().expect("lsm version").clone();
        v.slices.iter().map(|s| s.bytes).sum()
    }
}
