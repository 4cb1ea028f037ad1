//! The cluster tests' harness: the map the tests run (two fold workers,
//! three listing shards and a replica), starting it on a broker, and the
//! requests and references the tests compare with.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::*;
use common::cluster::partition;

pub const WAIT: Duration = Duration::from_secs(180);
/// Six: the sample's four projects hash to 4, 3, 1, 1, so every shard
/// lists one at least.
pub const CHANGELOG_PARTITIONS: u32 = 6;

/// The map: fold workers f1 (events 0-2) and f2 (3-5), listing shards s1,
/// s2, s3 (two changelog partitions each), and s1b, a replica of s1.
pub const NODES: [(&str, &str, &[u32]); 6] = [
    ("f1", "fold", &[0, 1, 2]),
    ("f2", "fold", &[3, 4, 5]),
    ("s1", "shard", &[0, 1]),
    ("s2", "shard", &[2, 3]),
    ("s3", "shard", &[4, 5]),
    ("s1b", "shard", &[0, 1]),
];

pub struct Cluster {
    pub nodes: BTreeMap<&'static str, Tracker>,
}

/// The tokens every e2e test uses, and the `[cluster]` map with `ports`.
pub fn write_cluster_config(dir: &Path, changelog: &str, ports: &[u16]) -> PathBuf {
    let tokens = std::fs::read_to_string(write_config(dir)).unwrap();
    let mut cfg = format!(
        "{tokens}\n[cluster]\nevents_partitions = 6\nchangelog_topic = \"{changelog}\"\nchangelog_partitions = {CHANGELOG_PARTITIONS}\n"
    );
    for ((name, role, partitions), port) in NODES.iter().zip(ports) {
        let list = if *role == "fold" { "folds" } else { "shards" };
        cfg.push_str(&format!(
            "\n[[cluster.{list}]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{port}\"\npartitions = {partitions:?}\n"
        ));
    }
    let path = dir.join("cluster.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

impl Cluster {
    pub fn start(broker: &Broker, topic: &str, changelog: &str, dir: &Path) -> Cluster {
        let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
        let config = write_cluster_config(dir, changelog, &ports);
        let mut nodes = BTreeMap::new();
        for ((name, role, _), port) in NODES.iter().zip(&ports) {
            let data = dir.join(name);
            let args = [
                "--config",
                &config.display().to_string(),
                "run",
                "--role",
                role,
                "--node",
                name,
                "--brokers",
                &broker.bootstrap(),
                "--topic",
                topic,
                "--data-dir",
                &data.display().to_string(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--cache-mb",
                "64",
                "--max-batch",
                "100",
            ]
            .map(str::to_owned)
            .to_vec();
            nodes.insert(*name, Tracker::start_args(*port, &data, args));
        }
        Cluster { nodes }
    }

    pub fn node(&self, name: &str) -> &Tracker {
        &self.nodes[name]
    }

    pub fn node_mut(&mut self, name: &str) -> &mut Tracker {
        self.nodes.get_mut(name).unwrap()
    }

    /// The listing shard that owns `project`.
    pub fn shard_of(project: &str) -> &'static str {
        let p = partition(project.as_bytes(), CHANGELOG_PARTITIONS);
        NODES
            .iter()
            .find(|(_, role, ps)| *role == "shard" && ps.contains(&p))
            .unwrap()
            .0
    }

    /// Waits until the shards' joined digest is `want`, asking through f1.
    pub fn wait_listings(&self, want: &str) {
        let mut last = Value::Null;
        let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            wait_until("the cluster's listings digest", WAIT, || {
                let (s, b) = self
                    .node("f1")
                    .get("/v1/admin/cluster/digest", Some(OPERATOR_TOKEN));
                last = b.clone();
                s == 200 && b["listings_digest"] == want
            })
        }));
        if waited.is_err() {
            let logs: Vec<String> = self
                .nodes
                .iter()
                .map(|(n, t)| format!("--- {n}:\n{}", t.log_tail()))
                .collect();
            panic!("last answer {last}\n{}", logs.join("\n"));
        }
    }
}

/// Per project, SHA-256 over its records as the API renders them in id
/// order; and the digest of those lines, as `listings_digest` says.
pub fn reference_listings(
    records: &BTreeMap<String, common::Record>,
) -> (BTreeMap<String, String>, String) {
    let mut per: BTreeMap<String, Sha256> = BTreeMap::new();
    for r in records.values() {
        let mut projects: Vec<&str> = [&r.source_project_id, &r.destination_project_id]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        projects.dedup();
        for p in projects {
            let h = per.entry(p.to_owned()).or_default();
            h.update(serde_json::to_vec(r).unwrap());
            h.update(b"\n");
        }
    }
    let per: BTreeMap<String, String> = per
        .into_iter()
        .map(|(p, h)| (p, hex::encode(h.finalize())))
        .collect();
    let mut all = Sha256::new();
    for (p, d) in &per {
        all.update(format!("{p} {d}\n"));
    }
    (per, hex::encode(all.finalize()))
}

/// A GET's status, the named header's value and the JSON body.
pub fn get_with_header(
    port: u16,
    path: &str,
    token: &str,
    header: &str,
) -> (u16, Option<String>, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let value = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(header).then(|| v.trim().to_owned())
    });
    (
        status,
        value,
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// A GET as HTTP/1.0 (no chunked framing: the body as sent, to its end).
pub fn get_http10(port: u16, path: &str, token: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nX-Auth-Token: {token}\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    body.to_owned()
}

pub fn event(
    id: &str,
    record: &str,
    attempt: u32,
    at: &str,
    project: &str,
) -> (Option<Vec<u8>>, Vec<u8>) {
    let e = json!({
        "schema_version": 1, "event_id": id, "type": "started", "record_id": record,
        "occurred_at": at, "attempt": attempt,
        "record": {"source_project_id": project, "destination_project_id": project,
                   "source_region": "region-1", "destination_region": "region-2"}
    });
    (
        Some(record.as_bytes().to_vec()),
        serde_json::to_vec(&e).unwrap(),
    )
}

pub fn listed(t: &Tracker, project: &str, id: &str) -> bool {
    let (s, b) = t.get(
        &format!("/v1/{project}/replication_records?limit=1000"),
        Some(OPERATOR_TOKEN),
    );
    assert_eq!(s, 200, "{b}");
    b["replication_records"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["id"] == id)
}

/// `run --role ROLE --node NODE` with `config`: its exit code and stderr
/// (a node that starts instead of refusing is stopped after 30 s: `None`).
pub fn refused(config: &Path, role: &str, node: &str, data: &Path) -> (Option<i32>, String) {
    let err = data.with_extension("stderr");
    let mut child = std::process::Command::new(tracker_bin())
        .args(["--config", &config.display().to_string(), "run"])
        .args(["--role", role, "--node", node, "--brokers", "127.0.0.1:9"])
        .args(["--data-dir", &data.display().to_string()])
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(30) {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(&err).unwrap())
}
