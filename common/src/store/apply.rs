//! The write path: one Kafka batch becomes one atomic sled batch — decode,
//! quarantine what cannot be applied, fold each event into its record, diff
//! each touched record's index entries and counts into the batch's engine
//! log (count changes as deltas: nothing is read to write them), log the
//! events, and move the checkpoints, all in the same write.

use super::*;

impl Store {
    /// Decodes, folds and writes a batch in one atomic write, checkpoints
    /// included. Messages below their partition's checkpoint were applied by
    /// an earlier batch and are skipped.
    #[instrument(skip_all, fields(messages = messages.len()))]
    pub fn apply_batch(&self, messages: &[Message]) -> Result<BatchOutcome, StoreError> {
        if self.pin.is_some() {
            // A batch folds into the latest records, never a pinned version.
            return self.unpinned().apply_batch(messages);
        }
        let mut w = self.writer.lock().expect("writer lock");
        self.check_maintenance()?;
        let mut totals = w.totals;
        let mut checkpoints: HashMap<(&str, i32), i64> = HashMap::new();
        let mut outcome = BatchOutcome::default();
        let mut batch = sled::Batch::default();
        let mut ops = crate::lsm::Ops::default();
        let mut touched: BTreeMap<String, Touched> = BTreeMap::new();
        let mut log = LogChunks::default();

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
                    tracing::warn!(
                        reason_code = %entry.reason_code,
                        topic = %m.topic,
                        partition = m.partition,
                        offset = m.offset,
                        reason = %entry.reason,
                        "message quarantined"
                    );
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
            let at = log.push(
                totals.next_log_chunk,
                EventLogEntry {
                    seq: totals.next_event_seq,
                    topic: m.topic.clone(),
                    partition: m.partition,
                    offset: m.offset,
                    effect,
                    raw: m.payload.clone().unwrap_or_default(),
                },
            );
            touched
                .get_mut(&event.record_id)
                .expect("folded above")
                .log
                .push(at);
            totals.next_event_seq += 1;
        }
        for chunk in &log.chunks {
            batch.insert(
                keys::event_log(totals.next_log_chunk),
                compress_log(&encode(&chunk)),
            );
            totals.next_log_chunk += 1;
        }

        let mut count_deltas: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
        let mut list_changes: BTreeMap<Vec<u8>, lists::Changes> = BTreeMap::new();
        let mut changed: Vec<(&str, Vec<String>)> = Vec::new();
        let mut live: Vec<changes::Change> = Vec::new();
        let listened = self.feed.listened();
        // Only this writer moves the head: it is stable for the batch.
        let next_change = self.change_head() + 1;
        for (id, t) in &touched {
            let (before, after) = (&t.before, &t.after);
            let stored = StoredRecord {
                state: t.after.clone(),
                log: t.log.clone(),
            };
            ops.put(keys::record(id), encode(&stored));
            if before.as_ref() == Some(after) {
                continue;
            }
            let now = after.projects();
            let left: Vec<String> = before
                .iter()
                .flat_map(|b| b.projects())
                .filter(|p| !now.contains(p))
                .map(str::to_owned)
                .collect();
            if listened {
                live.push(changes::Change::new(
                    next_change + changed.len() as u64,
                    after.view(id),
                    left.clone(),
                ));
            }
            changed.push((id, left));
            if before.is_none() {
                totals.records += 1;
            }
            let old = before
                .as_ref()
                .map(|b| index::entries(id, b))
                .unwrap_or_default();
            let new = index::entries(id, after);
            for (list, suffix) in old.keys.keys().filter(|k| !new.keys.contains_key(*k)) {
                list_changes
                    .entry(list.clone())
                    .or_default()
                    .insert(suffix.clone(), None);
            }
            for ((list, suffix), v) in new.keys {
                if old.keys.get(&(list.clone(), suffix.clone())) != Some(&v) {
                    list_changes
                        .entry(list)
                        .or_default()
                        .insert(suffix, Some(v));
                }
            }
            for k in old.counts {
                *count_deltas.entry(k).or_default() -= 1;
            }
            for k in new.counts {
                *count_deltas.entry(k).or_default() += 1;
            }
        }
        for (list, changes) in &list_changes {
            lists::apply(&mut ops, list, changes);
        }
        for (k, delta) in count_deltas.into_iter().filter(|(_, d)| *d != 0) {
            ops.add(k, delta);
        }
        for ((topic, partition), next) in &checkpoints {
            batch.insert(keys::checkpoint(topic, *partition), &next.to_be_bytes());
        }
        let mut reserved = w.change_reserved;
        let logging = self.log_changes(
            &mut batch,
            next_change,
            &mut reserved,
            &w.changes_logged,
            &changed,
        )?;
        w.change_reserved = reserved;
        batch.insert(keys::META_TOTALS, encode(&totals));
        let staged = self.lsm.stage(ops, &mut batch)?;
        self.tree.apply_batch(batch)?;
        #[cfg(any(test, feature = "testkit"))]
        self.feed.held(changes::HoldAt::Commit);
        self.lsm.commit(staged);

        w.totals = totals;
        w.changes_logged.commit(&logging);
        // Before publishing: a subscriber that reads the head after it
        // subscribed must see at least what it may be sent.
        self.feed
            .head
            .store(logging.next - 1, std::sync::atomic::Ordering::Release);
        self.feed
            .publish(next_change, logging.next - 1, listened.then_some(live));
        for ((topic, partition), next) in checkpoints {
            w.checkpoints.insert((topic.to_owned(), partition), next);
        }
        drop(w);
        self.maintain();
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
}

fn effect(a: Applied) -> EventEffect {
    match a {
        Applied::Duplicate => EventEffect::Duplicate,
        Applied::New { changed: true } => EventEffect::Changed,
        Applied::New { changed: false } => EventEffect::Unchanged,
    }
}

/// A batch's event log, cut into chunks of at most [`LOG_CHUNK`] entries
/// and [`LOG_CHUNK_BYTES`] raw bytes: few keys (sled is dear per key), each
/// below sled's ~128 KiB blob threshold even uncompressed (a larger value
/// is a blob file, which sled never fsyncs).
#[derive(Default)]
struct LogChunks {
    chunks: Vec<Vec<EventLogEntry>>,
    /// Raw bytes of the last chunk.
    bytes: usize,
}

impl LogChunks {
    /// Adds `e`; where it will be, given the first chunk's number.
    fn push(&mut self, first_chunk: u64, e: EventLogEntry) -> LogRef {
        // The raw event, its topic, and the fixed fields' few bytes.
        let size = e.raw.len() + e.topic.len() + 32;
        let full = self.chunks.last().is_none_or(|c| {
            !c.is_empty() && (c.len() == LOG_CHUNK || self.bytes + size > LOG_CHUNK_BYTES)
        });
        if full {
            self.chunks.push(Vec::new());
            self.bytes = 0;
        }
        self.bytes += size;
        let at = LogRef {
            chunk: first_chunk + self.chunks.len() as u64 - 1,
            index: self.chunks.last().map_or(0, Vec::len) as u32,
        };
        self.chunks.last_mut().expect("pushed above").push(e);
        at
    }
}

/// Event-log chunks are raw JSON events of one batch: repetitive text that
/// zstd shrinks several-fold at a small CPU cost (docs/benchmarks.md).
fn compress_log(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 3).expect("zstd compresses in memory")
}
