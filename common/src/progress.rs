//! Ingest progress as both services see it: the broker's state and, per
//! partition, the next offset to apply and the high watermark. The ingest
//! worker writes it; readiness and `/metrics` read it. Also what stops
//! ingest without stopping the service: partitions held at an offset gap,
//! and a store that refuses writes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::store::gaps::Gap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    Connecting,
    Up,
    Down,
}

impl BrokerState {
    pub fn as_str(self) -> &'static str {
        match self {
            BrokerState::Connecting => "connecting",
            BrokerState::Up => "up",
            BrokerState::Down => "down",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartitionProgress {
    /// Next offset to apply (the stored checkpoint).
    pub next_offset: i64,
    /// Broker's high watermark at the last look.
    pub high_watermark: i64,
}

impl PartitionProgress {
    pub fn lag(&self) -> i64 {
        (self.high_watermark - self.next_offset).max(0)
    }
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub broker: BrokerState,
    pub topic: String,
    /// The broker answered, but has no such topic.
    pub topic_missing: bool,
    pub partitions: BTreeMap<i32, PartitionProgress>,
    /// Partitions held at an offset gap: not consumed until accepted.
    pub gaps: BTreeMap<i32, Gap>,
    /// The last store write failed with this error (cleared by a success).
    pub store_error: Option<String>,
    pub batches: u64,
}

impl Snapshot {
    /// Messages to catch up on; a partition held at a gap has none (its
    /// watermarks are no longer followed: the gap is reported instead).
    pub fn lag(&self) -> i64 {
        self.partitions
            .iter()
            .filter(|(p, _)| !self.gaps.contains_key(p))
            .map(|(_, pp)| pp.lag())
            .sum()
    }
}

pub struct IngestProgress {
    inner: Mutex<Snapshot>,
    caught_up_once: AtomicBool,
    /// The start-up grace elapsed (or there was none).
    grace_over: AtomicBool,
}

impl IngestProgress {
    pub fn new(topic: &str) -> IngestProgress {
        IngestProgress {
            inner: Mutex::new(Snapshot {
                broker: BrokerState::Connecting,
                topic: topic.to_owned(),
                topic_missing: false,
                partitions: BTreeMap::new(),
                gaps: BTreeMap::new(),
                store_error: None,
                batches: 0,
            }),
            caught_up_once: AtomicBool::new(false),
            grace_over: AtomicBool::new(false),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().expect("progress lock").clone()
    }

    /// Sets the broker state; returns the previous one (to log changes once).
    pub fn set_broker(&self, state: BrokerState) -> BrokerState {
        let previous =
            std::mem::replace(&mut self.inner.lock().expect("progress lock").broker, state);
        self.note_caught_up();
        previous
    }

    /// Notes whether the topic exists; returns what was noted before.
    pub fn set_topic_missing(&self, missing: bool) -> bool {
        std::mem::replace(
            &mut self.inner.lock().expect("progress lock").topic_missing,
            missing,
        )
    }

    pub fn set_high_watermark(&self, partition: i32, hw: i64) {
        self.inner
            .lock()
            .expect("progress lock")
            .partitions
            .entry(partition)
            .or_default()
            .high_watermark = hw;
        self.note_caught_up();
    }

    pub fn set_next_offset(&self, partition: i32, next: i64) {
        let mut g = self.inner.lock().expect("progress lock");
        let p = g.partitions.entry(partition).or_default();
        p.next_offset = next;
        p.high_watermark = p.high_watermark.max(next);
        drop(g);
        self.note_caught_up();
    }

    /// Notes a partition held at a gap.
    pub fn set_gap(&self, partition: i32, gap: Gap) {
        self.inner
            .lock()
            .expect("progress lock")
            .gaps
            .insert(partition, gap);
        self.note_caught_up();
    }

    /// Notes a failed (`Some`) or successful (`None`) store write; returns
    /// the previous state, to log changes once.
    pub fn set_store_error(&self, error: Option<String>) -> Option<String> {
        std::mem::replace(
            &mut self.inner.lock().expect("progress lock").store_error,
            error,
        )
    }

    /// Whether the last store write failed.
    pub fn store_failing(&self) -> bool {
        self.inner
            .lock()
            .expect("progress lock")
            .store_error
            .is_some()
    }

    pub fn batch_done(&self) {
        self.inner.lock().expect("progress lock").batches += 1;
    }

    fn note_caught_up(&self) {
        let s = self.snapshot();
        // A partition held at a gap is as far as it can be until accepted.
        let known = !s.partitions.is_empty() || !s.gaps.is_empty();
        if s.broker == BrokerState::Up && known && s.lag() == 0 {
            self.caught_up_once.store(true, Ordering::Relaxed);
        }
    }

    /// Ends start-up without a catch-up (the start-up grace elapsed, or
    /// there was none): the projection is served as it is.
    pub fn end_grace(&self) {
        self.grace_over.store(true, Ordering::Relaxed);
    }

    /// Whether ingest has really reached the head of the topic at least
    /// once since start-up — never merely because the grace elapsed.
    pub fn caught_up_once(&self) -> bool {
        self.caught_up_once.load(Ordering::Relaxed)
    }

    /// Whether start-up is over: caught up once, or the grace elapsed.
    /// Before, list answers would be misleading, and are refused.
    pub fn serving(&self) -> bool {
        self.caught_up_once() || self.grace_over.load(Ordering::Relaxed)
    }
}
