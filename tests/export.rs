//! The auditors' commands and endpoints through the real binary (and
//! broker): `tracker export` over a stopped store; exports taken while
//! ingest runs at full speed each hold exactly the records of one version —
//! the reference fold of the events below the offsets their trailer names —
//! once each, with a trailer whose SHA-256 the file recomputes; a CSV
//! export read by Python's `csv` module holds the list's records (fetched
//! with Python's `urllib`: a chunked response, as a client downloads it);
//! `replay --until` against the reference, served by `query`. The tests
//! that need the tansu broker are `#[ignore]`d for a bare `cargo test`.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sha2::Digest;

use common::store::ListQuery;
use common::testkit::reference;
use common::{sample, Store};
use support::cli::*;
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

/// `export` writes a stopped store's matching records: the NDJSON file is
/// the reference list with a trailer whose count and SHA-256 check, the CSV
/// file the same records; a bad filter is refused naming it, and leaves no
/// file.
#[test]
fn export_writes_the_matching_records_and_refuses_bad_filters() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let events = common::sample::events(&common::sample::Shape {
        records: 300,
        projects: 2,
        regions: 2,
        seed: 9,
    });
    {
        let s = common::Store::open(&path, 1 << 20).unwrap();
        s.apply_batch(&common::testkit::messages(&events, 0))
            .unwrap();
        s.flush().unwrap();
    }
    let project = common::sample::project_id(0);
    let q = common::store::ListQuery {
        status: Some(common::record::Status::Success),
        limit: Some(usize::MAX),
        ..Default::default()
    };
    let want = common::testkit::reference::list(
        &common::testkit::reference::fold_events(&events),
        &project,
        &q,
    )
    .records;
    assert!(want.len() > 20, "{}", want.len());
    let store = path.to_str().unwrap();
    let export = |format: &str, filter: &str, out: &str| {
        run_in(
            dir.path(),
            &[
                "export",
                "--data-dir",
                store,
                "--project",
                &project,
                "--filter",
                filter,
                "--format",
                format,
                "--out",
                out,
            ],
        )
    };
    let (code, _, err) = export("ndjson", "status=success", "out.ndjson");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(&format!("exported {} records", want.len())),
        "{err}"
    );
    let text = std::fs::read_to_string(dir.path().join("out.ndjson")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let (trailer, records) = lines.split_last().unwrap();
    let have: Vec<common::Record> = records
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(have, want);
    let trailer: serde_json::Value = serde_json::from_str(trailer).unwrap();
    let body = &text[..text.len() - lines.last().unwrap().len() - 1];
    assert_eq!(trailer["export"]["records"], want.len());
    assert_eq!(
        trailer["export"]["sha256"],
        hex::encode(sha2::Sha256::digest(body))
    );
    assert!(
        err.contains(trailer["export"]["sha256"].as_str().unwrap()),
        "{err}"
    );

    let (code, _, err) = export("csv", "status=success", "out.csv");
    assert_eq!(code, Some(0), "{err}");
    let mut rd = csv::Reader::from_path(dir.path().join("out.csv")).unwrap();
    let ids: Vec<String> = rd.records().map(|r| r.unwrap()[0].to_owned()).collect();
    assert_eq!(ids, want.iter().map(|r| r.id.clone()).collect::<Vec<_>>());

    for (format, filter, named) in [
        ("ndjson", "status=nope", "status"),
        ("xml", "status=success", "format"),
        ("ndjson", "limit=5", "limit"),
        ("ndjson", "status", "NAME=VALUE"),
    ] {
        let (code, _, err) = export(format, filter, "bad.out");
        assert_eq!(code, Some(1), "{filter}: {err}");
        assert!(err.contains(named), "{filter}: {err}");
        assert!(!dir.path().join("bad.out").exists());
    }
}

/// `replay --until T` folds exactly the events that occurred before T —
/// stragglers before T published after events past it included — so its
/// digest is the reference fold's over those events; the store says what it
/// is: `export` reads it, `run` refuses to ingest into it.
#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn replay_until_a_time_is_the_reference_fold_of_the_events_before_it() {
    let broker = Broker::start();
    let topic = broker.create_topic(2);
    let stream = Stream::sample(300, 7);
    stream.publish(&broker, &topic, 0..stream.messages.len());
    let decoded: Vec<common::Event> = stream
        .messages
        .iter()
        .filter_map(|(k, v)| common::decode(k.as_deref(), Some(v)).ok())
        .collect();
    let mut times: Vec<common::Micros> = decoded.iter().map(|e| e.occurred_at).collect();
    times.sort();
    let t = times[times.len() / 2];
    let first_after = decoded.iter().position(|e| e.occurred_at >= t).unwrap();
    assert!(
        decoded[first_after..].iter().any(|e| e.occurred_at < t),
        "no event before T is published after one past it"
    );
    let before: Vec<&common::Event> = decoded.iter().filter(|e| e.occurred_at < t).collect();
    let want = common::testkit::reference::fold_events(before.iter().copied());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("as-of");
    let (code, stdout, err) = run_in(
        dir.path(),
        &[
            "replay",
            "--quiet",
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
            "--until",
            &t.render(),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        stdout.contains(&format!(
            "digest {}",
            common::testkit::reference::digest(&want)
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("as of {}", t.render())),
        "{stdout}"
    );

    let (code, _, err) = run_in(
        dir.path(),
        &[
            "export",
            "--data-dir",
            out.to_str().unwrap(),
            "--project",
            &common::sample::project_id(0),
            "--out",
            "as-of.ndjson",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let listed = common::testkit::reference::list(
        &want,
        &common::sample::project_id(0),
        &common::store::ListQuery {
            limit: Some(usize::MAX),
            ..Default::default()
        },
    );
    assert!(
        err.contains(&format!("exported {} records", listed.records.len())),
        "{err}"
    );

    // `query` serves it: the list as the reference has it, the export's
    // trailer says what the store is, a later `as_of` is refused.
    let port = free_port();
    let config = write_config(dir.path());
    let mut query = Command::new(tracker_bin())
        .args(["--config", config.to_str().unwrap(), "query", "--data-dir"])
        .arg(&out)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_until("the query service", WAIT, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let project = sample::project_id(0);
    let (s, b) = http_get(
        port,
        &format!("/v1/{project}/replication_records?limit=1&with_count=true"),
        Some(OPERATOR_TOKEN),
    );
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["count"], listed.records.len(), "{b}");
    let text = String::from_utf8(python_get(
        port,
        &format!("/v1/{project}/replication_records/export"),
        FETCH,
    ))
    .unwrap();
    let trailer: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(trailer["export"]["until"], t.render(), "{trailer}");
    assert_eq!(trailer["export"]["records"], listed.records.len());
    let later = common::Micros(t.0 + 1).render();
    let (s, b) = http_get(
        port,
        &format!(
            "/v1/{project}/replication_records/{}?as_of={later}",
            listed.records[0].id
        ),
        Some(OPERATOR_TOKEN),
    );
    query.kill().unwrap();
    query.wait().unwrap();
    assert_eq!(s, 400, "{b}");
    assert!(b["error_msg"].as_str().unwrap().contains("as_of"), "{b}");

    // `verify --replay` replays it as of its own time: equal.
    let (code, stdout, err) = run_in(
        dir.path(),
        &[
            "verify",
            "--data-dir",
            out.to_str().unwrap(),
            "--replay",
            "--brokers",
            &broker.bootstrap(),
        ],
    );
    assert_eq!(code, Some(0), "{stdout}{err}");

    let (code, _, err) = run_in(
        dir.path(),
        &[
            "ingest",
            "--data-dir",
            out.to_str().unwrap(),
            "--brokers",
            &broker.bootstrap(),
            "--topic",
            &topic,
        ],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("replay --until"), "{err}");
}
