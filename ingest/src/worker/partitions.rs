//! Which partitions the worker consumes, and from where: discovery of the
//! topic's partitions, their watermarks, and the holds at offset gaps (a
//! checkpoint the topic can no longer continue from is never skipped: the
//! partition stops, durably, until an operator accepts the gap).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tracing::{error, info, warn};

use common::progress::BrokerState;
use common::store::gaps::Gap;

use super::{Worker, KAFKA_TIMEOUT, MAX_BACKOFF};
use crate::assignment::{new_assignments, Start};
use crate::IngestError;

/// The one error line a held partition gets (at detection, and at start
/// for a hold from before).
pub(super) fn report_hold(partition: i32, gap: &Gap) {
    error!(partition, kind = gap.kind.as_str(), "{}; this partition is held (the others go on) until the gap is accepted (`tracker accept-gap --partition {partition}`) or the store is rebuilt (`tracker replay`)", gap.describe(partition));
}

impl Worker {
    /// Refreshes partitions (assigning new ones) and watermarks, when due.
    /// Broker trouble is reported, never returned; an unusable topic or
    /// store is returned.
    pub(super) fn refresh_if_due(&mut self) -> Result<(), IngestError> {
        if Instant::now() < self.next_refresh {
            return Ok(());
        }
        match self.refresh() {
            Ok(()) => {
                if self.progress.set_broker(BrokerState::Up) != BrokerState::Up {
                    info!(brokers = %self.cfg.brokers, topic = %self.cfg.topic, partitions = self.assigned.len(), "broker reachable");
                }
                if self.progress.set_topic_missing(false) {
                    info!(topic = %self.cfg.topic, "the topic exists now");
                }
                self.backoff = Duration::from_secs(1);
                self.next_refresh = Instant::now() + self.cfg.metadata_interval;
            }
            // The broker answered: it is up, the topic is what is missing.
            Err(IngestError::NoSuchTopic(topic)) => {
                self.progress.set_broker(BrokerState::Up);
                if !self.progress.set_topic_missing(true) {
                    warn!(topic = %topic, brokers = %self.cfg.brokers, "topic `{topic}` does not exist on the broker; waiting for it to be created");
                }
                self.next_refresh = Instant::now() + self.cfg.metadata_interval;
            }
            Err(e @ (IngestError::TopicUnusable(_) | IngestError::Store(_))) => return Err(e),
            Err(e) => {
                if self.progress.set_broker(BrokerState::Down) != BrokerState::Down {
                    warn!(error = %e, brokers = %self.cfg.brokers, "broker unreachable; retrying (the projection stays as it is meanwhile)");
                }
                self.next_refresh = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
        Ok(())
    }

    pub(super) fn refresh(&mut self) -> Result<(), IngestError> {
        let topic = self.cfg.topic.clone();
        // A replay's shorter connect timeout bounds each attempt too.
        let timeout = KAFKA_TIMEOUT.min(self.cfg.connect_timeout);
        let md = self.consumer().fetch_metadata(Some(&topic), timeout)?;
        let t = md.topics().iter().find(|t| t.name() == topic);
        let discovered: BTreeSet<i32> = match t {
            Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
            _ => return Err(IngestError::NoSuchTopic(topic.clone())),
        };
        // A cluster node consumes its own partitions, of a topic that has
        // the map's count (another count would route records elsewhere).
        // Partitions its store has offsets of but the map now gives another
        // (moved to a new node) are neither consumed nor gaps.
        let (all, discovered) = match &self.cfg.partitions {
            None => (discovered.clone(), discovered),
            Some((_, count)) if discovered.len() != *count as usize => {
                return Err(IngestError::TopicUnusable(format!(
                    "topic `{topic}` has {} partitions; the cluster map says {count}",
                    discovered.len()
                )))
            }
            Some((mine, _)) => {
                let ours = discovered.intersection(mine).copied().collect();
                (discovered, ours)
            }
        };
        if self.reassign && !self.assigned.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for &p in &self.assigned {
                tpl.add_partition(&topic, p);
            }
            self.consumer().incremental_unassign(&tpl)?;
            self.assigned.clear();
        }
        self.reassign = false;
        if !self.topic_checked {
            crate::topic_config::check(&self.cfg.brokers, &topic, timeout)?;
            self.topic_checked = true;
        }
        let checkpoints = self.store.checkpoints();
        // A partition the store has offsets of but the topic no longer has.
        for ((t, p), next) in &checkpoints {
            if *t == topic && !all.contains(p) {
                self.hold(
                    *p,
                    Gap::classify(*next, None).expect("a gone partition is a gap"),
                )?;
            }
        }
        let open: Vec<i32> = discovered
            .iter()
            .copied()
            .filter(|p| !self.held.contains_key(p))
            .collect();
        let fresh = new_assignments(&topic, &self.assigned, &open, &checkpoints);
        let mut tpl = TopicPartitionList::new();
        let mut starts = Vec::new();
        for (p, start) in fresh {
            let (low, high) = self.consumer().fetch_watermarks(&topic, p, KAFKA_TIMEOUT)?;
            let (offset, next) = match start {
                Start::Offset(o) => match Gap::classify(o, Some((low, high))) {
                    Some(gap) => {
                        self.hold(p, gap)?;
                        continue;
                    }
                    None => (Offset::Offset(o), o),
                },
                Start::Beginning => {
                    if low > 0 {
                        warn!(partition = p, low, "partition {p} starts at offset {low}, not 0: the messages below it were deleted (retention) and are not in this projection");
                    }
                    (Offset::Beginning, low)
                }
            };
            tpl.add_partition_offset(&topic, p, offset)?;
            starts.push((p, next, high));
        }
        if !starts.is_empty() {
            self.consumer().incremental_assign(&tpl)?;
            for (p, next, high) in starts {
                self.progress.set_next_offset(p, next);
                self.progress.set_high_watermark(p, high);
                self.assigned.insert(p);
                info!(partition = p, offset = next, "partition assigned");
            }
        }
        let snap = self.progress.snapshot();
        for p in self.assigned.clone() {
            let (low, high) = self.consumer().fetch_watermarks(&topic, p, KAFKA_TIMEOUT)?;
            // Where this partition is: its checkpoint, or where it started.
            let at = snap.partitions.get(&p).map_or(low, |pp| pp.next_offset);
            match Gap::classify(at, Some((low, high))) {
                Some(gap) => self.hold(p, gap)?,
                None => self.progress.set_high_watermark(p, high),
            }
        }
        Ok(())
    }

    /// Holds a partition at a gap: stops consuming it, records the hold in
    /// the store (so a restart holds it too) and reports it, once.
    fn hold(&mut self, partition: i32, gap: Gap) -> Result<(), IngestError> {
        if self.held.contains_key(&partition) {
            return Ok(());
        }
        if self.assigned.remove(&partition) {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&self.cfg.topic, partition);
            self.consumer().incremental_unassign(&tpl)?;
        }
        self.store
            .hold_partition(&self.cfg.topic, partition, &gap)?;
        self.progress.set_gap(partition, gap);
        self.held.insert(partition, gap);
        report_hold(partition, &gap);
        Ok(())
    }
}
