//! End-to-end harness: a real tansu broker on a free loopback port, tracker
//! processes, and a minimal HTTP client. Every test gets its own broker, data
//! dirs and a random topic.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod cli;
pub mod feed;

use common::testkit::{adversarial, reference};
use common::{sample, Record, Store};

pub const OPERATOR_TOKEN: &str = "e2e-operator-token";
pub const TENANT_TOKEN: &str = "e2e-tenant-token";

pub use common::testkit::tansu::free_port;

/// The tansu binary (for the tests that run its CLI themselves).
pub fn tansu_bin() -> PathBuf {
    common::testkit::tansu::bin().unwrap()
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A tansu broker of the test's own, in a temporary directory.
pub struct Broker {
    tansu: common::testkit::tansu::Tansu,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Broker {
    pub fn start() -> Broker {
        let dir = tempfile::tempdir().unwrap();
        let tansu = common::testkit::tansu::Tansu::start(dir.path()).expect("start tansu");
        Broker {
            port: tansu.port,
            tansu,
            dir,
        }
    }

    /// Starts (again) on the same port and the same sqlite file.
    pub fn restart(&mut self) {
        self.tansu.restart().expect("restart tansu");
    }

    pub fn stop(&mut self) {
        self.tansu.stop();
    }

    pub fn bootstrap(&self) -> String {
        self.tansu.bootstrap()
    }

    /// A topic name no test has used on this broker.
    pub fn fresh_topic_name(&self) -> String {
        format!(
            "e2e-{}",
            sample::Rng::new(Instant::now().elapsed().as_nanos() as u64 ^ u64::from(self.port))
                .next_u64()
                % 1_000_000_000
        )
    }

    pub fn create_topic(&self, partitions: u32) -> String {
        self.create_topic_with(partitions, &[])
    }

    pub fn create_named_topic(&self, name: &str, partitions: u32) {
        self.tansu.create_topic(name, partitions).unwrap();
    }

    pub fn create_topic_with(&self, partitions: u32, configs: &[&str]) -> String {
        let name = self.fresh_topic_name();
        self.tansu
            .create_topic_with(&name, partitions, configs)
            .unwrap();
        name
    }

    pub fn delete_topic(&self, name: &str) {
        self.tansu.delete_topic(name).unwrap();
    }

    /// (low, high) watermarks of a partition, as a consumer sees them.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        let c: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap();
        c.fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap()
    }

    /// Publishes to one partition, whatever the keys (the tracker's own
    /// publisher partitions by key).
    pub fn publish_to_partition(
        &self,
        topic: &str,
        partition: i32,
        messages: &[(Option<Vec<u8>>, Vec<u8>)],
    ) {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        let p: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .unwrap();
        for (k, v) in messages {
            let mut r = BaseRecord::<[u8], [u8]>::to(topic)
                .partition(partition)
                .payload(v.as_slice());
            if let Some(k) = k {
                r = r.key(k.as_slice());
            }
            p.send(r).map_err(|(e, _)| e).unwrap();
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(30)).unwrap();
    }
}

/// A published stream and what folding it must give.
pub struct Stream {
    pub messages: Vec<(Option<Vec<u8>>, Vec<u8>)>,
    pub events: Vec<common::Event>,
}

impl Stream {
    /// Sample records plus a fifth as many adversarial ones (conflicting
    /// identity, retries, stragglers: what a wrong fold gets wrong), delivered
    /// out of order with duplicates, plus one malformed message in the middle.
    pub fn sample(records: usize, seed: u64) -> Stream {
        let mut events = sample::events(&sample::Shape {
            records,
            projects: 4,
            regions: 5,
            seed,
        });
        let projects: Vec<String> = (0..4).map(sample::project_id).collect();
        events.extend(adversarial::events(records / 5, &projects, seed));
        let delivered = sample::deliver(&events, seed + 1);
        let mut messages: Vec<(Option<Vec<u8>>, Vec<u8>)> = delivered
            .iter()
            .map(|e| {
                (
                    Some(e.record_id.clone().into_bytes()),
                    serde_json::to_vec(&e.to_json()).unwrap(),
                )
            })
            .collect();
        messages.insert(
            messages.len() / 2,
            (
                Some(b"r-bad".to_vec()),
                b"{\"schema_version\":1,\"event_id\":\"x\"".to_vec(),
            ),
        );
        Stream { messages, events }
    }

    /// What the independent reference fold makes of every message.
    pub fn reference(&self) -> BTreeMap<String, Record> {
        reference::fold_messages(
            self.messages
                .iter()
                .map(|(k, v)| (k.as_deref(), Some(v.as_slice()))),
        )
    }

    /// The digest the projection must have once every message is consumed.
    pub fn reference_digest(&self) -> String {
        reference::digest(&self.reference())
    }

    pub fn publish(&self, broker: &Broker, topic: &str, range: std::ops::Range<usize>) {
        ingest::publish::publish(&broker.bootstrap(), topic, &self.messages[range]).unwrap();
    }
}

pub struct Tracker {
    child: Option<Child>,
    pub port: u16,
    pub data: PathBuf,
    args: Vec<String>,
    log: PathBuf,
}

pub fn write_config(dir: &Path) -> PathBuf {
    let hash = |t: &str| hex::encode(query::hash_token(t));
    let cfg = format!(
        "[[tokens]]\nname = \"op\"\nsha256 = \"{}\"\nprojects = [\"*\"]\n\n[[tokens]]\nname = \"tenant\"\nsha256 = \"{}\"\nprojects = [\"{}\"]\n",
        hash(OPERATOR_TOKEN),
        hash(TENANT_TOKEN),
        sample::project_id(0)
    );
    let path = dir.join("tracker.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

pub fn tracker_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tracker")
}

impl Tracker {
    pub fn start(broker: &Broker, topic: &str, data: &Path, extra: &[&str]) -> Tracker {
        let port = free_port();
        let config = write_config(data.parent().unwrap());
        let mut args: Vec<String> = vec![
            "--config".into(),
            config.display().to_string(),
            "run".into(),
            "--brokers".into(),
            broker.bootstrap(),
            "--topic".into(),
            topic.into(),
            "--data-dir".into(),
            data.display().to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--cache-mb".into(),
            "64".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Tracker::start_args(port, data, args)
    }

    /// A tracker run with `args` as given, listening on `port` (which they
    /// must say), logging beside `data`.
    pub fn start_args(port: u16, data: &Path, args: Vec<String>) -> Tracker {
        let log = data.with_extension("log");
        let mut t = Tracker {
            child: None,
            port,
            data: data.to_owned(),
            args,
            log,
        };
        t.restart();
        t
    }

    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(tracker_bin())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start tracker");
        self.child = Some(child);
        let port = self.port;
        wait_until("the tracker to listen", Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGKILL: no flush, no goodbye.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM and wait: the graceful path.
    pub fn stop(&mut self) {
        self.stop_with("-TERM");
    }

    /// Sends `sig` (`-TERM`, `-HUP`) and waits for a clean exit (status 0,
    /// within 60 s); returns how long the stop took.
    pub fn stop_with(&mut self, sig: &str) -> Duration {
        let Some(mut c) = self.child.take() else {
            return Duration::ZERO;
        };
        let ok = Command::new("kill")
            .args([sig, &c.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let start = Instant::now();
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "tracker exited with {status} on {sig}; log: {}",
                    self.log_tail()
                );
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "tracker did not stop on {sig}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (`-STOP`, `-CONT`): a tracker that is running but
    /// makes no progress for a while.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Everything the tracker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        http_get(self.port, path, token)
    }

    /// The operator digest endpoint: digest and totals of the live projection.
    pub fn digest(&self) -> Value {
        let (s, b) = self.get("/v1/admin/digest", Some(OPERATOR_TOKEN));
        assert_eq!(s, 200, "{b}");
        b
    }

    /// Waits until `n` messages have been consumed (applied, duplicate or quarantined).
    pub fn wait_consumed(&self, n: u64, timeout: Duration) {
        wait_until(&format!("{n} messages consumed"), timeout, || {
            let seen = consumed(&self.digest());
            assert!(
                seen <= n,
                "more messages consumed ({seen}) than published ({n})"
            );
            seen == n
        });
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Messages consumed (applied, duplicate or quarantined), from a digest answer.
pub fn consumed(digest: &Value) -> u64 {
    ["events_applied", "events_duplicate", "events_quarantined"]
        .iter()
        .map(|k| digest[k].as_u64().unwrap())
        .sum()
}

/// A one-shot HTTP/1.1 GET over loopback; returns status and JSON body.
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token
        .map(|t| format!("X-Auth-Token: {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("http response");
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned())),
    )
}

/// Every event-log entry of a stopped tracker's store: (partition, offset) pairs.
pub fn event_log_coordinates(store: &Store) -> Vec<(String, i32, i64)> {
    let mut out = Vec::new();
    for r in store.view().records() {
        let (id, _) = r.unwrap();
        for e in store.view().events(&id).unwrap() {
            out.push((e.topic, e.partition, e.offset));
        }
    }
    out
}

/// Every record of a stopped tracker's store equals the reference fold's
/// (same ids, every field); panics naming the first difference.
pub fn assert_store_equals_reference(store: &Store, want: &BTreeMap<String, Record>) {
    let have: BTreeMap<String, Record> = store
        .view()
        .records()
        .map(|r| {
            let (id, s) = r.unwrap();
            let view = s.view(&id);
            (id, view)
        })
        .collect();
    for (id, w) in want {
        assert_eq!(
            have.get(id),
            Some(w),
            "record {id} differs from the reference fold"
        );
    }
    assert_eq!(
        have.len(),
        want.len(),
        "the store has records the reference has not"
    );
}
