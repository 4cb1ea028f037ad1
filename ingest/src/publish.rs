//! `publish`: sends events to the topic, keyed by `record_id` (what producers
//! should do; used by the demo, the tests and integrators checking their
//! events). A line that is not JSON or has no `record_id` is sent without a
//! key, so the tracker's quarantine can be exercised too.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;

use common::event::MAX_EVENT_BYTES;

use crate::IngestError;

#[derive(Default)]
pub(crate) struct Deliveries {
    /// The messages whose delivery failed (their index), and why.
    pub(crate) failed: std::sync::Mutex<Vec<(usize, String)>>,
}

/// librdkafka's own log lines (a dead broker gives hundreds) go to debug:
/// the one error that matters is returned.
impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(?level, fac, "librdkafka: {log_message}");
    }
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, "librdkafka error: {reason}");
    }
}

impl ProducerContext for Deliveries {
    /// The message's index.
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, index: usize) {
        if let Err((e, _)) = result {
            self.failed
                .lock()
                .expect("failures lock")
                .push((index, e.to_string()));
        }
    }
}

/// How long `publish` waits for the broker to describe the topic.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// The message key a line gets: its `record_id`, when it has one.
pub fn key_of(line: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("record_id")?.as_str().map(|s| s.as_bytes().to_vec())
}

/// Sends `(key, value)` messages and waits until every one is acknowledged;
/// any that is not fails the whole (see [`send_each`] to go on past them).
pub fn publish(
    brokers: &str,
    topic: &str,
    messages: &[(Option<Vec<u8>>, Vec<u8>)],
) -> Result<u64, IngestError> {
    let failed = send_each(brokers, topic, messages)?;
    match failed.first() {
        None => Ok(messages.len() as u64),
        Some((_, reason)) => Err(IngestError::NotDelivered {
            failed: failed.len() as u64,
            total: messages.len(),
            reason: reason.clone(),
        }),
    }
}

/// Sends every message it can and waits for their acknowledgements: the
/// messages that could not be sent or were not acknowledged, by index, with
/// the reason — one oversized message no longer loses the others. A dead
/// broker or a missing topic is an error before anything is sent.
pub fn send_each(
    brokers: &str,
    topic: &str,
    messages: &[(Option<Vec<u8>>, Vec<u8>)],
) -> Result<Vec<(usize, String)>, IngestError> {
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("acks", "all")
        .set("linger.ms", "5")
        // Same key → same partition as Java clients.
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", "30000")
        .create_with_context(Deliveries::default())?;
    // Ask first, so that a dead broker or a missing topic is one clear error
    // now rather than every message timing out after 30 s.
    match producer
        .client()
        .fetch_metadata(Some(topic), METADATA_TIMEOUT)
    {
        Err(e) => {
            return Err(IngestError::Unreachable {
                brokers: brokers.to_owned(),
                waited: METADATA_TIMEOUT,
                last: Box::new(e.into()),
            })
        }
        Ok(md) => {
            if !md
                .topics()
                .iter()
                .any(|t| t.name() == topic && t.error().is_none())
            {
                return Err(IngestError::NoSuchTopic(topic.to_owned()));
            }
        }
    }
    let mut refused = Vec::new();
    for (i, (key, value)) in messages.iter().enumerate() {
        loop {
            let mut rec = BaseRecord::with_opaque_to(topic, i).payload(value);
            if let Some(k) = key {
                rec = rec.key(k);
            }
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    producer.poll(Duration::from_millis(50));
                }
                // This message (too large, say): the others still go.
                Err((e @ KafkaError::MessageProduction(_), _)) => {
                    refused.push((i, e.to_string()));
                    break;
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60))?;
    let mut failed = std::mem::take(&mut *producer.context().failed.lock().expect("failures lock"));
    failed.extend(refused);
    failed.sort();
    Ok(failed)
}

/// A JSON-lines file, read for publishing.
#[derive(Debug, PartialEq, Eq)]
pub struct Lines {
    /// Every non-blank line, keyed by its `record_id` when it has one.
    pub messages: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    /// The line number (from 1) of each message.
    pub numbers: Vec<usize>,
    /// Line numbers of lines that are not a JSON object with a
    /// `record_id`: sent without a key, the tracker will quarantine them.
    pub unkeyed: Vec<usize>,
    /// Line numbers of lines over [`MAX_EVENT_BYTES`], the largest event
    /// the tracker takes: it will quarantine them.
    pub oversized: Vec<usize>,
}

/// Reads a JSON-lines file into messages keyed by `record_id`. A leading
/// UTF-8 byte-order mark is dropped; blank lines are skipped; every other
/// line is sent as is.
pub fn read_lines(text: &[u8]) -> Lines {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut lines = Lines {
        messages: Vec::new(),
        numbers: Vec::new(),
        unkeyed: Vec::new(),
        oversized: Vec::new(),
    };
    for (i, l) in text.split(|b| *b == b'\n').enumerate() {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if l.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let key = key_of(l);
        if key.is_none() {
            lines.unkeyed.push(i + 1);
        }
        if l.len() > MAX_EVENT_BYTES {
            lines.oversized.push(i + 1);
        }
        lines.messages.push((key, l.to_vec()));
        lines.numbers.push(i + 1);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_keyed_by_record_id_and_unkeyed_ones_counted() {
        let big = format!(
            "{{\"record_id\":\"r2\",\"x\":\"{}\"}}",
            "a".repeat(MAX_EVENT_BYTES)
        );
        let text = format!("\u{feff}{{\"record_id\":\"r1\"}}\r\n\n  \nnot json\n[1]\n{big}\n");
        let got = read_lines(text.as_bytes());
        assert_eq!(
            got.messages,
            vec![
                (Some(b"r1".to_vec()), b"{\"record_id\":\"r1\"}".to_vec()),
                (None, b"not json".to_vec()),
                (None, b"[1]".to_vec()),
                (Some(b"r2".to_vec()), big.clone().into_bytes()),
            ]
        );
        assert_eq!(got.numbers, [1, 4, 5, 6]);
        assert_eq!(got.unkeyed, [4, 5]);
        assert_eq!(got.oversized, [6]);
    }
}
