//! The export through the real binary and broker: exports taken while
//! ingest runs at full speed each hold exactly the records of one version —
//! the reference fold of the events below the offsets their trailer names —
//! once each, with a trailer whose SHA-256 the file recomputes; and a CSV
//! export read by Python's `csv` module holds the list's records. Fetched
//! with Python's `urllib` (a chunked response, as a client downloads it).
//! `#[ignore]`d for a bare `cargo test`: it needs the tansu broker.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

use common::store::ListQuery;
use common::testkit::reference;
use common::{sample, Store};
use support::*;

const WAIT: Duration = Duration::from_secs(120);

/// The body of `GET path` as Python's urllib reads it.
fn python_get(port: u16, path: &str, script: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &format!("http://127.0.0.1:{port}{path}"),
            OPERATOR_TOKEN,
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

const FETCH: &str = "import sys, urllib.request\n\
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers={'X-Auth-Token': sys.argv[2]}))\n\
sys.stdout.buffer.write(r.read())\n";

const CSV_ROWS: &str = "import csv, io, json, sys, urllib.request\n\
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], headers={'X-Auth-Token': sys.argv[2]}))\n\
print(json.dumps(list(csv.DictReader(io.TextIOWrapper(r, encoding='utf-8', newline='')))))\n";

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn exports_during_full_speed_ingest_each_hold_one_version_exactly_once() {
    let broker = Broker::start();
    let topic = broker.create_topic(2);
    let stream = Stream::sample(3000, 25);
    let (half, all) = (stream.messages.len() / 2, stream.messages.len());
    stream.publish(&broker, &topic, 0..half);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let mut tracker = Tracker::start(&broker, &topic, &data, &["--max-batch", "500"]);
    tracker.wait_consumed(half as u64, WAIT);
    let project = sample::project_id(0);
    let path = format!("/v1/{project}/replication_records/export?sort=id:asc");
    let mut exports = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| stream.publish(&broker, &topic, half..all));
        for _ in 0..6 {
            exports.push(python_get(tracker.port, &path, FETCH));
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    tracker.wait_consumed(all as u64, WAIT);
    exports.push(python_get(tracker.port, &path, FETCH));
    tracker.stop();

    // Every accepted event with its coordinates, from the stopped store.
    let store = Store::open_read_only(&data, 1 << 24).unwrap();
    let mut logged = Vec::new();
    for r in store.view().records() {
        let (id, _) = r.unwrap();
        logged.extend(store.view().events(&id).unwrap());
    }
    let mut versions = std::collections::BTreeSet::new();
    for body in &exports {
        let text = String::from_utf8(body.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (trailer, records) = lines.split_last().unwrap();
        let trailer: Value = serde_json::from_str(trailer).unwrap();
        let t = &trailer["export"];
        let record_bytes = &text[..text.len() - lines.last().unwrap().len() - 1];
        assert_eq!(t["sha256"], hex::encode(sha2::Sha256::digest(record_bytes)));
        assert_eq!(t["records"], records.len());
        let next: BTreeMap<i64, i64> = t["offsets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["partition"].as_i64().unwrap(),
                    o["next_offset"].as_i64().unwrap(),
                )
            })
            .collect();
        versions.insert(format!("{next:?}"));
        let folded = reference::fold_messages(
            logged
                .iter()
                .filter(|e| e.offset < next.get(&(e.partition as i64)).copied().unwrap_or(0))
                .map(|e| (None, Some(e.raw.as_slice()))),
        );
        let q = ListQuery {
            sort: Some(vec![common::store::SortKey {
                field: common::store::SortField::Id,
                dir: common::store::Dir::Asc,
            }]),
            limit: Some(usize::MAX),
            ..Default::default()
        };
        let want = reference::list(&folded, &project, &q).records;
        let have: Vec<common::Record> = records
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(have.len(), want.len(), "at {next:?}");
        assert_eq!(have, want, "the export at {next:?} is not that version");
    }
    assert!(
        versions.len() >= 2,
        "every export read one version: {versions:?}"
    );
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn a_csv_export_read_by_python_holds_the_lists_records() {
    let broker = Broker::start();
    let topic = broker.create_topic(2);
    let stream = Stream::sample(600, 26);
    stream.publish(&broker, &topic, 0..stream.messages.len());
    let dir = tempfile::tempdir().unwrap();
    let mut tracker = Tracker::start(&broker, &topic, &dir.path().join("store"), &[]);
    tracker.wait_consumed(stream.messages.len() as u64, WAIT);
    let project = sample::project_id(0);
    let (s, list) = tracker.get(
        &format!("/v1/{project}/replication_records?limit=1000"),
        Some(OPERATOR_TOKEN),
    );
    assert_eq!(s, 200, "{list}");
    let list = list["replication_records"].as_array().unwrap().clone();
    assert!(list.len() > 100 && list.len() < 1000, "{}", list.len());
    let rows: Vec<BTreeMap<String, String>> = serde_json::from_slice(&python_get(
        tracker.port,
        &format!("/v1/{project}/replication_records/export?format=csv"),
        CSV_ROWS,
    ))
    .unwrap();
    tracker.stop();
    assert_eq!(rows.len(), list.len());
    for (row, r) in rows.iter().zip(&list) {
        let mut want = BTreeMap::new();
        for (k, v) in r.as_object().unwrap() {
            let mut put = |k: String, v: &Value| {
                let text = match v {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                want.insert(k, text);
            };
            match v {
                Value::Object(inner) => inner
                    .iter()
                    .for_each(|(ik, iv)| put(format!("{k}.{ik}"), iv)),
                v => put(k.clone(), v),
            }
        }
        assert_eq!(row, &want);
    }
}
