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
    // Spread over the last 30 days, so the dashboard's chart and the stuck
    // thresholds have something to show.
    let records = 240;
    let now = common::Micros::now().0;
    let month = 30 * 86_400_000_000i64;
    let events = sample::events_from(
        &sample::Shape {
            records,
            projects: 4,
            regions: 5,
            seed: 2018,
        },
        common::instant::Micros(now - month),
        month / records as i64,
    );
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

/// Keeps the demo alive: every few seconds a new replication starts and
/// goes through its lifecycle, one event at a time, so the dashboard has
/// something to show live. Runs until `cancel`.
pub fn trickle(
    bootstrap: &str,
    topic: &str,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<(), IngestError> {
    let pause = |d: u64| {
        let until = std::time::Instant::now() + std::time::Duration::from_millis(d);
        while std::time::Instant::now() < until {
            if cancel.is_cancelled() {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        true
    };
    for seed in 1.. {
        let now = common::Micros::now().0;
        let shape = sample::Shape {
            records: 1,
            projects: 4,
            regions: 5,
            seed: 10_000 + seed,
        };
        for e in sample::events_from(&shape, common::instant::Micros(now), 0) {
            let value = serde_json::to_vec(&e.to_json()).expect("json");
            crate::publish::publish(
                bootstrap,
                topic,
                &[(Some(e.record_id.clone().into_bytes()), value)],
            )?;
            if !pause(1500) {
                return Ok(());
            }
        }
        if !pause(2000) {
            return Ok(());
        }
    }
    Ok(())
}
