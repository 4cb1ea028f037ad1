//! The topic settings the projection depends on, checked where the broker
//! answers DescribeConfigs. The topic is the system of record: a rebuild
//! (`tracker replay`) must read the same history the live projection folded.
//! Compaction breaks that (with `key = record_id` it keeps only the last
//! event of each record), so a compacted topic is refused; finite retention
//! only breaks it later, so it is warned about.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use tracing::{debug, warn};

use crate::IngestError;

/// What the topic's settings mean for the projection.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Why the topic must not be consumed, if it must not.
    pub refusal: Option<String>,
    pub warnings: Vec<String>,
}

/// Judges a topic's settings (name, value); settings the broker does not
/// report are not judged.
pub fn judge(topic: &str, settings: &[(String, Option<String>)]) -> Verdict {
    let get = |name: &str| {
        settings
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    };
    let refusal = get("cleanup.policy")
        .filter(|p| p.split(',').any(|p| p.trim() == "compact"))
        .map(|p| {
            format!(
                "topic `{topic}` has cleanup.policy={p}: compaction keeps only the last event of \
                 each record key, so the projection could not be rebuilt from the topic and the \
                 audit trail would lose events. Set cleanup.policy=delete on the topic \
                 (kafka-configs --alter --entity-type topics --entity-name {topic} \
                 --add-config cleanup.policy=delete)"
            )
        });
    let mut warnings = Vec::new();
    for name in ["retention.ms", "retention.bytes"] {
        if let Some(v) = get(name).filter(|v| v.trim() != "-1") {
            warnings.push(format!(
                "topic `{topic}` has {name}={v}: events older than that are deleted, after which \
                 `tracker replay` can no longer rebuild the projection, and a tracker stopped \
                 for longer stops at a retention gap. Set {name}=-1 on the event topic"
            ));
        }
    }
    Verdict { refusal, warnings }
}

/// Reads the topic's settings and applies [`judge`]: a refusal is an error,
/// warnings are logged. A broker that does not answer DescribeConfigs (or
/// not in time) is not judged: logged at debug, and consumption goes on.
pub fn check(brokers: &str, topic: &str, timeout: Duration) -> Result<(), IngestError> {
    let Some(settings) = describe(brokers, topic, timeout) else {
        return Ok(());
    };
    let verdict = judge(topic, &settings);
    for w in &verdict.warnings {
        warn!(topic, "{w}");
    }
    match verdict.refusal {
        Some(reason) => Err(IngestError::TopicUnusable(reason)),
        None => Ok(()),
    }
}

fn describe(
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Option<Vec<(String, Option<String>)>> {
    let admin: AdminClient<DefaultClientContext> = match ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "3")
        .create()
    {
        Ok(a) => a,
        Err(e) => {
            debug!(error = %e, "no admin client: topic settings not checked");
            return None;
        }
    };
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let spec = [ResourceSpecifier::Topic(topic)];
    let fut = admin.describe_configs(&spec, &opts);
    // Inside a runtime (a caller on one of its threads) or on none (the
    // ingest worker's own thread, replay).
    let result = match tokio::runtime::Handle::try_current() {
        Ok(h) => h.block_on(fut),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?
            .block_on(fut),
    };
    match result {
        Ok(mut rs) => match rs.pop() {
            Some(Ok(r)) => Some(r.entries.into_iter().map(|e| (e.name, e.value)).collect()),
            other => {
                debug!(
                    ?other,
                    "DescribeConfigs gave no settings: topic settings not checked"
                );
                None
            }
        },
        Err(e) => {
            debug!(error = %e, "DescribeConfigs failed: topic settings not checked");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(pairs: &[(&str, &str)]) -> Vec<(String, Option<String>)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn compaction_is_refused_and_finite_retention_warned() {
        let ok = judge(
            "t",
            &s(&[("cleanup.policy", "delete"), ("retention.ms", "-1")]),
        );
        assert_eq!(
            ok,
            Verdict {
                refusal: None,
                warnings: vec![]
            }
        );
        for policy in ["compact", "delete,compact", "compact, delete"] {
            let v = judge("t", &s(&[("cleanup.policy", policy)]));
            let r = v.refusal.expect(policy);
            assert!(r.contains("cleanup.policy") && r.contains("rebuilt"), "{r}");
        }
        let v = judge(
            "t",
            &s(&[("retention.ms", "604800000"), ("retention.bytes", "-1")]),
        );
        assert_eq!(v.refusal, None);
        assert_eq!(v.warnings.len(), 1);
        assert!(v.warnings[0].contains("retention.ms=604800000"));
        // What the broker does not report is not judged.
        assert_eq!(
            judge("t", &[]),
            Verdict {
                refusal: None,
                warnings: vec![]
            }
        );
    }
}
