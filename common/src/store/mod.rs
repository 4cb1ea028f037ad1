//! The projection store: records, secondary indexes, the per-record event log,
//! partition checkpoints and the quarantine, in one sled tree (layout in
//! [`keys`]). Records, index lists and counts live in the storage engine
//! ([`crate::lsm`]): a batch's changes to them are ONE compressed batch log;
//! the event log, the change log, the quarantine, the checkpoints and the
//! totals are sled keys of their own. [`Store::apply_batch`] decodes, folds
//! and writes a batch of Kafka messages together with their checkpoints in
//! ONE atomic sled batch, so a crash either keeps a batch and its offsets or
//! loses both — which is what makes replays exactly-once.

mod apply;
pub mod changes;
mod consistency;
mod engine;
pub mod gaps;
pub mod index;
pub mod keys;
pub mod lists;
mod marker;
mod merge;
mod ownership;
mod plan;
pub mod query;
mod read;
pub mod summary;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::event::{decode, Event, MAX_EVENT_BYTES};
use crate::record::{Applied, Record, RecordState};
pub use engine::DEFAULT_MEMTABLE_MB;
pub use query::{
    Dir, ListQuery, Page, SortField, SortKey, Stuck, Window, DEFAULT_LIMIT, MAX_LIMIT,
};
pub use summary::{GroupField, Interval, SummaryQuery, SummaryRow};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store i/o: {0}")]
    Sled(#[from] sled::Error),
    #[error("store holds an undecodable value under key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "the store at {path} was written with layout v{found}; this tracker reads layout v{LAYOUT} \
         and never reinterprets or wipes a store. Rebuild it from the topic into a new directory \
         with `tracker replay --out <new dir>` and point --data-dir there"
    )]
    Layout { path: String, found: u32 },
    #[error(
        "no store at {path}: check the data directory (--data-dir, TRACKER_DATA_DIR, data_dir). \
         `tracker replay --out {path}` builds one from the topic"
    )]
    Missing { path: String },
    #[error(
        "the store at {path} is in use by another process (a running tracker?): stop it, \
         or give another data directory"
    )]
    Locked { path: String },
    #[error(
        "the store at {path} is damaged ({file}): {reason}. The tracker neither repairs nor \
         wipes it: rebuild it from the topic into a new directory with `tracker replay --out \
         <new dir>` and point --data-dir there, or restore a backup"
    )]
    Damaged {
        path: String,
        file: String,
        reason: String,
    },
    /// The engine's background flush or merge failed (a full disk, say).
    #[error("the store's flush or merge failed: {0}")]
    Engine(String),
    /// A request the store cannot answer as asked (a bad `marker`, say);
    /// `param` names the request parameter at fault.
    #[error("{param}: {reason}")]
    Query { param: &'static str, reason: String },
}

/// The store's physical layout. Bumped whenever keys or values change
/// meaning; a store of another layout is refused at open. v1: one key per
/// index entry; v2: index lists in blocks, the event log compressed; v3:
/// every record in a route posting (absent regions too), hour counts per
/// route; v4: the `Live` order of records still under way (stuck records);
/// v5: `Live` lists per status in `created_at` order; v6: records, index
/// lists and counts in the engine's batch logs and runs (store v3); v7:
/// the engine's batch logs and run metadata in parts below sled's blob size.
pub const LAYOUT: u32 = 7;

/// The one older layout a store is upgraded from in place (at its first
/// writable open).
const UPGRADES_IN_PLACE: u32 = 6;

/// The default cache budget, in MiB, shared by sled's page cache and the
/// engine's decoded blocks ([`engine::split_cache`]); sled holds about 1.1
/// MiB of memory per MiB of its share. With store v2, 256 of sled cache
/// kept a 10-minute load under 1 GiB where 512 went over
/// (docs/benchmarks.md, "RSS"; for store v3, "Store v3 mends").
pub const DEFAULT_CACHE_MB: u64 = 256;

impl StoreError {
    fn query(param: &'static str, reason: impl ToString) -> StoreError {
        StoreError::Query {
            param,
            reason: reason.to_string(),
        }
    }

    fn corrupt(key: &[u8], reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_string(),
        }
    }
}

/// One Kafka message, as the ingest adapter hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// New events folded into their record.
    pub applied: u64,
    /// Events whose `event_id` the record had already seen.
    pub duplicates: u64,
    /// Messages kept in the quarantine.
    pub quarantined: u64,
    /// Messages below the stored checkpoint (already applied): ignored.
    pub already_applied: u64,
}

/// Store-wide totals, written in every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub applied: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    pub records: u64,
    /// Next event-log sequence number.
    pub next_event_seq: u64,
    /// Next event-log chunk key.
    pub next_log_chunk: u64,
    /// Next quarantine sequence number.
    pub next_quarantine_seq: u64,
}

/// How an accepted event affected its record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum EventEffect {
    Changed,
    Unchanged,
    Duplicate,
}

/// One entry of a record's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventLogEntry {
    pub seq: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub effect: EventEffect,
    /// The message value as published (valid UTF-8 JSON: it was accepted).
    pub raw: Vec<u8>,
}

/// Where one event-log entry lives: its chunk and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRef {
    pub chunk: u64,
    pub index: u32,
}

/// Entries per event-log chunk. A batch's log is written as a few chunks
/// rather than one key per event: sled inserts bound the apply rate.
const LOG_CHUNK: usize = 256;

/// Raw bytes per event-log chunk at most (but for one event alone, itself
/// bounded by the 64 KiB event limit).
const LOG_CHUNK_BYTES: usize = 96 << 10;

/// The value under a record key: the fold state and, in arrival order, where
/// the record's audit-trail entries are.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRecord {
    state: RecordState,
    log: Vec<LogRef>,
}

/// A record as a batch sees it.
struct Touched {
    before: Option<RecordState>,
    after: RecordState,
    log: Vec<LogRef>,
}

/// A message that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub seq: u64,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub reason_code: String,
    pub reason: String,
    pub key: Option<Vec<u8>>,
    /// The value, or its first 64 KiB.
    pub raw: Vec<u8>,
}

/// Partition checkpoints: next offset to read, per (topic, partition).
pub type Checkpoints = BTreeMap<(String, i32), i64>;

struct WriterState {
    totals: Totals,
    checkpoints: Checkpoints,
    /// Change numbers durably reserved up to.
    change_reserved: u64,
    /// The change log's batches.
    changes_logged: changes::Logged,
}

/// The store, as its users hold it: the shared state, and for a read that
/// must see one version throughout (a page, its count and its marker) the
/// engine snapshot it is pinned to ([`Store::pinned`]).
pub struct Store {
    shared: Arc<Shared>,
    pin: Option<crate::lsm::Snapshot>,
}

impl std::ops::Deref for Store {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

/// How a store is opened: to ingest, or only to read (no flush, merge or
/// clean-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Write,
    Read,
}

/// Everything one store is, whoever reads it.
pub struct Shared {
    /// Flushes and merges beside ingest (none in unit tests: there the
    /// writer does them, deterministically). First, so that it is stopped
    /// before the rest is dropped.
    maintenance: Option<engine::Maintenance>,
    /// The last failed flush or merge, until one succeeds.
    health: engine::Health,
    db: sled::Db,
    tree: sled::Tree,
    /// Records, index lists and counts.
    lsm: Arc<crate::lsm::Lsm>,
    /// Single writer: reads-then-write of a batch must not interleave.
    writer: Mutex<WriterState>,
    feed: changes::Feed,
    /// The directory, where the durability marker lives (none in memory).
    dir: Option<std::path::PathBuf>,
    access: Access,
}

impl Store {
    /// Opens (or creates) the store in `path`. `cache_bytes` is the cache
    /// budget, shared by sled's page cache and the engine's decoded blocks
    /// ([`engine::split_cache`]).
    ///
    /// sled locks the directory. Its background threads can hold the lock for
    /// a moment after the previous owner closed it (a restart, a reopen in
    /// the same process), so a held lock is retried for up to 5 s before
    /// giving up: a store that is really in use still fails, with that error.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Self::open_as(path, cache_bytes, Access::Write)
    }

    fn open_as(path: &Path, cache_bytes: u64, access: Access) -> Result<Store, StoreError> {
        // No `.mode(..)`: sled 0.34.7 stores it and never reads it.
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(engine::split_cache(cache_bytes).0)
            .flush_every_ms(Some(500));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match marker::open_guarded(&config, path)? {
                Ok(db) => {
                    let shown = path.display().to_string();
                    return Self::from_db(db, &shown, Some(path), cache_bytes, access);
                }
                Err(sled::Error::Corruption { at, .. }) => {
                    return Err(marker::damaged(
                        path,
                        &path.join("db"),
                        format!("sled finds its log corrupt (at {at:?})"),
                    ))
                }
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    if std::time::Instant::now() >= deadline {
                        return Err(StoreError::Locked {
                            path: path.display().to_string(),
                        });
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Opens the store in `path`, which must already hold one, to write to
    /// it (`accept-gap`), where a mistyped path must not become a new,
    /// empty store.
    pub fn open_existing(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Self::require_existing(path)?;
        Self::open(path, cache_bytes)
    }

    /// Opens an existing store to read it (`digest`, `verify`, `query`):
    /// no flush or merge runs and nothing the engine left is cleaned up, so
    /// examining a store after a failure does not change its engine.
    pub fn open_read_only(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Self::require_existing(path)?;
        Self::open_as(path, cache_bytes, Access::Read)
    }

    /// sled's own files, its configuration and its log, are in `path`.
    fn require_existing(path: &Path) -> Result<(), StoreError> {
        if !path.join("conf").is_file() || !path.join("db").is_file() {
            return Err(StoreError::Missing {
                path: path.display().to_string(),
            });
        }
        Ok(())
    }

    /// A throw-away store in memory (tests, `verify` against a fresh fold).
    pub fn temporary() -> Result<Store, StoreError> {
        Self::from_db(
            sled::Config::new().temporary(true).open()?,
            "(temporary)",
            None,
            DEFAULT_CACHE_MB << 20,
            Access::Write,
        )
    }

    /// `dir`: where the durability marker is (none for a store in memory).
    /// `cache_bytes`: sled's page cache, and as much again for the engine's
    /// decoded blocks.
    fn from_db(
        db: sled::Db,
        path: &str,
        dir: Option<&Path>,
        cache_bytes: u64,
        access: Access,
    ) -> Result<Store, StoreError> {
        let tree = db.open_tree("projection")?;
        // Before an empty store is stamped: it may be one that lost everything.
        if let (Some(dir), true) = (dir, tree.is_empty()) {
            marker::check(dir, &Totals::default())?;
        }
        ownership::check_layout(&tree, path, access == Access::Write)?;
        let totals = match tree.get(keys::META_TOTALS)? {
            Some(v) => {
                postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(keys::META_TOTALS, e))?
            }
            None => Totals::default(),
        };
        if let Some(dir) = dir {
            marker::check(dir, &totals)?;
        }
        let mut checkpoints = Checkpoints::new();
        for kv in tree.scan_prefix([keys::space::CHECKPOINT]) {
            let (k, v) = kv?;
            let tp = keys::read_checkpoint(&k)
                .ok_or_else(|| StoreError::corrupt(&k, "bad checkpoint key"))?;
            checkpoints.insert(tp, read_i64(&k, &v)?);
        }
        let (next_change, change_reserved, changes_logged) = changes::open(&tree)?;
        let feed_id = changes::feed_id(&tree, access == Access::Write)?;
        let config = engine::config(engine::split_cache(cache_bytes).1);
        let lsm = match access {
            Access::Write => crate::lsm::Lsm::open(tree.clone(), config),
            Access::Read => crate::lsm::Lsm::open_read_only(tree.clone(), config),
        };
        // What the engine keeps in sled does not read back: the store is
        // damaged (a lost or torn value), not merely unreadable.
        let lsm = Arc::new(lsm.map_err(|e| match (dir, lost(&e)) {
            (Some(dir), true) => marker::damaged(dir, &dir.join("db"), format!("its engine: {e}")),
            _ => e.into(),
        })?);
        let health = engine::Health::default();
        let maintenance = (!cfg!(test) && access == Access::Write)
            .then(|| engine::Maintenance::start(lsm.clone(), health.clone()));
        let shared = Shared {
            db,
            lsm,
            maintenance,
            health,
            tree,
            writer: Mutex::new(WriterState {
                totals,
                checkpoints,
                change_reserved,
                changes_logged,
            }),
            feed: changes::Feed::new(next_change, feed_id),
            access,
            dir: dir.map(Path::to_owned),
        };
        Ok(Store {
            shared: Arc::new(shared),
            pin: None,
        })
    }

    /// Makes everything written so far durable, and says so in the
    /// durability marker.
    pub fn flush(&self) -> Result<(), StoreError> {
        // A store opened to read is left as it was found.
        if self.access == Access::Read {
            return Ok(());
        }
        let measure = marker::measure(&self.totals());
        self.db.flush()?;
        match &self.dir {
            Some(dir) => marker::write(dir, measure),
            None => Ok(()),
        }
    }

    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    pub fn totals(&self) -> Totals {
        self.writer.lock().expect("writer lock").totals
    }

    pub fn checkpoints(&self) -> Checkpoints {
        self.writer.lock().expect("writer lock").checkpoints.clone()
    }

    /// Before a batch: a flush or merge that failed fails the batch, with
    /// nothing written, until one succeeds (the maintenance thread retries;
    /// without one, the writer retries here).
    pub(super) fn check_maintenance(&self) -> Result<(), StoreError> {
        if self.maintenance.is_none() && self.health.failure().is_some() {
            self.maintain();
        }
        match self.health.failure() {
            Some(e) => Err(StoreError::Engine(e)),
            None => Ok(()),
        }
    }

    /// After a batch (written and published whatever happens here): a
    /// flush once the memtable is over its bound, by the maintenance thread
    /// — or by the writer itself in unit tests, or when the memtable is past
    /// twice its bound (flushes fell behind: a flush only, never a merge,
    /// which runs beside it on the maintenance thread). A failure is
    /// recorded for the next batch.
    fn maintain(&self) {
        if !self.lsm.flush_due() && self.health.failure().is_none() {
            return;
        }
        match &self.maintenance {
            Some(m) if !self.lsm.far_over_bound() => m.poke(),
            Some(_) => {
                let done = engine::guarded(|| self.lsm.flush().map(|_| ()));
                self.health.set(engine::Job::Flush, done.err());
            }
            None => engine::round(&self.lsm, &self.health),
        }
    }

    /// The engine's memtable bound, in bytes (`--memtable-mb`).
    pub fn set_memtable_bytes(&self, bytes: u64) {
        self.lsm.set_memtable_bytes(bytes as usize);
    }
}

/// Whether an engine error at open means data that does not read back (a
/// torn or lost value, or a blob file sled's log names but a power cut
/// lost), rather than a failure of the moment (permissions, no files left).
fn lost(e: &crate::lsm::LsmError) -> bool {
    use std::io::ErrorKind::{NotFound, UnexpectedEof};
    match e {
        crate::lsm::LsmError::Corrupt { .. } => true,
        crate::lsm::LsmError::Sled(sled::Error::Corruption { .. }) => true,
        crate::lsm::LsmError::Sled(sled::Error::Io(io)) => {
            matches!(io.kind(), NotFound | UnexpectedEof)
        }
        _ => false,
    }
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).expect("store values always serialize")
}

fn read_i64(k: &[u8], v: &[u8]) -> Result<i64, StoreError> {
    Ok(i64::from_be_bytes(
        v.try_into()
            .map_err(|_| StoreError::corrupt(k, "bad offset"))?,
    ))
}

#[cfg(test)]
mod tests;
