//! The embedded default: when no brokers are configured, an in-process
//! Kafka-protocol broker (librdkafka's mock cluster) and a realistic sample
//! stream, so a newcomer sees the tracker work at once. The mock cluster
//! keeps everything in memory: it is NOT durable, and says so loudly.

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

use common::sample;

use crate::IngestError;

pub struct EmbeddedBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
}

impl EmbeddedBroker {
    pub fn start(topic: &str, partitions: i32) -> Result<EmbeddedBroker, IngestError> {
        let cluster = MockCluster::new(1)?;
        cluster.create_topic(topic, partitions, 1)?;
        Ok(EmbeddedBroker { cluster })
    }

    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Fault injection for tests.
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}

/// The demo stream: several projects and regions, every status, retried
/// attempts, out-of-order and duplicate deliveries, and one malformed event.
pub fn sample_messages() -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    let events = sample::events(&sample::Shape {
        records: 240,
        projects: 4,
        regions: 5,
        seed: 2018,
    });
    let mut out: Vec<(Option<Vec<u8>>, Vec<u8>)> = sample::deliver(&events, 7)
        .iter()
        .map(|e| {
            (
                Some(e.record_id.clone().into_bytes()),
                serde_json::to_vec(&e.to_json()).expect("json"),
            )
        })
        .collect();
    let bad = br#"{"schema_version":1,"event_id":"bad-1","type":"teleported","record_id":"r-bad","occurred_at":"2018-06-14T11:14:48Z"}"#;
    out.insert(out.len() / 2, (Some(b"r-bad".to_vec()), bad.to_vec()));
    out
}
