//! A fold worker's changelog publisher (issue 26): each batch's changelog
//! messages go to the partition Kafka's default partitioner gives their
//! project (computed here, so the map's routing and the producer agree
//! whatever the client's partitioner), and every one is acknowledged
//! (`acks=all`) before the batch is written — the store then writes its
//! checkpoints and the count published together. A message not
//! acknowledged fails the batch, which is retried: at least once.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use common::cluster::changelog::Outgoing;
use common::cluster::partition;

use crate::publish::Deliveries;
use crate::IngestError;

/// How long a batch's messages may take to be acknowledged.
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Publisher {
    producer: BaseProducer<Deliveries>,
    topic: String,
    partitions: u32,
    /// When the topic's partition count was last found right: checked
    /// again after a failure or a while, not at every batch.
    checked: std::sync::Mutex<Option<std::time::Instant>>,
}

/// How long a good check of the changelog's partition count holds.
const RECHECK: Duration = Duration::from_secs(30);

impl Publisher {
    /// A producer for `topic`, which has `partitions` partitions (the
    /// cluster map's count: a topic with another is refused at the first
    /// batch, naming both).
    pub fn new(brokers: &str, topic: &str, partitions: u32) -> Result<Publisher, IngestError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", ACK_TIMEOUT.as_millis().to_string())
            .create_with_context(Deliveries::default())?;
        Ok(Publisher {
            producer,
            topic: topic.to_owned(),
            partitions,
            checked: Default::default(),
        })
    }

    /// Sends `changes` and waits for every acknowledgement.
    pub fn send(&self, changes: &[Outgoing]) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        {
            let mut checked = self.checked.lock().expect("check lock");
            if checked.is_none_or(|at| at.elapsed() > RECHECK) {
                *checked = None;
                self.check_topic()?;
                *checked = Some(std::time::Instant::now());
            }
        }
        // A failed batch's reports are not this one's.
        self.producer.context().failed.lock().expect("lock").clear();
        for (i, c) in changes.iter().enumerate() {
            let p = partition(c.project.as_bytes(), self.partitions) as i32;
            loop {
                let rec = BaseRecord::with_opaque_to(&self.topic, i)
                    .partition(p)
                    .key(c.project.as_bytes())
                    .payload(&c.value);
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        self.producer.poll(Duration::from_millis(20));
                    }
                    Err((e, _)) => return Err(format!("a message for project {}: {e}", c.project)),
                }
            }
        }
        self.producer.flush(ACK_TIMEOUT).map_err(|e| {
            *self.checked.lock().expect("check lock") = None;
            format!("{} messages to `{}`: {e}", changes.len(), self.topic)
        })?;
        let failed = std::mem::take(&mut *self.producer.context().failed.lock().expect("lock"));
        match failed.first() {
            None => Ok(()),
            Some((_, reason)) => Err(format!(
                "{} of {} messages to `{}` not acknowledged: {reason}",
                failed.len(),
                changes.len(),
                self.topic
            )),
        }
    }

    /// The changelog must have the map's partition count: the shards own
    /// partitions by number.
    fn check_topic(&self) -> Result<(), String> {
        let md = self
            .producer
            .client()
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
            .map_err(|e| format!("the broker did not describe `{}`: {e}", self.topic))?;
        let t = md.topics().iter().find(|t| t.name() == self.topic);
        match t {
            Some(t) if t.error().is_none() && t.partitions().len() == self.partitions as usize => {
                Ok(())
            }
            Some(t) if t.error().is_none() => Err(format!(
                "the changelog topic `{}` has {} partitions; the cluster map says {} (cluster.changelog_partitions)",
                self.topic,
                t.partitions().len(),
                self.partitions
            )),
            _ => Err(format!(
                "the changelog topic `{}` does not exist: create it with {} partitions",
                self.topic, self.partitions
            )),
        }
    }
}
