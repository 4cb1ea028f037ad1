//! The ingest side: the Kafka adapter that feeds the projection store. It owns
//! the consumer loop (manual assignment of every partition at the offsets
//! stored in sled, bounded batches, one atomic store write per batch), the
//! pure partition-assignment logic, `replay` into a fresh store, the JSON-lines
//! publisher, and the embedded demo broker. It knows nothing of HTTP.

pub mod accept;
pub mod assignment;
pub mod changelog;
pub mod embedded;
pub mod publish;
pub mod replay;
mod report;
pub mod topic_config;
pub mod worker;

use std::time::Duration;

pub use worker::{process_batch, Worker};

/// Kafka settings of the ingest worker.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    pub topic: String,
    /// Only used for advisory offset commits (lag tools); offsets are never
    /// read back from Kafka.
    pub group_id: String,
    pub advisory_commits: bool,
    /// A batch closes at this many messages...
    pub max_batch: usize,
    /// ...or this long after its first message.
    pub max_batch_wait: Duration,
    /// How often partitions and high watermarks are refreshed.
    pub metadata_interval: Duration,
    /// A replay gives up on a topic it cannot reach after this long (the
    /// serving worker keeps retrying instead).
    pub connect_timeout: Duration,
    /// Whether the topic's settings are checked (`topic_config`).
    pub check_topic_settings: bool,
    /// A cluster node's partitions of the topic, of how many (none: all of
    /// them, as a single node consumes): the others are other nodes'.
    pub partitions: Option<(std::collections::BTreeSet<i32>, u32)>,
}

impl IngestConfig {
    pub fn new(brokers: &str, topic: &str) -> IngestConfig {
        IngestConfig {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group_id: "replication-tracker".to_owned(),
            advisory_commits: false,
            max_batch: 5000,
            max_batch_wait: Duration::from_millis(200),
            metadata_interval: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(30),
            check_topic_settings: true,
            partitions: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(
        "{0}: the topic no longer holds every event, so the projection cannot be rebuilt \
         from it (nor as of any time)"
    )]
    ReplayGap(String),
    #[error(transparent)]
    Store(#[from] common::StoreError),
    #[error("{failed} of {total} messages were not delivered: {reason}")]
    NotDelivered {
        failed: u64,
        total: usize,
        reason: String,
    },
    #[error("{0}")]
    TopicUnusable(String),
    #[error("{0}")]
    NoGap(String),
    #[error("topic `{0}` does not exist (yet)")]
    NoSuchTopic(String),
    #[error("{} is not empty: replay needs a fresh data dir", .0.display())]
    OutNotEmpty(std::path::PathBuf),
    #[error("could not reach the topic within {:.1} s (brokers {brokers}): {last}", waited.as_secs_f64())]
    Unreachable {
        brokers: String,
        waited: std::time::Duration,
        last: Box<IngestError>,
    },
    #[error(
        "interrupted after {applied} of the {total} messages the topic held at the start: \
         the rebuilt projection is incomplete"
    )]
    Interrupted { applied: u64, total: u64 },
    #[error("interrupted while connecting to the topic: nothing was replayed")]
    InterruptedConnecting,
    #[error(
        "this store holds the projection of topic `{store_topic}`, not of `{topic}`: \
         give the topic it was built from, or another data directory"
    )]
    ForeignStore { store_topic: String, topic: String },
    #[error("cannot build the store in {}: {source}", .path.display())]
    OutUnusable {
        path: std::path::PathBuf,
        source: common::StoreError,
    },
    #[error("cannot read {}: {source}", .path.display())]
    OutUnreadable {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
