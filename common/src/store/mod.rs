//! The projection store: records, secondary indexes, the per-record event log,
//! partition checkpoints and the quarantine, in one sled tree (layout in
//! [`keys`]). Records, index lists and counts live in the storage engine
//! ([`crate::lsm`]), derived from the events; the event log — their
//! write-ahead log ([`recover`]) —, the change log, the quarantine, the
//! checkpoints and the totals are sled keys of their own.
//! [`Store::apply_batch`] decodes, folds and writes a batch of Kafka
//! messages together with their checkpoints in ONE atomic sled batch, so a
//! crash either keeps a batch and its offsets or loses both — which is what
//! makes replays exactly-once.

mod apply;
pub mod as_of;
pub mod changes;
mod consistency;
mod durability;
mod engine;
mod error;
pub mod export;
pub mod gaps;
pub mod index;
pub mod keys;
pub mod listing;
pub mod lists;
mod merge;
mod names;
mod open;
pub mod outcomes;
mod ownership;
mod plan;
pub mod query;
mod read;
mod read_copy;
mod recover;
pub mod steps;
pub mod summary;
mod trail;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tracing::instrument;

use crate::event::{decode, Event, MAX_EVENT_BYTES};
use crate::record::{Applied, Record, RecordState};
pub use apply::Publish;
pub use engine::DEFAULT_MEMTABLE_MB;
pub use error::StoreError;
pub use query::{
    Dir, ListQuery, Page, SortField, SortKey, Stuck, Window, DEFAULT_LIMIT, MAX_LIMIT,
};
pub use steps::{Step, StepTimes};
pub use summary::{GroupField, Interval, SummaryQuery, SummaryRow};
pub use trail::TrailPage;

/// The store's physical layout. Bumped whenever keys or values change
/// meaning; a store of another layout is refused at open. v1: one key per
/// index entry; v2: index lists in blocks, the event log compressed; v3:
/// every record in a route posting (absent regions too), hour counts per
/// route; v4: the `Live` order of records still under way (stuck records);
/// v5: `Live` lists per status in `created_at` order; v6: records, index
/// lists and counts in the engine's batch logs and runs (store v3); v7:
/// the engine's batch logs and run metadata in parts below sled's blob size;
/// v8: no batch logs, the event log is the write-ahead log (the manifest
/// counts event-log chunks; [`recover`]); v9: run blocks prefix-compressed
/// (the engine's block format 1; blocks of format 0 still read); v10:
/// records under dense numbers, found by id through the id map (issue 37);
/// v11: every index entry's value ends with its record's number; v12:
/// posting and order lists under interned ids (`store/names.rs`); v13:
/// store-wide counts of records per status; v14: integer index entries —
/// postings, `Live` and `updated_at` entries keyed by instant and record
/// number, checkpoint items by a hash of the value (`store/index.rs`);
/// v15: the id order's entries by the id's first 8 bytes and the number;
/// v16: hour counts under their posting list's id; v17: the id order's
/// entries keep the id whole again (v15's prefix made ids that share it
/// one tie run, read whole); v18: run blocks in frames, each compressed on
/// its own, so a point read decompresses one frame (the engine's block
/// format 2; blocks of format 1 still read).
pub const LAYOUT: u32 = 18;

/// The older layouts a store is upgraded from in place, at its first
/// writable open: everything in its engine is derived from its event log,
/// which every one of them holds whole, so the engine is discarded and
/// derived again from the log ([`recover`]) — by the open itself.
const UPGRADES_IN_PLACE: [u32; 11] = [6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/// The older layouts this binary reads unchanged: their keys and values
/// are this layout's, only their run blocks of an older format, which still
/// read (merges rewrite them). Stamped with [`LAYOUT`] at the first writable
/// open, nothing derived again.
const READS_AS_IS: [u32; 1] = [17];

/// The version of what a store derives from its events: the decoder, the
/// fold and the index derivation. Recovery at open derives the memtable
/// again from the event log, so a binary that derives differently must not
/// recover another's unflushed events: bump this with any change to what
/// a sequence of events derives.
pub const FOLD_VERSION: u32 = 1;

/// The default cache budget, in MiB, shared by sled's page cache and the
/// engine's decoded blocks ([`engine::split_cache`]); sled holds about 1.1
/// MiB of memory per MiB of its share. With store v2, 256 of sled cache
/// kept a 10-minute load under 1 GiB where 512 went over
/// (docs/benchmarks.md, "RSS"; for store v3, "Store v3 mends").
pub const DEFAULT_CACHE_MB: u64 = 256;

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
    /// Events that occurred at or after the store's `until`: consumed (the
    /// checkpoint passes them), neither folded nor logged.
    pub after_until: u64,
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
    /// As bytes, not a sequence: postcard writes the same encoding either
    /// way, a sequence one byte at a time.
    #[serde(with = "serde_bytes")]
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

/// The value under a record number: the record's id, its fold state and,
/// in arrival order, where its audit-trail entries are.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredRecord {
    id: String,
    state: RecordState,
    log: Vec<LogRef>,
}

/// A [`StoredRecord`] to write, borrowed: the same encoding.
#[derive(Serialize)]
struct StoredRecordRef<'a> {
    id: &'a str,
    state: &'a RecordState,
    log: &'a [LogRef],
}

/// A record as a batch sees it.
struct Touched {
    /// Its number: stored, or given at first sight ([`Numbering`]).
    number: u32,
    before: Option<RecordState>,
    after: RecordState,
    log: Vec<LogRef>,
}

/// The next record number. A record is numbered when its first event is
/// folded, so numbers follow the event log's order whatever the batches:
/// recovery at open, folding the same events from the number the engine
/// held at its last flush ([`keys::NUMBERED`]), gives the same numbers.
#[derive(Debug, Clone, Copy)]
struct Numbering(u32);

impl Numbering {
    fn take(&mut self) -> Result<u32, StoreError> {
        let n = self.0;
        self.0 = n
            .checked_add(1)
            .ok_or(StoreError::Numbers(u64::from(u32::MAX) + 1))?;
        Ok(n)
    }
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

/// Checkpoints as one line: `topic/partition:next offset`, space separated,
/// or `none` (what `digest` prints and an export's `X-Export-Offsets` says).
pub fn checkpoints_text(checkpoints: &Checkpoints) -> String {
    if checkpoints.is_empty() {
        return "none".into();
    }
    checkpoints
        .iter()
        .map(|((t, p), next)| format!("{t}/{p}:{next}"))
        .collect::<Vec<_>>()
        .join(" ")
}

struct WriterState {
    totals: Totals,
    checkpoints: Checkpoints,
    /// Change numbers durably reserved up to.
    change_reserved: u64,
    /// The change log's batches.
    changes_logged: changes::Logged,
    /// The next record number (the engine's count of numbered records, with
    /// the memtable's).
    numbering: Numbering,
    /// Events that occurred at or after this time are consumed but not
    /// folded: a store of the projection as of it (`replay --until`).
    until: Option<crate::instant::Micros>,
    /// A fold worker's changelog messages published so far.
    published: u64,
    /// A fold worker's: the events topic's partition count, by which each
    /// event must be in its record's partition ([`apply`]).
    events_partitions: Option<u32>,
}

/// The store as its owner holds it: it opens and closes the store, writes
/// batches ([`Store::apply_batch`]), and hands out the two ways to read it —
/// a [`ReadView`] ([`Store::view`]) and the change feed ([`Store::feed`]).
pub struct Store {
    shared: Arc<Shared>,
}

/// One version of the store, to read: the engine's snapshot and the change
/// feed's head, taken together (the head first: the snapshot then holds
/// every change up to it). What one request reads — a page, its count and
/// its marker, a summary's buckets, the changes after a client's — comes
/// from one view, whatever batches land meanwhile.
pub struct ReadView {
    shared: Arc<Shared>,
    snap: crate::lsm::Snapshot,
    head: u64,
}

impl std::ops::Deref for Store {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}

impl std::ops::Deref for ReadView {
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
    /// The interned lists' ids, whole (the engine's dictionary).
    names: names::Names,
    /// Single writer: reads-then-write of a batch must not interleave.
    writer: Mutex<WriterState>,
    feed: changes::Feed,
    /// Where the write path's time goes.
    steps: Arc<steps::Steps>,
    /// Batches' apply times and status changes since open, for `/metrics`.
    outcomes: outcomes::Outcomes,
    /// Events recovered at open.
    recovered: std::sync::atomic::AtomicU64,
    /// The directory, where the durability record lives (none in memory).
    dir: Option<std::path::PathBuf>,
    /// This store's entry among the process's open stores.
    _open: Option<open::OpenHere>,
    access: Access,
    /// The changelog partitions a listing shard's store lists (none: every
    /// project, from the events topic).
    listing: std::sync::OnceLock<listing::Listing>,
    /// The private copy a store opened to read reads (last: removed once
    /// sled has closed its files).
    copy: Option<read_copy::ReadCopy>,
}

impl Store {
    /// Makes everything written so far durable, and says so in the
    /// durability record.
    pub fn flush(&self) -> Result<(), StoreError> {
        // A store opened to read is left as it was found.
        if self.access == Access::Read {
            return Ok(());
        }
        let measure = durability::measure(&self.totals());
        self.db.flush()?;
        match &self.dir {
            Some(dir) => durability::write(dir, measure),
            None => Ok(()),
        }
    }

    /// A clean stop: the memtable is flushed into a run (so the next open
    /// recovers nothing, and a tracker that derives differently may open
    /// it), then everything is made durable ([`Store::flush`]).
    pub fn close(&self) -> Result<(), StoreError> {
        if self.access == Access::Write {
            let _writer = self.writer.lock().expect("writer lock");
            while self.lsm.flush()? {}
        }
        self.flush()
    }

    /// Where the store is, as errors name it ("(in memory)" for a
    /// temporary one).
    pub fn location(&self) -> String {
        self.dir
            .as_deref()
            .map_or_else(|| "(in memory)".to_owned(), |d| d.display().to_string())
    }

    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// The change feed: live batches of changes, and the store's identity
    /// in change ids.
    pub fn feed(&self) -> &changes::Feed {
        &self.feed
    }

    /// Batches' apply times and status changes since the store was opened.
    pub fn outcomes(&self) -> outcomes::Snapshot {
        self.outcomes.snapshot()
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
            // The flush thread merges the memtable's slices.
            if let Some(m) = self.maintenance.as_ref().filter(|_| self.lsm.slices_due()) {
                m.poke();
            }
            return;
        }
        match &self.maintenance {
            Some(m) if !self.lsm.far_over_bound() => m.poke(),
            Some(_) => {
                let start = std::time::Instant::now();
                let done = engine::guarded(|| self.lsm.flush().map(|_| ()));
                self.steps.add(Step::WriterFlush, start);
                self.health.set(engine::Job::Flush, done.err());
            }
            None => engine::round(&self.lsm, &self.health, &self.steps),
        }
    }

    /// The write path's time so far, per step ([`steps`]).
    pub fn step_times(&self) -> StepTimes {
        self.steps.read()
    }

    /// Bytes in the engine's memtable, and its bound.
    pub fn memtable_bytes(&self) -> usize {
        self.lsm.memtable_bytes()
    }

    pub fn memtable_bound(&self) -> usize {
        self.lsm.memtable_bound()
    }

    /// Events the open recovered from the event log ([`recover`]).
    pub fn recovered_at_open(&self) -> u64 {
        self.recovered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The engine's memtable bound, in bytes (`--memtable-mb`).
    pub fn set_memtable_bytes(&self, bytes: u64) {
        self.lsm.set_memtable_bytes(bytes as usize);
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
