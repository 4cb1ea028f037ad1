//! `publish`: sends events to the topic, keyed by `record_id` (what producers
//! should do; used by the demo, the tests and integrators checking their
//! events). A line that is not JSON or has no `record_id` is sent without a
//! key, so the tracker's quarantine can be exercised too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::IngestError;

#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The message key a line gets: its `record_id`, when it has one.
pub fn key_of(line: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("record_id")?.as_str().map(|s| s.as_bytes().to_vec())
}

/// Sends `(key, value)` messages and waits until every one is acknowledged.
pub fn publish(
    brokers: &str,
    topic: &str,
    messages: &[(Option<Vec<u8>>, Vec<u8>)],
) -> Result<u64, IngestError> {
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        // Same key → same partition as Java clients.
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "30000")
        .create_with_context(Deliveries::default())?;
    for (key, value) in messages {
        loop {
            let mut rec = BaseRecord::to(topic).payload(value);
            if let Some(k) = key {
                rec = rec.key(k);
            }
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    let failed = producer.context().failed.load(Ordering::Relaxed);
    if failed > 0 {
        return Err(IngestError::NotDelivered {
            failed,
            total: messages.len(),
        });
    }
    Ok(messages.len() as u64)
}

/// Reads a JSON-lines file into messages keyed by `record_id`. Blank lines are
/// skipped; every other line is sent as is.
pub fn read_lines(text: &[u8]) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    text.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| (key_of(l), l.to_vec()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_keyed_by_record_id() {
        let got = read_lines(b"{\"record_id\":\"r1\"}\r\n\n  \nnot json\n");
        assert_eq!(
            got,
            vec![
                (Some(b"r1".to_vec()), b"{\"record_id\":\"r1\"}".to_vec()),
                (None, b"not json".to_vec())
            ]
        );
    }
}
