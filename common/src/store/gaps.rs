//! Offset gaps: a partition the stored checkpoint can no longer continue
//! from, because retention deleted messages that were never applied, or the
//! topic was deleted and recreated. The tracker never skips such a range on
//! its own (that is what `auto.offset.reset` would do, silently): a detected
//! gap *holds* its partition, durably, until an operator accepts it
//! (`tracker accept-gap`), which records the skipped range in the store for
//! auditors to see.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{keys, Store, StoreError};
use crate::instant::Micros;

crate::vocabulary! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum GapKind {
        /// The checkpoint is below the partition's low watermark: retention
        /// deleted messages that were never applied.
        RetentionGap = "retention_gap",
        /// The checkpoint is above the high watermark, or the partition no
        /// longer exists: the topic was deleted and recreated.
        TopicReset = "topic_reset",
    }
}

/// A partition whose checkpoint the topic cannot continue from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub kind: GapKind,
    /// The stored next offset.
    pub checkpoint: i64,
    /// The partition's (low, high) watermarks when the gap was seen; `None`
    /// when the partition no longer exists.
    pub watermarks: Option<(i64, i64)>,
}

impl Gap {
    /// Whether a partition can continue from `checkpoint`, given its
    /// watermarks now (`None`: the topic has no such partition any more).
    pub fn classify(checkpoint: i64, watermarks: Option<(i64, i64)>) -> Option<Gap> {
        let kind = match watermarks {
            None => GapKind::TopicReset,
            Some((low, _)) if checkpoint < low => GapKind::RetentionGap,
            Some((_, high)) if checkpoint > high => GapKind::TopicReset,
            Some(_) => return None,
        };
        Some(Gap {
            kind,
            checkpoint,
            watermarks,
        })
    }

    /// Where ingest resumes once the gap is accepted: the partition's low
    /// watermark (for a reset, the start of the recreated partition); `None`
    /// when the partition is gone and its checkpoint is dropped.
    pub fn resume_at(&self) -> Option<i64> {
        self.watermarks.map(|(low, _)| low)
    }

    /// One sentence for logs, readiness and errors.
    pub fn describe(&self, partition: i32) -> String {
        let c = self.checkpoint;
        match (self.kind, self.watermarks) {
            (GapKind::RetentionGap, Some((low, _))) => format!(
                "partition {partition}: retention gap: the next offset to apply is {c} but the \
                 broker's log starts at {low}; offsets {c}..{low} were deleted before they were \
                 applied"
            ),
            (_, Some((_, high))) => format!(
                "partition {partition}: topic reset: the next offset to apply is {c} but the \
                 partition ends at {high}; the topic was deleted and recreated"
            ),
            (_, None) => format!(
                "partition {partition}: topic reset: the store holds offsets up to {c} of a \
                 partition the topic no longer has; the topic was deleted and recreated"
            ),
        }
    }
}

/// A gap an operator accepted: the range ingest skipped, kept for auditors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptedGap {
    pub topic: String,
    pub partition: i32,
    pub kind: GapKind,
    /// The first offset never applied (the checkpoint at the gap).
    pub from: i64,
    /// Where ingest resumed; `None` when the partition was gone.
    pub resumed_at: Option<i64>,
    pub accepted_at: Micros,
}

impl Store {
    /// Holds a partition at a gap (durably: a restart keeps holding it, even
    /// if the broker's watermarks later look continuous again). The first
    /// gap seen is kept.
    pub fn hold_partition(&self, topic: &str, partition: i32, gap: &Gap) -> Result<(), StoreError> {
        let key = keys::gap(topic, partition);
        let _ = self
            .tree
            .compare_and_swap(&key, None::<&[u8]>, Some(super::encode(gap)))?;
        self.tree.flush()?;
        Ok(())
    }

    /// Partitions held at a gap, by (topic, partition).
    pub fn held_partitions(&self) -> Result<BTreeMap<(String, i32), Gap>, StoreError> {
        let mut held = BTreeMap::new();
        for kv in self.tree.scan_prefix([keys::space::GAP]) {
            let (k, v) = kv?;
            let tp = keys::read_gap(&k).ok_or_else(|| StoreError::corrupt(&k, "bad gap key"))?;
            held.insert(
                tp,
                postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(&k, e))?,
            );
        }
        Ok(held)
    }

    /// Accepts `gap` on a partition: in one atomic write, moves the
    /// checkpoint to where the gap says ingest resumes (or drops it, for a
    /// partition that is gone), releases the hold, and records the skipped
    /// range. Refused when the checkpoint moved since the gap was seen.
    /// Durable at the next [`Store::flush`].
    pub fn accept_gap(
        &self,
        topic: &str,
        partition: i32,
        gap: &Gap,
        now: Micros,
    ) -> Result<AcceptedGap, StoreError> {
        let mut w = self.writer.lock().expect("writer lock");
        let tp = (topic.to_owned(), partition);
        // Held before its first batch: no checkpoint, the hold says where.
        let held = self.tree.get(keys::gap(topic, partition))?.is_some();
        let stored = w.checkpoints.get(&tp).copied();
        if stored.or_else(|| held.then_some(gap.checkpoint)) != Some(gap.checkpoint) {
            return Err(StoreError::query(
                "partition",
                format!(
                    "the stored checkpoint of partition {partition} is {:?}, not {}: nothing accepted",
                    w.checkpoints.get(&tp),
                    gap.checkpoint
                ),
            ));
        }
        let accepted = AcceptedGap {
            topic: topic.to_owned(),
            partition,
            kind: gap.kind,
            from: gap.checkpoint,
            resumed_at: gap.resume_at(),
            accepted_at: now,
        };
        let seq = match self.tree.scan_prefix([keys::space::GAP_ACCEPTED]).last() {
            Some(kv) => keys::read_gap_accepted(&kv?.0).map_or(0, |s| s + 1),
            None => 0,
        };
        let mut batch = sled::Batch::default();
        batch.remove(keys::gap(topic, partition));
        batch.insert(keys::gap_accepted(seq), super::encode(&accepted));
        let cp = keys::checkpoint(topic, partition);
        match accepted.resumed_at {
            Some(next) => batch.insert(cp, &next.to_be_bytes()),
            None => batch.remove(cp),
        }
        self.tree.apply_batch(batch)?;
        match accepted.resumed_at {
            Some(next) => w.checkpoints.insert(tp, next),
            None => w.checkpoints.remove(&tp),
        };
        Ok(accepted)
    }

    /// Every accepted gap, oldest first.
    pub fn accepted_gaps(&self) -> Result<Vec<AcceptedGap>, StoreError> {
        self.tree
            .scan_prefix([keys::space::GAP_ACCEPTED])
            .map(|kv| {
                let (k, v) = kv?;
                postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(&k, e))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_names_each_kind() {
        assert_eq!(Gap::classify(5, Some((0, 10))), None);
        assert_eq!(Gap::classify(0, Some((0, 0))), None);
        assert_eq!(Gap::classify(10, Some((10, 10))), None);
        let g = Gap::classify(4, Some((5, 10))).unwrap();
        assert_eq!((g.kind, g.resume_at()), (GapKind::RetentionGap, Some(5)));
        let g = Gap::classify(11, Some((0, 10))).unwrap();
        assert_eq!((g.kind, g.resume_at()), (GapKind::TopicReset, Some(0)));
        let g = Gap::classify(3, None).unwrap();
        assert_eq!((g.kind, g.resume_at()), (GapKind::TopicReset, None));
        assert!(g.describe(2).contains("partition 2: topic reset"));
    }

    #[test]
    fn a_hold_survives_reopen_and_acceptance_moves_the_checkpoint_once() {
        let dir = tempfile::tempdir().unwrap();
        let gap = Gap::classify(3, Some((7, 9))).unwrap();
        {
            let s = Store::open(dir.path(), 1 << 20).unwrap();
            // A message at offset 2 (quarantined) leaves the checkpoint at 3.
            s.apply_batch(&[crate::store::Message {
                topic: "t".into(),
                partition: 0,
                offset: 2,
                key: None,
                payload: Some(b"not json".to_vec()),
            }])
            .unwrap();
            s.hold_partition("t", 0, &gap).unwrap();
            // A later, different gap does not replace the first one seen.
            s.hold_partition("t", 0, &Gap::classify(3, None).unwrap())
                .unwrap();
        }
        let s = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(s.held_partitions().unwrap()[&("t".into(), 0)], gap);
        let a = s.accept_gap("t", 0, &gap, Micros(1)).unwrap();
        assert_eq!((a.from, a.resumed_at), (3, Some(7)));
        assert!(s.held_partitions().unwrap().is_empty());
        assert_eq!(s.checkpoints()[&("t".into(), 0)], 7);
        assert_eq!(s.accepted_gaps().unwrap(), vec![a]);
        // The same gap again: the checkpoint moved, nothing is accepted twice.
        assert!(s.accept_gap("t", 0, &gap, Micros(2)).is_err());
        let gone = Gap::classify(7, None).unwrap();
        s.accept_gap("t", 0, &gone, Micros(3)).unwrap();
        assert!(s.checkpoints().is_empty());
        assert_eq!(s.accepted_gaps().unwrap().len(), 2);
        // Held before its first batch (no checkpoint): the hold says where.
        let early = Gap::classify(0, Some((4, 9))).unwrap();
        s.hold_partition("t", 1, &early).unwrap();
        let a = s.accept_gap("t", 1, &early, Micros(4)).unwrap();
        assert_eq!((a.from, a.resumed_at), (0, Some(4)));
        assert_eq!(s.checkpoints()[&("t".into(), 1)], 4);
    }
}
