//! The store's reads: one record, the quarantine, every record and the
//! digest over them, counts — each through the version a [`ReadView`] holds
//! (one per request).

use super::{
    keys, lists, Checkpoints, EventLogEntry, QuarantineEntry, ReadView, StoredRecord, Totals,
};
use crate::record::{Record, RecordState, Status};
use crate::store::{Store, StoreError};

impl Store {
    /// The store as of now, to read ([`ReadView`]).
    pub fn view(&self) -> ReadView {
        let head = self.feed.head();
        ReadView {
            shared: self.shared.clone(),
            snap: self.lsm.snapshot(),
            head,
        }
    }

    /// The store between two batches, with the totals and checkpoints of
    /// that same point: a digest and what it was taken at.
    pub fn view_at_rest(&self) -> (ReadView, Totals, Checkpoints) {
        // The writer holds its lock from a batch's write to its commit.
        let w = self.writer.lock().expect("writer lock");
        (self.view(), w.totals, w.checkpoints.clone())
    }
}

impl ReadView {
    /// The engine's version this view reads.
    pub(super) fn snap(&self) -> crate::lsm::Snapshot {
        self.snap.clone()
    }

    /// The key prefix of the entries of the list named `name` (a posting
    /// list's [`index::Posting::name`], [`keys::order_list`],
    /// [`keys::live_list`]): under its interned id, or a prefix that holds
    /// nothing when no record was ever in it.
    pub(super) fn list_prefix(&self, name: &[u8]) -> Vec<u8> {
        self.names.prefix(name)
    }

    /// The prefix of the per-hour counts of `posting` in `project`: under
    /// the posting list's interned id, like its entries.
    pub(super) fn hour_prefix(&self, posting: &super::index::Posting, project: &str) -> Vec<u8> {
        keys::hour_counts(&self.list_prefix(&posting.name(project)))
    }

    /// The record `id` and its number, through the id map.
    pub(super) fn stored_record(
        &self,
        id: &str,
    ) -> Result<Option<(u32, StoredRecord)>, StoreError> {
        let snap = self.snap();
        let key = keys::record_id(id);
        let Some(number) = bytes(&key, snap.get(&key)?)? else {
            return Ok(None);
        };
        let number =
            keys::read_number(&number).ok_or_else(|| StoreError::corrupt(&key, "bad number"))?;
        let stored = numbered(&snap, number)?
            .ok_or_else(|| StoreError::corrupt(&key, format!("no record numbered {number}")))?;
        if stored.id != id {
            return Err(StoreError::corrupt(
                &key,
                format!("record {number} is {:?}", stored.id),
            ));
        }
        Ok(Some((number, stored)))
    }

    pub fn record_state(&self, id: &str) -> Result<Option<RecordState>, StoreError> {
        Ok(self.stored_record(id)?.map(|(_, s)| s.state))
    }

    /// The record numbered `number`, with its id: an index entry named it
    /// (one point read, no id map), so a missing record is corruption.
    pub(super) fn row_of(&self, number: u32) -> Result<(String, RecordState), StoreError> {
        indexed(&self.snap, number)
    }

    /// The records numbered `numbers`, in that order, read in number order:
    /// records numbered near each other share a run block's frame, which
    /// is then found and decompressed once for all of them
    /// ([`crate::lsm::Snapshot::get_many`]), and one version is read.
    pub(super) fn rows_of(
        &self,
        numbers: &[u32],
    ) -> Result<Vec<(String, RecordState)>, StoreError> {
        self.rows_read(numbers, true)
    }

    /// [`ReadView::rows_of`] for a bulk read (an export): through the
    /// block cache without filling it, so a read of a whole project keeps
    /// the cache — and the process's memory — as they were.
    pub(super) fn rows_around_cache(
        &self,
        numbers: &[u32],
    ) -> Result<Vec<(String, RecordState)>, StoreError> {
        self.rows_read(numbers, false)
    }

    fn rows_read(
        &self,
        numbers: &[u32],
        fill: bool,
    ) -> Result<Vec<(String, RecordState)>, StoreError> {
        let mut by_number: Vec<usize> = (0..numbers.len()).collect();
        by_number.sort_unstable_by_key(|&i| numbers[i]);
        let keys: Vec<_> = by_number
            .iter()
            .map(|&i| keys::record(numbers[i]))
            .collect();
        let values = self.snap.get_many(&keys, fill)?;
        let mut rows: Vec<Option<(String, RecordState)>> = vec![None; numbers.len()];
        for ((i, key), v) in by_number.into_iter().zip(&keys).zip(values) {
            let stored = named(key, record_at(key, v)?)?;
            rows[i] = Some((stored.id, stored.state));
        }
        Ok(rows.into_iter().flatten().collect())
    }

    /// The record as listed under `project`: `None` when it does not exist or
    /// is not listed there.
    pub fn get(&self, project: &str, id: &str) -> Result<Option<Record>, StoreError> {
        Ok(self
            .record_state(id)?
            .filter(|s| s.projects().contains(&project))
            .map(|s| s.view(id)))
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

    /// Every record, in id order: the id map, and each record by number.
    pub fn records(&self) -> impl Iterator<Item = Result<(String, RecordState), StoreError>> + '_ {
        let snap = self.snap();
        lists::scan(&snap, &[keys::space::RECORD_ID], true).map(move |kv| {
            let (k, v) = kv?;
            let number =
                keys::read_number(&v).ok_or_else(|| StoreError::corrupt(&k, "bad number"))?;
            let stored = numbered(&snap, number)?
                .ok_or_else(|| StoreError::corrupt(&k, format!("no record numbered {number}")))?;
            Ok((stored.id, stored.state))
        })
    }

    /// Every record in number order, with its number.
    pub(super) fn numbered_records(
        &self,
    ) -> impl Iterator<Item = Result<(u32, StoredRecord), StoreError>> + '_ {
        lists::scan(&self.snap(), &[keys::space::RECORD], true).map(|kv| {
            let (k, v) = kv?;
            let number = k
                .get(1..)
                .and_then(keys::read_number)
                .ok_or_else(|| StoreError::corrupt(&k, "bad record key"))?;
            let stored = postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(&k, e))?;
            Ok((number, stored))
        })
    }

    /// The next record number: the engine's count of numbered records.
    pub(super) fn numbered(&self) -> Result<u32, StoreError> {
        let n = self.count(keys::NUMBERED)?;
        u32::try_from(n).map_err(|_| StoreError::Numbers(n))
    }

    /// SHA-256 over every record as the API renders it, in id order: equal
    /// digests mean equal projections.
    pub fn digest(&self) -> Result<String, StoreError> {
        Ok(self.digests()?.0)
    }

    /// How many records are in each status, store-wide (each record once),
    /// all from one version.
    pub fn records_by_status(&self) -> Result<Vec<(Status, u64)>, StoreError> {
        Status::ALL
            .into_iter()
            .map(|s| Ok((s, self.count(&keys::status_count(s))?)))
            .collect()
    }

    pub(super) fn count(&self, key: &[u8]) -> Result<u64, StoreError> {
        match self.snap().get(key)? {
            Some(crate::lsm::Value::Count(n)) => Ok(n.max(0) as u64),
            Some(crate::lsm::Value::Bytes(_)) => Err(StoreError::corrupt(key, "bad count")),
            None => Ok(0),
        }
    }
}

/// The bytes a key holds, or none; a count there is corrupt.
fn bytes(key: &[u8], v: Option<crate::lsm::Value>) -> Result<Option<Vec<u8>>, StoreError> {
    match v {
        Some(crate::lsm::Value::Bytes(v)) => Ok(Some(v)),
        Some(crate::lsm::Value::Count(_)) => Err(StoreError::corrupt(key, "a count, not a value")),
        None => Ok(None),
    }
}

/// The record numbered `number` in `snap`, with its id, where an index
/// entry named it: a missing record is corruption.
fn indexed(snap: &crate::lsm::Snapshot, number: u32) -> Result<(String, RecordState), StoreError> {
    let key = keys::record(number);
    let stored = named(&key, numbered(snap, number)?)?;
    Ok((stored.id, stored.state))
}

/// A record an index entry named: its absence is corruption.
fn named(key: &[u8], stored: Option<StoredRecord>) -> Result<StoredRecord, StoreError> {
    stored.ok_or_else(|| StoreError::corrupt(key, "an index entry names no record"))
}

/// The record numbered `number` in `snap`.
fn numbered(snap: &crate::lsm::Snapshot, number: u32) -> Result<Option<StoredRecord>, StoreError> {
    let key = keys::record(number);
    record_at(&key, snap.get(&key)?)
}

/// The record a record key holds, decoded.
fn record_at(key: &[u8], v: Option<crate::lsm::Value>) -> Result<Option<StoredRecord>, StoreError> {
    bytes(key, v)?
        .map(|v| postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(key, e)))
        .transpose()
}

/// One event-log chunk, decoded.
pub(super) fn log_chunk(key: &[u8], v: &[u8]) -> Result<Vec<EventLogEntry>, StoreError> {
    // Chunks before layout 8 were streamed, without their size in the frame.
    let bytes = match zstd::zstd_safe::get_frame_content_size(v) {
        Ok(Some(_)) => crate::lsm::codec::decompress(key, v, MAX_LOG_CHUNK_BYTES)?,
        _ => zstd::stream::decode_all(v).map_err(|e| StoreError::corrupt(key, e))?,
    };
    postcard::from_bytes(&bytes).map_err(|e| StoreError::corrupt(key, e))
}

/// No event-log chunk decodes to more than this: its events are at most
/// [`super::LOG_CHUNK_BYTES`] raw, and each entry adds a few fixed fields.
const MAX_LOG_CHUNK_BYTES: usize = 4 * super::LOG_CHUNK_BYTES + (1 << 20);
