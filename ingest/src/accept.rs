//! `tracker accept-gap`: the operator's way past an offset gap. It looks at
//! the partition as the broker has it now, and records in the store that
//! the range the gap stands for is skipped (visible in `/v1/admin/digest`),
//! moving the checkpoint to where ingest resumes. The tracker must be
//! stopped (the store is locked while it runs).

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use common::store::gaps::{AcceptedGap, Gap};
use common::{Micros, Store};

use crate::worker::QuietContext;
use crate::IngestError;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts the gap of `partition`: the one the broker shows now, or the one
/// the store holds the partition at (a recreated topic can have grown past
/// the old checkpoint since). No gap, no change: an error says why.
pub fn accept_gap(
    brokers: &str,
    topic: &str,
    store: &Store,
    partition: i32,
) -> Result<AcceptedGap, IngestError> {
    let no_gap = |why: String| IngestError::NoGap(format!("partition {partition}: {why}"));
    let held = store
        .held_partitions()?
        .remove(&(topic.to_owned(), partition));
    // A partition held before its first batch has no checkpoint: the hold's.
    let stored = store
        .checkpoints()
        .get(&(topic.to_owned(), partition))
        .copied();
    let Some(checkpoint) = stored.or(held.map(|h| h.checkpoint)) else {
        return Err(no_gap(format!(
            "the store has no offset of it in topic `{topic}`: nothing to accept"
        )));
    };
    let consumer: BaseConsumer<QuietContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create_with_context(QuietContext)?;
    let md = consumer.fetch_metadata(Some(topic), TIMEOUT)?;
    let partitions: Vec<i32> = match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
        _ => return Err(IngestError::NoSuchTopic(topic.to_owned())),
    };
    let watermarks = if partitions.contains(&partition) {
        Some(consumer.fetch_watermarks(topic, partition, TIMEOUT)?)
    } else {
        None
    };
    let gap = match (Gap::classify(checkpoint, watermarks), held) {
        (Some(gap), _) => gap,
        // Held, and the broker looks continuous again: the hold stands.
        (None, Some(h)) => Gap { watermarks, ..h },
        (None, None) => {
            let (low, high) = watermarks.expect("a gone partition is a gap");
            return Err(no_gap(format!(
                "its next offset {checkpoint} is within the broker's log ({low}..{high}): \
                 there is no gap to accept"
            )));
        }
    };
    Ok(store.accept_gap(topic, partition, &gap, Micros::now())?)
}
