//! End-to-end tests through a real Kafka-protocol broker (tansu, sqlite engine).
//! They need the broker binary, so they are `#[ignore]`d for a bare
//! `cargo test`; `scripts/test` installs tansu and runs them.

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::record::Status;
use common::{sample, Store};
use support::*;

const WAIT: Duration = Duration::from_secs(120);

fn reference_records(stream: &Stream) -> Vec<common::Record> {
    stream.reference().into_values().collect()
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn published_events_are_served_with_filters_counts_and_quarantine() {
    let broker = Broker::start();
    let topic = broker.create_topic(3);
    let stream = Stream::sample(300, 11);
    stream.publish(&broker, &topic, 0..stream.messages.len());
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start(
        &broker,
        &topic,
        &dir.path().join("data"),
        &["--max-batch", "100"],
    );
    tracker.wait_consumed(stream.messages.len() as u64, WAIT);

    let live = tracker.digest();
    assert_eq!(live["digest"], stream.reference_digest());
    assert_eq!(live["events_quarantined"], 1);

    let project = sample::project_id(0);
    let reference = reference_records(&stream);
    let in_project: Vec<&common::Record> = reference
        .iter()
        .filter(|r| {
            r.source_project_id.as_deref() == Some(project.as_str())
                || r.destination_project_id.as_deref() == Some(project.as_str())
        })
        .collect();
    assert!(in_project.len() > 10);
    let (s, body) = tracker.get(
        &format!("/v1/{project}/replication_records?with_count=true&limit=1000"),
        Some(TENANT_TOKEN),
    );
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["count"].as_u64().unwrap() as usize, in_project.len());
    let listed = body["replication_records"].as_array().unwrap();
    // Default sort: created_at desc, and every field equals the reference fold.
    let mut want: Vec<&common::Record> = in_project.clone();
    want.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    let want_json: Vec<serde_json::Value> = want
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    assert_eq!(listed, &want_json);

    for status in Status::ALL {
        let n = in_project.iter().filter(|r| r.status == status).count();
        let (s, body) = tracker.get(
            &format!(
                "/v1/{project}/replications?status={}&with_count=true&limit=1",
                status.as_str()
            ),
            Some(TENANT_TOKEN),
        );
        assert_eq!(s, 200);
        assert_eq!(
            body["count"].as_u64().unwrap() as usize,
            n,
            "status {}",
            status.as_str()
        );
    }
    // A tenant token cannot read another project.
    let (s, _) = tracker.get(
        &format!("/v1/{}/replication_records", sample::project_id(1)),
        Some(TENANT_TOKEN),
    );
    assert_eq!(s, 403);

    // The malformed message is quarantined with its coordinates; ingest went past it.
    let (s, q) = tracker.get("/v1/admin/quarantine", Some(OPERATOR_TOKEN));
    assert_eq!(s, 200);
    assert_eq!(q["quarantined"][0]["reason_code"], "not_json");
    assert_eq!(q["quarantined"][0]["topic"], topic.as_str());
    // ...and logged once, with its reason and coordinates.
    let quarantined = q["quarantined"][0].clone();
    let log = tracker.log();
    let line = log
        .lines()
        .find(|l| l.contains("message quarantined"))
        .unwrap_or_else(|| panic!("no quarantine log line in {log}"));
    for part in [
        "reason_code=not_json".to_owned(),
        format!("partition={}", quarantined["partition"]),
        format!("offset={}", quarantined["offset"]),
    ] {
        assert!(line.contains(&part), "{part} not in {line}");
    }

    // A headless operator sees ingest catch up.
    assert!(
        tracker.log().contains("caught up with the topic"),
        "{}",
        tracker.log_tail()
    );

    // The audit trail of a record re-folds to the record.
    let r = in_project[0];
    let (s, ev) = tracker.get(
        &format!("/v1/{project}/replication_records/{}/events", r.id),
        Some(TENANT_TOKEN),
    );
    assert_eq!(s, 200);
    let events: Vec<common::Event> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| common::decode(None, Some(e["event"].to_string().as_bytes())).unwrap())
        .collect();
    assert_eq!(&common::fold_all(&events).unwrap().view(&r.id), r);

    let (s, ready) = tracker.get("/health/ready", None);
    assert_eq!((s, ready["lag"].as_i64()), (200, Some(0)), "{ready}");
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn restart_mid_stream_applies_every_event_exactly_once() {
    let broker = Broker::start();
    let topic = broker.create_topic(3);
    let stream = Stream::sample(600, 23);
    let total = stream.messages.len();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    stream.publish(&broker, &topic, 0..total / 2);
    let mut tracker = Tracker::start(
        &broker,
        &topic,
        &data,
        &["--max-batch", "25", "--max-batch-wait-ms", "5"],
    );
    wait_until("some progress", WAIT, || {
        tracker.digest()["events_applied"].as_u64().unwrap() > 50
    });
    tracker.kill(); // SIGKILL, possibly mid-batch: unflushed batches vanish with their checkpoints
                    // What survived the kill: the second run's progress is counted from here.
    let carried = {
        let t = Store::open(&data, 16 << 20).unwrap().totals();
        t.applied + t.duplicates + t.quarantined
    };
    stream.publish(&broker, &topic, total / 2..total * 3 / 4);
    tracker.restart();
    wait_until("progress in the second run", WAIT, || {
        consumed(&tracker.digest()) > carried + 50
    });
    // By construction mid-stream: the second run has applied messages of its
    // own (counted from what survived the first kill, not from the carried
    // totals), and the last quarter is published only after this kill.
    tracker.kill();
    stream.publish(&broker, &topic, total * 3 / 4..total);
    tracker.restart();
    tracker.wait_consumed(total as u64, WAIT);
    tracker.stop();

    let store = Store::open(&data, 64 << 20).unwrap();
    assert_store_equals_reference(&store, &stream.reference());
    assert_eq!(store.view().digest().unwrap(), stream.reference_digest());
    store.assert_internally_consistent();
    let coords = event_log_coordinates(&store);
    let unique: HashSet<_> = coords.iter().collect();
    assert_eq!(unique.len(), coords.len(), "an event was applied twice");
    let t = store.totals();
    assert_eq!(coords.len() as u64, t.applied + t.duplicates);
    assert_eq!((t.applied + t.duplicates + t.quarantined) as usize, total);
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn two_trackers_on_one_topic_converge() {
    let broker = Broker::start();
    let topic = broker.create_topic(3);
    let stream = Stream::sample(250, 77);
    let total = stream.messages.len();
    let dir = tempfile::tempdir().unwrap();
    stream.publish(&broker, &topic, 0..total / 3);
    let a = Tracker::start(
        &broker,
        &topic,
        &dir.path().join("a"),
        &["--max-batch", "50"],
    );
    stream.publish(&broker, &topic, total / 3..total);
    let b = Tracker::start(
        &broker,
        &topic,
        &dir.path().join("b"),
        &["--max-batch", "7"],
    );
    a.wait_consumed(total as u64, WAIT);
    b.wait_consumed(total as u64, WAIT);
    let want = stream.reference_digest();
    assert_eq!(a.digest()["digest"], want);
    assert_eq!(b.digest()["digest"], want);
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn dashboard_queries_through_the_broker_match_the_reference() {
    let broker = Broker::start();
    let topic = broker.create_topic(2);
    let stream = Stream::sample(400, 23);
    stream.publish(&broker, &topic, 0..stream.messages.len());
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start(&broker, &topic, &dir.path().join("data"), &[]);
    tracker.wait_consumed(stream.messages.len() as u64, WAIT);
    let project = sample::project_id(0);
    let get = |qs: &str| {
        let (s, b) = tracker.get(&format!("/v1/{project}/{qs}"), Some(TENANT_TOKEN));
        assert_eq!(s, 200, "{qs}: {b}");
        b
    };
    let mut records: Vec<common::Record> = reference_records(&stream)
        .into_iter()
        .filter(|r| {
            r.source_project_id.as_deref() == Some(project.as_str())
                || r.destination_project_id.as_deref() == Some(project.as_str())
        })
        .collect();
    records.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    let ids = |b: &serde_json::Value| -> Vec<String> {
        b["replication_records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // A created window, half-open, in the API's own time format.
    let (lo, hi) = (&records[60].created_at, &records[20].created_at);
    let want: Vec<String> = records
        .iter()
        .filter(|r| r.created_at >= *lo && r.created_at < *hi)
        .map(|r| r.id.clone())
        .collect();
    let b = get(&format!(
        "replication_records?created_after={lo}&created_before={hi}&with_count=true"
    ));
    assert_eq!(
        (ids(&b), b["count"].as_u64()),
        (want.clone(), Some(want.len() as u64))
    );

    // An updated window, its edges as RFC 3339 with an offset, sorted by id.
    let mut updated: Vec<&str> = records.iter().map(|r| r.updated_at.as_str()).collect();
    updated.sort_unstable();
    let (lo, hi) = (updated[30], updated[90]);
    let shifted = |t: &str| {
        let m = common::Micros::parse_api(t).unwrap();
        format!("{}%2B01:00", common::Micros(m.0 + 3_600_000_000).render())
    };
    let mut want: Vec<String> = records
        .iter()
        .filter(|r| r.updated_at.as_str() >= lo && r.updated_at.as_str() < hi)
        .map(|r| r.id.clone())
        .collect();
    want.sort();
    let b = get(&format!(
        "replication_records?updated_after={}&updated_before={}&sort=id:asc&with_count=true",
        shifted(lo),
        shifted(hi)
    ));
    assert_eq!(
        (ids(&b), b["count"].as_u64()),
        (want.clone(), Some(want.len() as u64))
    );
    let (s, b) = tracker.get(
        &format!("/v1/{project}/replication_records?updated_after={hi}&updated_before={lo}"),
        Some(TENANT_TOKEN),
    );
    assert_eq!(s, 400, "{b}");
    assert!(b["error_msg"].as_str().unwrap().contains("updated_after"));

    // Marker pages walk the whole project in the default order.
    let mut walked = Vec::new();
    let mut marker = String::new();
    loop {
        let b = get(&format!("replication_records?limit=25{marker}"));
        walked.extend(ids(&b));
        match b["next_marker"].as_str() {
            Some(m) => marker = format!("&marker={m}"),
            None => break,
        }
    }
    let all: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    assert_eq!(walked, all);

    // Summaries by status and day (the day is the date part of created_at).
    let mut groups: std::collections::BTreeMap<(String, String), u64> = Default::default();
    for r in &records {
        let day = format!("{}T00:00:00.000000", &r.created_at[..10]);
        *groups
            .entry((day, r.status.as_str().to_owned()))
            .or_default() += 1;
    }
    let want: Vec<serde_json::Value> = groups
        .iter()
        .map(|((day, status), n)| serde_json::json!({"status": status, "start": day, "count": n}))
        .collect();
    let b = get("replication_summaries?group_by=status&interval=day");
    assert_eq!(b["summaries"], serde_json::Value::Array(want));
    assert_eq!(b["total"].as_u64(), Some(records.len() as u64));

    // By region pair, filtered to one source region, with nulls as a group.
    let src = records
        .iter()
        .find_map(|r| r.source_region.clone())
        .unwrap();
    let mut groups: std::collections::BTreeMap<(Option<String>, Option<String>), u64> =
        Default::default();
    for r in records
        .iter()
        .filter(|r| r.source_region.as_ref() == Some(&src))
    {
        *groups
            .entry((r.source_region.clone(), r.destination_region.clone()))
            .or_default() += 1;
    }
    let want: Vec<serde_json::Value> = groups
        .iter()
        .map(|((s, d), n)| serde_json::json!({"source_region": s, "destination_region": d, "count": n}))
        .collect();
    let b = get(&format!(
        "replication_summaries?group_by=source_region,destination_region&source_region={src}"
    ));
    assert_eq!(b["summaries"], serde_json::Value::Array(want));

    // Capabilities: the observed source -> destination pairs.
    let mut pairs: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for r in &records {
        if let (Some(s), Some(d)) = (&r.source_region, &r.destination_region) {
            pairs.entry(s.clone()).or_default().insert(d.clone());
        }
    }
    let b = get("replication_capabilities");
    let want: Vec<serde_json::Value> = pairs
        .into_iter()
        .map(|(name, d)| serde_json::json!({"name": name, "replication_destinations": d}))
        .collect();
    assert_eq!(b["regions"], serde_json::Value::Array(want));

    // The sample is years old: every record still under way is stuck.
    let live = records
        .iter()
        .filter(|r| matches!(r.status, Status::Replicating | Status::WaitingReplicate))
        .count();
    assert!(live > 0);
    let b = get("replication_records?stuck=true&with_count=true&limit=1");
    assert_eq!(b["count"].as_u64(), Some(live as u64));
    let b = get("replication_records?stuck=false&with_count=true&limit=1");
    assert_eq!(b["count"].as_u64(), Some((records.len() - live) as u64));

    // Summaries with every filter: status, a created window, stuck, by hour.
    let (lo, hi) = (&records[80].created_at, &records[10].created_at);
    let mut nonempty = 0;
    for (status, stuck) in [("replicating", "true"), ("success", "false")] {
        let mut want: std::collections::BTreeMap<String, u64> = Default::default();
        for r in records
            .iter()
            .filter(|r| r.status.as_str() == status && r.created_at >= *lo && r.created_at < *hi)
        {
            let hour = format!("{}:00:00.000000", &r.created_at[..13]);
            *want.entry(hour).or_default() += 1;
        }
        let want: Vec<serde_json::Value> = want
            .into_iter()
            .map(|(start, n)| serde_json::json!({"start": start, "count": n}))
            .collect();
        let b = get(&format!(
            "replication_summaries?interval=hour&status={status}&stuck={stuck}&created_after={lo}&created_before={hi}"
        ));
        nonempty += usize::from(!want.is_empty());
        assert_eq!(b["summaries"], serde_json::Value::Array(want), "{status}");
    }
    assert_eq!(nonempty, 2, "both summaries compare some records");
    let (_, metrics) = tracker.get("/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains("tracker_stuck_records{status=\"replicating\"}"),
        "{metrics}"
    );
}

/// Regression: a missing topic was reported as "broker unreachable", with
/// `broker: down` and `tracker_broker_up 0` while the broker answered. Now
/// the broker is up, the topic is named as missing, and once it is created
/// the tracker consumes it.
#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn a_missing_topic_is_named_as_missing_and_picked_up_once_created() {
    let broker = Broker::start();
    let topic = broker.fresh_topic_name();
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start(&broker, &topic, &dir.path().join("data"), &[]);
    wait_until("readiness to name the missing topic", WAIT, || {
        let (_, b) = tracker.get("/health/ready", None);
        b["topic"] == "missing"
    });
    let (status, body) = tracker.get("/health/ready", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["broker"], "up", "{body}");
    let (_, metrics) = tracker.get("/metrics", Some(OPERATOR_TOKEN));
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains("tracker_broker_up 1"), "{metrics}");
    assert!(metrics.contains("tracker_topic_missing 1"), "{metrics}");
    assert!(
        tracker
            .log_tail()
            .contains(&format!("topic `{topic}` does not exist")),
        "{}",
        tracker.log_tail()
    );
    // Publishing to it fails at once, naming it (not 30 s and "1 of 1
    // messages were not delivered").
    let stream = Stream::sample(20, 4);
    let file = dir.path().join("events.jsonl");
    let mut text = b"\xEF\xBB\xBF".to_vec(); // a BOM, as some editors write
    for (_, line) in &stream.messages {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    std::fs::write(&file, text).unwrap();
    let publish = || {
        Command::new(tracker_bin())
            .args([
                "publish",
                file.to_str().unwrap(),
                "--brokers",
                &broker.bootstrap(),
                "--topic",
                &topic,
            ])
            .output()
            .unwrap()
    };
    let started = std::time::Instant::now();
    let out = publish();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("topic `{topic}` does not exist")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    broker.create_named_topic(&topic, 2);
    let out = publish();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tracker.wait_consumed(stream.messages.len() as u64, WAIT);
    let (_, body) = tracker.get("/health/ready", None);
    assert_eq!(body["topic"], "present", "{body}");
}
