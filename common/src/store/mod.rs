//! The projection store: records, secondary indexes, the per-record event log,
//! partition checkpoints and the quarantine, in one sled tree (layout in
//! [`keys`]). [`Store::apply_batch`] is the single entry point for writes: it
//! decodes, folds and writes a batch of Kafka messages together with their
//! checkpoints in ONE atomic sled batch, so a crash either keeps a batch and
//! its offsets or loses both — which is what makes replays exactly-once.

pub mod blocks;
mod consistency;
pub mod index;
pub mod keys;
mod merge;
mod plan;
pub mod query;
pub mod summary;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::instrument;

use crate::event::{decode, Event, MAX_EVENT_BYTES};
use crate::record::{Applied, Record, RecordState};
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
/// v5: `Live` lists per status in `created_at` order.
pub const LAYOUT: u32 = 5;

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
}

pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    /// Single writer: reads-then-write of a batch must not interleave.
    writer: Mutex<WriterState>,
}

impl Store {
    /// Opens (or creates) the store in `path`. `cache_bytes` is sled's page
    /// cache; it counts on-disk bytes, real memory use is a few times higher.
    ///
    /// sled locks the directory. Its background threads can hold the lock for
    /// a moment after the previous owner closed it (a restart, a reopen in
    /// the same process), so a held lock is retried for up to 5 s before
    /// giving up: a store that is really in use still fails, with that error.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let config = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(Some(500));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match config.open() {
                Ok(db) => return Self::from_db(db, &path.display().to_string()),
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A throw-away store in memory (tests, `verify` against a fresh fold).
    pub fn temporary() -> Result<Store, StoreError> {
        Self::from_db(sled::Config::new().temporary(true).open()?, "(temporary)")
    }

    fn from_db(db: sled::Db, path: &str) -> Result<Store, StoreError> {
        let tree = db.open_tree("projection")?;
        check_layout(&tree, path)?;
        let totals = match tree.get(keys::META_TOTALS)? {
            Some(v) => {
                postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(keys::META_TOTALS, e))?
            }
            None => Totals::default(),
        };
        let mut checkpoints = Checkpoints::new();
        for kv in tree.scan_prefix([keys::space::CHECKPOINT]) {
            let (k, v) = kv?;
            let tp = keys::read_checkpoint(&k)
                .ok_or_else(|| StoreError::corrupt(&k, "bad checkpoint key"))?;
            checkpoints.insert(tp, read_i64(&k, &v)?);
        }
        Ok(Store {
            db,
            tree,
            writer: Mutex::new(WriterState {
                totals,
                checkpoints,
            }),
        })
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
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

    /// Decodes, folds and writes a batch in one atomic write, checkpoints
    /// included. Messages below their partition's checkpoint were applied by
    /// an earlier batch and are skipped.
    #[instrument(skip_all, fields(messages = messages.len()))]
    pub fn apply_batch(&self, messages: &[Message]) -> Result<BatchOutcome, StoreError> {
        let mut w = self.writer.lock().expect("writer lock");
        let mut totals = w.totals;
        let mut checkpoints: HashMap<(&str, i32), i64> = HashMap::new();
        let mut outcome = BatchOutcome::default();
        let mut batch = sled::Batch::default();
        let mut touched: BTreeMap<String, Touched> = BTreeMap::new();
        let mut log: Vec<EventLogEntry> = Vec::new();

        for m in messages {
            let next = checkpoints
                .get(&(m.topic.as_str(), m.partition))
                .or_else(|| w.checkpoints.get(&(m.topic.clone(), m.partition)))
                .copied()
                .unwrap_or(0);
            if m.offset < next {
                outcome.already_applied += 1;
                continue;
            }
            checkpoints.insert((&m.topic, m.partition), m.offset + 1);
            let event = match decode(m.key.as_deref(), m.payload.as_deref()) {
                Ok(e) => e,
                Err(reject) => {
                    let raw = m.payload.as_deref().unwrap_or_default();
                    let entry = QuarantineEntry {
                        seq: totals.next_quarantine_seq,
                        topic: m.topic.clone(),
                        partition: m.partition,
                        offset: m.offset,
                        reason_code: reject.code().to_owned(),
                        reason: reject.to_string(),
                        key: m.key.clone(),
                        raw: raw[..raw.len().min(MAX_EVENT_BYTES)].to_vec(),
                    };
                    batch.insert(keys::quarantine(entry.seq), encode(&entry));
                    totals.next_quarantine_seq += 1;
                    totals.quarantined += 1;
                    outcome.quarantined += 1;
                    continue;
                }
            };
            let effect = self.fold_into(&mut touched, &event)?;
            match effect {
                EventEffect::Duplicate => {
                    totals.duplicates += 1;
                    outcome.duplicates += 1;
                }
                _ => {
                    totals.applied += 1;
                    outcome.applied += 1;
                }
            }
            let at = LogRef {
                chunk: totals.next_log_chunk + (log.len() / LOG_CHUNK) as u64,
                index: (log.len() % LOG_CHUNK) as u32,
            };
            touched
                .get_mut(&event.record_id)
                .expect("folded above")
                .log
                .push(at);
            log.push(EventLogEntry {
                seq: totals.next_event_seq,
                topic: m.topic.clone(),
                partition: m.partition,
                offset: m.offset,
                effect,
                raw: m.payload.clone().unwrap_or_default(),
            });
            totals.next_event_seq += 1;
        }
        for chunk in log.chunks(LOG_CHUNK) {
            batch.insert(
                keys::event_log(totals.next_log_chunk),
                compress_log(&encode(&chunk)),
            );
            totals.next_log_chunk += 1;
        }

        let mut count_deltas: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut lists: BTreeMap<Vec<u8>, blocks::Changes> = BTreeMap::new();
        for (id, t) in touched {
            let (before, after) = (&t.before, &t.after);
            let stored = StoredRecord {
                state: t.after.clone(),
                log: t.log,
            };
            batch.insert(keys::record(&id), encode(&stored));
            if before.as_ref() == Some(after) {
                continue;
            }
            if before.is_none() {
                totals.records += 1;
            }
            let old = before
                .as_ref()
                .map(|b| index::entries(&id, b))
                .unwrap_or_default();
            let new = index::entries(&id, after);
            for (list, suffix) in old.keys.keys().filter(|k| !new.keys.contains_key(*k)) {
                lists
                    .entry(list.clone())
                    .or_default()
                    .insert(suffix.clone(), None);
            }
            for ((list, suffix), v) in new.keys {
                if old.keys.get(&(list.clone(), suffix.clone())) != Some(&v) {
                    lists.entry(list).or_default().insert(suffix, Some(v));
                }
            }
            for k in old.counts {
                *count_deltas.entry(k).or_default() -= 1;
            }
            for k in new.counts {
                *count_deltas.entry(k).or_default() += 1;
            }
        }
        for (list, changes) in &lists {
            blocks::apply(&self.tree, &mut batch, list, index::blocked(list), changes)?;
        }
        for (k, delta) in count_deltas.into_iter().filter(|(_, d)| *d != 0) {
            let n = self.count(&k)? as i64 + delta;
            if n > 0 {
                batch.insert(k, &(n as u64).to_be_bytes());
            } else {
                batch.remove(k);
            }
        }
        for ((topic, partition), next) in &checkpoints {
            batch.insert(keys::checkpoint(topic, *partition), &next.to_be_bytes());
        }
        batch.insert(keys::META_TOTALS, encode(&totals));
        self.tree.apply_batch(batch)?;

        w.totals = totals;
        for ((topic, partition), next) in checkpoints {
            w.checkpoints.insert((topic.to_owned(), partition), next);
        }
        Ok(outcome)
    }

    fn fold_into(
        &self,
        touched: &mut BTreeMap<String, Touched>,
        e: &Event,
    ) -> Result<EventEffect, StoreError> {
        if let Some(t) = touched.get_mut(&e.record_id) {
            return Ok(effect(t.after.apply(e)));
        }
        let stored = self.stored_record(&e.record_id)?;
        let (t, effect) = match stored {
            Some(StoredRecord { state, log }) => {
                let mut after = state.clone();
                let a = after.apply(e);
                (
                    Touched {
                        before: Some(state),
                        after,
                        log,
                    },
                    effect(a),
                )
            }
            None => (
                Touched {
                    before: None,
                    after: RecordState::new(e),
                    log: Vec::new(),
                },
                EventEffect::Changed,
            ),
        };
        touched.insert(e.record_id.clone(), t);
        Ok(effect)
    }

    fn stored_record(&self, id: &str) -> Result<Option<StoredRecord>, StoreError> {
        let key = keys::record(id);
        match self.tree.get(&key)? {
            Some(v) => postcard::from_bytes(&v)
                .map(Some)
                .map_err(|e| StoreError::corrupt(&key, e)),
            None => Ok(None),
        }
    }

    pub fn record_state(&self, id: &str) -> Result<Option<RecordState>, StoreError> {
        Ok(self.stored_record(id)?.map(|s| s.state))
    }

    /// The record as listed under `project`: `None` when it does not exist or
    /// is not listed there.
    pub fn get(&self, project: &str, id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self
            .record_state(id)?
            .filter(|s| s.projects().contains(&project))
            .map(|s| s.view(id)))
    }

    /// The audit trail of a record, in arrival order.
    pub fn events(&self, record_id: &str) -> Result<Vec<EventLogEntry>, StoreError> {
        let Some(stored) = self.stored_record(record_id)? else {
            return Ok(Vec::new());
        };
        let mut chunks: HashMap<u64, Vec<EventLogEntry>> = HashMap::new();
        let mut out = Vec::with_capacity(stored.log.len());
        for r in stored.log {
            let key = keys::event_log(r.chunk);
            let chunk = match chunks.entry(r.chunk) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let v = self
                        .tree
                        .get(&key)?
                        .ok_or_else(|| StoreError::corrupt(&key, "missing event-log chunk"))?;
                    let bytes = zstd::stream::decode_all(v.as_ref())
                        .map_err(|e| StoreError::corrupt(&key, e))?;
                    e.insert(
                        postcard::from_bytes(&bytes).map_err(|e| StoreError::corrupt(&key, e))?,
                    )
                }
            };
            let entry = chunk.get(r.index as usize).cloned();
            out.push(
                entry.ok_or_else(|| StoreError::corrupt(&key, "event-log index out of range"))?,
            );
        }
        Ok(out)
    }

    /// Quarantined messages, newest first.
    pub fn quarantine(
        &self,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        self.tree
            .scan_prefix([keys::space::QUARANTINE])
            .rev()
            .skip(offset)
            .take(limit)
            .map(|kv| {
                let (k, v) = kv?;
                postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(&k, e))
            })
            .collect()
    }

    /// Every record, in id order.
    pub fn records(&self) -> impl Iterator<Item = Result<(String, RecordState), StoreError>> + '_ {
        self.tree.scan_prefix([keys::space::RECORD]).map(|kv| {
            let (k, v) = kv?;
            let id = keys::read_str(&k[1..])
                .and_then(|(id, _)| String::from_utf8(id).ok())
                .ok_or_else(|| StoreError::corrupt(&k, "bad record key"))?;
            let stored: StoredRecord =
                postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(&k, e))?;
            Ok((id, stored.state))
        })
    }

    /// SHA-256 over every record as the API renders it, in id order: equal
    /// digests mean equal projections.
    pub fn digest(&self) -> Result<String, StoreError> {
        let mut h = Sha256::new();
        for r in self.records() {
            let (id, state) = r?;
            h.update(serde_json::to_vec(&state.view(&id)).expect("record serializes"));
            h.update(b"\n");
        }
        Ok(hex::encode(h.finalize()))
    }

    fn count(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.tree.get(key)? {
            Some(v) => Ok(u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| StoreError::corrupt(key, "bad count"))?,
            )),
            None => Ok(0),
        }
    }
}

/// A new store is stamped with [`LAYOUT`]; an existing one must carry it.
/// Stores from before the stamp (v1) have data but no stamp.
fn check_layout(tree: &sled::Tree, path: &str) -> Result<(), StoreError> {
    let found = match tree.get(keys::META_LAYOUT)? {
        Some(v) => u32::from_be_bytes(
            v.as_ref()
                .try_into()
                .map_err(|_| StoreError::corrupt(keys::META_LAYOUT, "bad layout stamp"))?,
        ),
        None if tree.is_empty() => {
            tree.insert(keys::META_LAYOUT, &LAYOUT.to_be_bytes())?;
            LAYOUT
        }
        None => 1,
    };
    if found != LAYOUT {
        return Err(StoreError::Layout {
            path: path.to_owned(),
            found,
        });
    }
    Ok(())
}

fn effect(a: Applied) -> EventEffect {
    match a {
        Applied::Duplicate => EventEffect::Duplicate,
        Applied::New { changed: true } => EventEffect::Changed,
        Applied::New { changed: false } => EventEffect::Unchanged,
    }
}

/// Event-log chunks are raw JSON events of one batch: repetitive text that
/// zstd shrinks several-fold at a small CPU cost (docs/benchmarks.md).
fn compress_log(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 3).expect("zstd compresses in memory")
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
