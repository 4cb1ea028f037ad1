//! The write path: one Kafka batch becomes one atomic sled batch — decode,
//! quarantine what cannot be applied, fold each event into its record, log
//! the events (the write-ahead log: [`super::recover`]) and move the
//! checkpoints, all in the same write; then each touched record's value,
//! index entries and counts (count changes as deltas: nothing is read to
//! write them) become the engine's memtable slice for the batch.

use fxhash::FxHashMap;

use super::listing::{placed, Input, Listing};
use super::names::Naming;
use crate::cluster::changelog::{self, Outgoing};

/// What a fold worker hands a batch's changelog messages to, before the
/// batch is written: an error says why they were not published.
pub type Publish<'a> = dyn FnMut(&[Outgoing]) -> Result<(), String> + 'a;
use super::steps::Step;
use super::*;

impl Store {
    /// Decodes, folds and writes a batch in one atomic write, checkpoints
    /// included. Messages below their partition's checkpoint were applied by
    /// an earlier batch and are skipped.
    #[instrument(skip_all, fields(messages = messages.len()))]
    pub fn apply_batch(&self, messages: &[Message]) -> Result<BatchOutcome, StoreError> {
        self.apply_batch_publishing(messages, None)
    }

    /// [`Store::apply_batch`] for a fold worker (issue 26): the batch's
    /// changelog messages — an upsert per project each changed record is
    /// listed under, a removal per project it left — are handed to
    /// `publish` before the batch is written, and the count published is
    /// written with its checkpoints. A failed publish writes nothing (the
    /// batch is retried); a crash after it publishes again (at least once:
    /// the shards keep the highest version).
    pub fn apply_batch_publishing(
        &self,
        messages: &[Message],
        mut publish: Option<&mut Publish<'_>>,
    ) -> Result<BatchOutcome, StoreError> {
        let mut w = self.writer.lock().expect("writer lock");
        let listing = self.listing.get();
        self.check_maintenance()?;
        // Only this writer commits to the engine: as of now is as of the
        // batch's start.
        let view = self.view();
        let mut totals = w.totals;
        let mut checkpoints: HashMap<(&str, i32), i64> = HashMap::new();
        let mut outcome = BatchOutcome::default();
        let mut batch = sled::Batch::default();
        let mut touched: BTreeMap<String, Touched> = BTreeMap::new();
        let mut log = LogChunks::default();
        let mut numbering = w.numbering;

        let steps = &self.steps;
        let begun = std::time::Instant::now();
        let mut at = begun;
        let mut accepted: Vec<(&Message, Input)> = Vec::with_capacity(messages.len());
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
            let decoded = Input::decode(listing, m.key.as_deref(), m.payload.as_deref())
                .and_then(|i| placed(i, m, w.events_partitions));
            match decoded {
                Ok(Input::Event(e)) if w.until.is_some_and(|t| e.occurred_at >= t) => {
                    outcome.after_until += 1
                }
                Ok(input) => accepted.push((m, input)),
                Err(reject) => {
                    let entry = quarantined(m, reject, totals.next_quarantine_seq);
                    batch.insert(keys::quarantine(entry.seq), encode(&entry));
                    totals.next_quarantine_seq += 1;
                    totals.quarantined += 1;
                    outcome.quarantined += 1;
                }
            }
        }
        at = steps.add(Step::Decode, at);

        for (m, input) in &accepted {
            let effect = self.fold_input(&view, &mut touched, &mut numbering, input)?;
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
                .get_mut(input.record_id())
                .expect("folded above")
                .log
                .push(at);
            totals.next_event_seq += 1;
        }
        at = steps.add(Step::Fold, at);
        let first_chunk = totals.next_log_chunk;
        for chunk in &log.chunks {
            batch.insert(
                keys::event_log(totals.next_log_chunk),
                compress_log(&encode(&chunk)),
            );
            totals.next_log_chunk += 1;
        }
        at = steps.add(Step::EventLog, at);

        let derived = derive(&touched, self.names.naming(), listing)?;
        totals.records += derived.new_records;
        let listened = self.feed.listened();
        // Only this writer moves the head: it is stable for the batch.
        let next_change = self.feed.head() + 1;
        let live: Vec<changes::Change> = if listened {
            let change = |(i, (id, left)): (usize, &(&str, Vec<String>))| {
                let after = &touched[*id].after;
                changes::Change::new(next_change + i as u64, after.view(id), left.clone())
            };
            derived.changed.iter().enumerate().map(change).collect()
        } else {
            Vec::new()
        };
        steps.add(Step::Derive, at);
        for ((topic, partition), next) in &checkpoints {
            batch.insert(keys::checkpoint(topic, *partition), &next.to_be_bytes());
        }
        let mut published = 0;
        if let Some(publish) = publish.as_mut() {
            let changes: Vec<Outgoing> = derived
                .changed
                .iter()
                .flat_map(|(id, _)| {
                    let t = &touched[*id];
                    changelog::messages(id, t.before.as_ref(), &t.after)
                })
                .collect();
            publish(&changes).map_err(StoreError::Publish)?;
            published = changes.len() as u64;
            batch.insert(
                keys::META_PUBLISHED,
                &(w.published + published).to_be_bytes(),
            );
        }
        let mut reserved = w.change_reserved;
        let logging = self.log_changes(
            &mut batch,
            next_change,
            &mut reserved,
            &w.changes_logged,
            &derived.changed,
        )?;
        w.change_reserved = reserved;
        batch.insert(keys::META_TOTALS, encode(&totals));
        let mut at = std::time::Instant::now();
        self.tree.apply_batch(batch)?;
        at = steps.add(Step::Write, at);
        #[cfg(any(test, feature = "testkit"))]
        self.feed.held(changes::HoldAt::Commit);
        // Named before the slice is visible: a reader names every list whose
        // entries it can see.
        self.names.commit(derived.names);
        // Every touched record has an event in this batch's chunks: a batch
        // with operations has chunks, the positions its slice is known by.
        if totals.next_log_chunk > first_chunk {
            let (first, last) = (first_chunk, totals.next_log_chunk - 1);
            self.lsm.commit(
                recover::position(first),
                recover::position(last),
                derived.ops,
            );
        }

        w.totals = totals;
        w.numbering = numbering;
        w.published += published;
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
        let mut changed = outcomes::Tally::new();
        for t in touched.values() {
            outcomes::tally(&mut changed, t.before.as_ref(), &t.after);
        }
        self.outcomes.batch(begun.elapsed().as_secs_f64(), changed);
        steps.add(Step::Install, at);
        self.maintain();
        steps.add(Step::Batch, begun);
        Ok(outcome)
    }

    /// Folds an accepted message into its record as the batch has it (read
    /// from `view`, the store as the batch found it, at its first message
    /// in the batch; numbered if it is new): an event is folded in, a
    /// changelog message on a listing shard replaces the state if its
    /// version is higher ([`super::listing::newer`]).
    pub(super) fn fold_input(
        &self,
        view: &ReadView,
        touched: &mut BTreeMap<String, Touched>,
        numbering: &mut Numbering,
        input: &Input,
    ) -> Result<EventEffect, StoreError> {
        let step = |state: &mut RecordState| match input {
            Input::Event(e) => effect(state.apply(e)),
            Input::Change(c) => super::listing::newer(state, &c.state),
        };
        let id = input.record_id();
        if let Some(t) = touched.get_mut(id) {
            return Ok(step(&mut t.after));
        }
        let (t, effect) = match view.stored_record(id)? {
            Some((number, StoredRecord { state, log, .. })) => {
                let mut after = state.clone();
                let effect = step(&mut after);
                let before = Some(state);
                let t = Touched {
                    number,
                    before,
                    after,
                    log,
                };
                (t, effect)
            }
            None => {
                let after = match input {
                    Input::Event(e) => RecordState::new(e),
                    Input::Change(c) => c.state.clone(),
                };
                let t = Touched {
                    number: numbering.take()?,
                    before: None,
                    after,
                    log: Vec::new(),
                };
                (t, EventEffect::Changed)
            }
        };
        touched.insert(id.to_owned(), t);
        Ok(effect)
    }
}

/// What a batch's touched records derive: the engine's operations (each
/// record's value under its number, a new record's id map entry and the
/// count of numbered records; the index entries and counts of those that
/// changed, as the differences between their states before and after; the
/// dictionary entries of the lists first met), the lists first met (to be
/// committed to the dictionary once the batch is written), the changed
/// records with the projects each left, and how many are new.
pub(super) struct Derived<'a> {
    pub(super) ops: crate::lsm::Ops,
    pub(super) names: super::names::NewNames,
    pub(super) changed: Vec<(&'a str, Vec<String>)>,
    pub(super) new_records: u64,
}

/// The derivation shared by a batch and recovery at open
/// ([`super::recover`]): the same touched records derive the same
/// operations.
pub(super) fn derive<'a>(
    touched: &'a BTreeMap<String, Touched>,
    mut naming: Naming,
    listing: Option<&Listing>,
) -> Result<Derived<'a>, StoreError> {
    let listed = |p: &&str| listing.is_none_or(|l| l.lists(p));
    let mut ops = crate::lsm::Ops::default();
    let mut count_deltas: CountDeltas = FxHashMap::default();
    let mut changed: Vec<(&str, Vec<String>)> = Vec::new();
    let mut new_records = 0;
    for (id, t) in touched {
        let (before, after) = (&t.before, &t.after);
        let stored = StoredRecordRef {
            id,
            state: after,
            log: &t.log,
        };
        ops.put(keys::record(t.number), encode(&stored));
        if before.is_none() {
            ops.put(keys::record_id(id), t.number.to_be_bytes());
        }
        if before.as_ref() == Some(after) {
            continue;
        }
        let now: Vec<&str> = after.projects().into_iter().filter(listed).collect();
        let left: Vec<String> = before
            .iter()
            .flat_map(|b| b.projects())
            .filter(|p| !now.contains(p) && listed(p))
            .map(str::to_owned)
            .collect();
        // A shard's record none of its projects list (any more) is no
        // change of its listings.
        if listing.is_none() || !now.is_empty() || !left.is_empty() {
            changed.push((id, left));
        }
        if before.is_none() {
            new_records += 1;
        }
        let old = before
            .as_ref()
            .map(|b| index::Entries::of(id, t.number, b, &mut naming, listing));
        let new = index::Entries::of(id, t.number, after, &mut naming, listing);
        diff_entries(old.as_ref(), &new, &mut ops);
        diff_counts(old.as_ref(), &new, &mut count_deltas);
    }
    for (k, delta) in count_deltas.into_iter().filter(|(_, d)| *d != 0) {
        ops.add(k, delta);
    }
    if new_records > 0 {
        ops.add(keys::NUMBERED, new_records as i64);
    }
    let names = naming.finish(&mut ops)?;
    Ok(Derived {
        ops,
        names,
        changed,
        new_records,
    })
}

/// An item of two sorted sequences, as [`merge_sorted`] meets it.
enum Side<T> {
    Old(T),
    New(T),
    Both(T, T),
}

/// Walks two sequences sorted by `key` together, handing `f` each item
/// only one of them has, and each pair with one key.
fn merge_sorted<T, K: Ord>(
    old: impl Iterator<Item = T>,
    new: impl Iterator<Item = T>,
    key: impl Fn(&T) -> K,
    mut f: impl FnMut(Side<T>),
) {
    let (mut old, mut new) = (old.peekable(), new.peekable());
    fn next<I: Iterator>(it: &mut std::iter::Peekable<I>) -> I::Item {
        it.next().expect("peeked")
    }
    loop {
        f(match (old.peek(), new.peek()) {
            (Some(o), Some(n)) => match key(o).cmp(&key(n)) {
                std::cmp::Ordering::Less => Side::Old(next(&mut old)),
                std::cmp::Ordering::Greater => Side::New(next(&mut new)),
                std::cmp::Ordering::Equal => Side::Both(next(&mut old), next(&mut new)),
            },
            (Some(_), None) => Side::Old(next(&mut old)),
            (None, Some(_)) => Side::New(next(&mut new)),
            (None, None) => break,
        });
    }
}

/// The puts and deletes that turn a record's index entries `old` into
/// `new` (both sorted by key).
fn diff_entries(old: Option<&index::Entries>, new: &index::Entries, ops: &mut crate::lsm::Ops) {
    let old = old.into_iter().flat_map(|o| o.keys());
    merge_sorted(
        old,
        new.keys(),
        |&(k, _)| k,
        |side| match side {
            Side::Old((k, _)) => ops.delete(k),
            Side::New((k, v)) => ops.put(k, v),
            Side::Both((_, vo), (k, v)) if vo != v => ops.put(k, v),
            Side::Both(..) => {}
        },
    );
}

/// A batch's count deltas, summed by key before they join the memtable.
type CountDeltas = FxHashMap<Vec<u8>, i64>;

/// Adds −1 for each count key of `old` and +1 for each of `new` (both
/// sorted) but for those in both: a record that changes keeps most of its
/// counts (its regions, its hour), and they cancel here, not in the map.
fn diff_counts(old: Option<&index::Entries>, new: &index::Entries, deltas: &mut CountDeltas) {
    let old = old.into_iter().flat_map(|o| o.counts());
    merge_sorted(
        old,
        new.counts(),
        |&k| k,
        |side| {
            let (key, d) = match side {
                Side::Old(k) => (k, -1),
                Side::New(k) => (k, 1),
                Side::Both(..) => return,
            };
            match deltas.get_mut(key) {
                Some(n) => *n += d,
                None => {
                    deltas.insert(key.to_vec(), d);
                }
            }
        },
    );
}

/// The quarantine entry of a message that did not decode, logged.
fn quarantined(m: &Message, (code, reason): (&str, String), seq: u64) -> QuarantineEntry {
    let raw = m.payload.as_deref().unwrap_or_default();
    let entry = QuarantineEntry {
        seq,
        topic: m.topic.clone(),
        partition: m.partition,
        offset: m.offset,
        reason_code: code.to_owned(),
        reason,
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
    entry
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
/// zstd shrinks several-fold at a small CPU cost. Level 1: on a batch of
/// the standard dataset, 6.78x against level 3's 6.84x at twice the speed
/// (docs/benchmarks.md, "The lean write path").
fn compress_log(bytes: &[u8]) -> Vec<u8> {
    crate::lsm::codec::compress(bytes, 1)
}
