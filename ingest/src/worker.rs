//! The ingest worker: Kafka → [`Store::apply_batch`].
//!
//! Consumer design (the why):
//! - `BaseConsumer` polled from one dedicated thread: the store write is
//!   synchronous and the loop is poll → batch → write, so async buys nothing.
//! - Manual assignment (`incremental_assign`) of EVERY partition of the topic,
//!   discovered from metadata and re-checked every `metadata_interval`, so
//!   partitions added later are picked up. No consumer group membership:
//!   every tracker replica keeps its own full projection.
//! - Each partition starts at the next offset stored in sled (or the
//!   beginning), unless the topic can no longer continue from there (an
//!   offset gap: retention ran ahead, or the topic was recreated): then the
//!   partition is held, durably, until an operator accepts the gap, and the
//!   others go on. `auto.offset.reset` is `error`, so librdkafka never
//!   re-bases a partition on its own; its error only triggers the check.
//! - The topic's settings are checked once it is found: a compacted topic
//!   is refused ([`crate::topic_config`]).
//! - Offsets are never read from Kafka: the checkpoint is written
//!   in the same atomic batch as the projection changes it covers, so after a
//!   crash the store and its offsets agree, and redelivered messages below the
//!   checkpoint are skipped by the store. Kafka commits, when enabled, are
//!   advisory (for lag tools) and made only after the batch is written.
//! - A dead broker is not an error: librdkafka reconnects; we retry metadata
//!   with backoff, report the state through [`IngestProgress`], and log only
//!   when the state changes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, instrument, warn};

use common::progress::{BrokerState, IngestProgress};
use common::store::gaps::Gap;
use common::store::{BatchOutcome, Message};
use common::{Store, StoreError};

use crate::{IngestConfig, IngestError};

mod partitions;

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest one poll waits: a stop is seen within this, whatever
/// `max_batch_wait` is, and closes the batch in hand.
const POLL_SLICE: Duration = Duration::from_millis(100);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the store is flushed and its durability marker moved on (sled
/// flushes every 500 ms itself; this is what the marker can vouch for).
const MARK_EVERY: Duration = Duration::from_secs(5);

/// Routes librdkafka's own logs to `debug`: broker-down noise would otherwise
/// repeat every reconnect; the worker logs state changes itself.
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        debug!(?level, fac, "librdkafka: {log_message}");
    }
    fn error(&self, error: KafkaError, reason: &str) {
        debug!(%error, "librdkafka error: {reason}");
    }
}

impl ConsumerContext for QuietContext {}

/// Applies one batch and publishes the new offsets. The whole of the logic
/// between Kafka and the store: tests drive it without a broker.
#[instrument(skip_all, fields(messages = batch.len()))]
pub fn process_batch(
    store: &Store,
    progress: &IngestProgress,
    batch: &[Message],
    publisher: Option<&crate::changelog::Publisher>,
) -> Result<BatchOutcome, StoreError> {
    let outcome = match publisher {
        None => store.apply_batch(batch)?,
        Some(p) => store.apply_batch_publishing(batch, Some(&mut |cs| p.send(cs)))?,
    };
    let topic = progress.snapshot().topic;
    for ((t, partition), next) in store.checkpoints() {
        if t == topic {
            progress.set_next_offset(partition, next);
        }
    }
    progress.batch_done();
    debug!(?outcome, "batch applied");
    Ok(outcome)
}

/// What a run to the end reports as it goes.
#[derive(Debug, Clone, Copy)]
pub enum ReplayProgress {
    /// The run will read about this many messages.
    Started { messages: u64 },
    /// A batch of this many messages was written.
    Batch { messages: u64 },
}

pub struct Worker {
    cfg: IngestConfig,
    consumer: Option<BaseConsumer<QuietContext>>,
    store: Arc<Store>,
    progress: Arc<IngestProgress>,
    assigned: BTreeSet<i32>,
    /// Partitions held at an offset gap (also in the store and the progress).
    held: BTreeMap<i32, Gap>,
    topic_checked: bool,
    /// An offset was out of range: unassign all, and assign again.
    reassign: bool,
    last_mark: Instant,
    next_refresh: Instant,
    backoff: Duration,
    /// A fold worker's changelog publisher (issue 26).
    publisher: Option<crate::changelog::Publisher>,
}

impl Worker {
    pub fn new(
        cfg: IngestConfig,
        store: Arc<Store>,
        progress: Arc<IngestProgress>,
    ) -> Result<Worker, IngestError> {
        // A store holds one topic's projection, recorded in it.
        if let Some(other) = store.bind_topic(&cfg.topic)? {
            return Err(IngestError::ForeignStore {
                store_topic: other,
                topic: cfg.topic.clone(),
            });
        }
        let mut cc = ClientConfig::new();
        cc.set("bootstrap.servers", &cfg.brokers)
            .set("group.id", &cfg.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            // Never re-base silently: an out-of-range offset is an error we check.
            .set("auto.offset.reset", "error")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            .set("reconnect.backoff.max.ms", "5000")
            .set("fetch.wait.max.ms", "100")
            // librdkafka prefetches up to 64 MiB per partition by default: bound it.
            .set("queued.max.messages.kbytes", "16384");
        let consumer: BaseConsumer<QuietContext> = cc.create_with_context(QuietContext)?;
        let mut held = BTreeMap::new();
        for ((t, p), gap) in store.held_partitions()? {
            if t != cfg.topic {
                continue;
            }
            partitions::report_hold(p, &gap);
            progress.set_gap(p, gap);
            held.insert(p, gap);
        }
        // A broker not to be asked counts as checked (see IngestConfig).
        let topic_checked = !cfg.check_topic_settings;
        Ok(Worker {
            cfg,
            consumer: Some(consumer),
            store,
            progress,
            assigned: BTreeSet::new(),
            held,
            topic_checked,
            reassign: false,
            last_mark: Instant::now(),
            next_refresh: Instant::now(),
            backoff: Duration::from_secs(1),
            publisher: None,
        })
    }

    /// Makes this worker a fold worker: each batch's changelog messages
    /// are published before it is written.
    pub fn publishing(mut self, publisher: crate::changelog::Publisher) -> Worker {
        self.publisher = Some(publisher);
        self
    }

    fn consumer(&self) -> &BaseConsumer<QuietContext> {
        self.consumer
            .as_ref()
            .expect("consumer is open until close()")
    }

    /// Collects up to `max_batch` messages, waiting at most `max_batch_wait`
    /// after the first one (or `idle` if none comes), or until `cancel`.
    fn poll_batch(&mut self, idle: Duration, cancel: &CancellationToken) -> Vec<Message> {
        let mut batch = Vec::new();
        let start = Instant::now();
        let mut deadline = start + idle;
        while batch.len() < self.cfg.max_batch && !cancel.is_cancelled() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            match self.consumer().poll((deadline - now).min(POLL_SLICE)) {
                None => {}
                // Left in librdkafka's queue when its partition was held.
                Some(Ok(m)) if self.held.contains_key(&m.partition()) => {}
                Some(Ok(m)) => {
                    if batch.is_empty() {
                        deadline = Instant::now() + self.cfg.max_batch_wait;
                    }
                    batch.push(Message {
                        topic: m.topic().to_owned(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().map(<[u8]>::to_vec),
                    });
                }
                // An offset out of range: check every partition for a gap now.
                // librdkafka has stopped fetching that partition (which one
                // it does not say): every partition is checked and assigned
                // again from its checkpoint, or held at its gap.
                Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => {
                    warn!("the broker has no message at a partition's next offset; checking every partition for an offset gap");
                    self.reassign = true;
                    self.next_refresh = Instant::now();
                    break;
                }
                Some(Err(e)) => debug!(error = %e, "poll error (librdkafka retries)"),
            }
        }
        batch
    }

    /// Writes a batch, retrying store failures with backoff until it lands or
    /// the worker is cancelled (the batch stays in memory meanwhile).
    fn write(
        &mut self,
        batch: &[Message],
        cancel: &CancellationToken,
    ) -> Result<BatchOutcome, IngestError> {
        let mut backoff = Duration::from_millis(100);
        loop {
            match process_batch(&self.store, &self.progress, batch, self.publisher.as_ref()) {
                Ok(outcome) => {
                    // After a failure, only a flush that succeeds says the
                    // store writes again (an apply alone can succeed in memory).
                    let failing = self.progress.store_failing();
                    if failing || self.last_mark.elapsed() >= MARK_EVERY {
                        self.last_mark = Instant::now();
                        if let Err(e) = self.store.flush() {
                            self.store_failed(&e, backoff);
                            return Ok(outcome);
                        }
                    }
                    if self.progress.set_store_error(None).is_some() {
                        info!("store writes again");
                    }
                    self.commit_advisory();
                    return Ok(outcome);
                }
                Err(e) if cancel.is_cancelled() => return Err(e.into()),
                Err(e) => {
                    self.store_failed(&e, backoff);
                    let until = Instant::now() + backoff;
                    while Instant::now() < until && !cancel.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Reports a store write or flush that failed: logged once per outage;
    /// readiness says `store: error` meanwhile.
    fn store_failed(&self, e: &StoreError, retry_in: Duration) {
        // Named with the store's path (sled's own errors carry none).
        let e = format!("the store in {}: {e}", self.store.location());
        if self.progress.set_store_error(Some(e.clone())).is_none() {
            error!(error = %e, "the store refuses writes: the batch is retried with backoff, and no checkpoint moves past what was written, so nothing is lost; a store that stays broken needs space freed and a restart");
        } else {
            debug!(error = %e, retry_in_ms = retry_in.as_millis() as u64, "store write failed again");
        }
    }

    fn commit_advisory(&self) {
        if !self.cfg.advisory_commits {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for ((t, p), next) in self.store.checkpoints() {
            if t == self.cfg.topic {
                let _ = tpl.add_partition_offset(&t, p, Offset::Offset(next));
            }
        }
        if let Err(e) = self.consumer().commit(&tpl, CommitMode::Async) {
            debug!(error = %e, "advisory commit failed");
        }
    }

    /// Runs until `cancel` fires: finishes the batch in hand, flushes the store
    /// and closes the consumer.
    pub fn run(mut self, cancel: CancellationToken) -> Result<(), IngestError> {
        info!(brokers = %self.cfg.brokers, topic = %self.cfg.topic, "ingest worker started");
        let mut report = crate::report::Report::default();
        while !cancel.is_cancelled() {
            if let Err(e) = self.refresh_if_due() {
                return Err(self.fail(e));
            }
            let batch = self.poll_batch(Duration::from_millis(250), &cancel);
            if !batch.is_empty() {
                let outcome = match self.write(&batch, &cancel) {
                    Ok(outcome) => outcome,
                    Err(e) => return Err(self.fail(e)),
                };
                report.consumed += batch.len() as u64;
                report.applied += outcome.applied;
            }
            report.tick(&self.progress.snapshot());
        }
        self.close()
    }

    /// Runs until every partition has reached the high watermark it had when
    /// the run began (replay), reporting progress as it goes. A topic that
    /// cannot be reached within the config's `connect_timeout` is an error
    /// naming why,
    /// and so is a cancel before the end: a replay is whole or it failed.
    pub fn run_to_end(
        mut self,
        cancel: &CancellationToken,
        on_progress: &mut dyn FnMut(ReplayProgress),
    ) -> Result<BTreeMap<i32, i64>, IngestError> {
        let (start, connect_timeout) = (Instant::now(), self.cfg.connect_timeout);
        loop {
            if cancel.is_cancelled() {
                return Err(self.fail(IngestError::InterruptedConnecting));
            }
            match self.refresh() {
                Ok(()) => break,
                Err(e @ (IngestError::TopicUnusable(_) | IngestError::Store(_))) => {
                    return Err(self.fail(e));
                }
                Err(e) if start.elapsed() >= connect_timeout => {
                    return Err(self.fail(IngestError::Unreachable {
                        brokers: self.cfg.brokers.clone(),
                        waited: start.elapsed(),
                        last: Box::new(e),
                    }));
                }
                Err(e) => {
                    debug!(error = %e, "topic not reachable yet; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        self.progress.set_broker(BrokerState::Up);
        let snap = self.progress.snapshot();
        // A partition whose first messages are gone cannot be replayed: the
        // rebuilt projection would silently miss them.
        if let Some((p, gap)) = snap.gaps.iter().next() {
            return Err(self.fail(IngestError::ReplayGap(gap.describe(*p))));
        }
        let targets: BTreeMap<i32, i64> = snap
            .partitions
            .iter()
            .map(|(p, pp)| (*p, pp.high_watermark))
            .collect();
        let total = snap.partitions.values().map(|pp| pp.lag()).sum::<i64>() as u64;
        on_progress(ReplayProgress::Started { messages: total });
        let mut applied = 0;
        loop {
            let snap = self.progress.snapshot();
            // Retention may delete messages during a long replay too.
            if let Some((p, gap)) = snap.gaps.iter().next() {
                return Err(self.fail(IngestError::ReplayGap(gap.describe(*p))));
            }
            let done = targets.iter().all(|(p, hw)| {
                snap.partitions
                    .get(p)
                    .is_some_and(|pp| pp.next_offset >= *hw)
            });
            if done {
                break;
            }
            if cancel.is_cancelled() {
                return Err(self.fail(IngestError::Interrupted { applied, total }));
            }
            let batch = self.poll_batch(Duration::from_millis(250), cancel);
            if !batch.is_empty() {
                if let Err(e) = self.write(&batch, cancel) {
                    return Err(self.fail(e));
                }
                applied += batch.len() as u64;
                on_progress(ReplayProgress::Batch {
                    messages: batch.len() as u64,
                });
            }
        }
        self.close()?;
        Ok(targets)
    }

    /// Ends a run on `e`: the final flush is still attempted and the
    /// consumer closed, within the same bounded time as a clean stop.
    fn fail(&mut self, e: IngestError) -> IngestError {
        if let Err(flush) = self.close() {
            warn!(error = %flush, "the final flush failed too");
        }
        e
    }

    /// Flushes the store and closes the consumer, giving up on the consumer
    /// after a timeout (dropping it can block while the broker is down). A
    /// failed flush is returned once the consumer is closed.
    fn close(&mut self) -> Result<(), IngestError> {
        let flushed = self.store.flush();
        if let Some(consumer) = self.consumer.take() {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = consumer.unassign();
                drop(consumer);
                let _ = tx.send(());
            });
            if rx.recv_timeout(KAFKA_TIMEOUT).is_err() {
                warn!("kafka consumer did not close within {KAFKA_TIMEOUT:?}; leaving it behind");
            }
        }
        info!("ingest worker stopped");
        Ok(flushed?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use common::sample;

    #[test]
    fn process_batch_applies_and_reports_offsets() {
        let store = Store::temporary().unwrap();
        let progress = IngestProgress::new("t");
        progress.set_broker(BrokerState::Up);
        let events = sample::events(&sample::Shape {
            records: 20,
            projects: 2,
            regions: 3,
            seed: 1,
        });
        let batch: Vec<Message> = events
            .iter()
            .enumerate()
            .map(|(i, e)| Message {
                topic: "t".into(),
                partition: (i % 2) as i32,
                offset: (i / 2) as i64,
                key: Some(e.record_id.clone().into_bytes()),
                payload: Some(serde_json::to_vec(&e.to_json()).unwrap()),
            })
            .collect();
        progress.set_high_watermark(0, batch.len().div_ceil(2) as i64);
        progress.set_high_watermark(1, (batch.len() / 2) as i64);
        let out = process_batch(&store, &progress, &batch, None).unwrap();
        assert_eq!(out.applied as usize, events.len());
        let snap = progress.snapshot();
        assert_eq!(snap.lag(), 0);
        assert!(progress.caught_up_once());
        // The same batch again (a redelivery) changes nothing.
        let again = process_batch(&store, &progress, &batch, None).unwrap();
        assert_eq!(again.already_applied as usize, batch.len());
    }
}
