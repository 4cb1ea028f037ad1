//! What an operator meets first, through the real binary, with a broker
//! nobody listens on (issue 40): a parameter of another endpoint refused
//! by name, readiness that says what it means, and log lines a pipeline
//! can read.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::*;

/// `tracker run` with the test tokens, its store in `dir`, stderr in
/// `dir/log`; returns it and its port once it listens.
fn start(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> (Child, u16) {
    let config = write_config(dir);
    let port = free_port();
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = Command::new(tracker_bin())
        .arg("--config")
        .arg(&config)
        .args(["run", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--brokers", &format!("127.0.0.1:{}", free_port())])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_until("the port", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    (child, port)
}

/// SIGTERM, and what it logged.
fn stop(mut child: Child, dir: &Path) -> String {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    std::fs::read_to_string(dir.join("log")).unwrap()
}

/// `…/replication_summaries?updated_after=…` answered the unfiltered
/// total, and `checkpoint_item_id`, `sort` and `limit` were dropped alike:
/// a dashboard that copies the list's query string got wrong numbers. A
/// parameter of another endpoint is now a 400 naming it; a name no
/// endpoint takes is still ignored (the seed's own example has `offest`).
#[test]
fn a_parameter_of_another_endpoint_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = start(dir.path(), &[], &["--startup-grace-secs", "0"]);
    let get = |path: &str| http_get(port, path, Some(OPERATOR_TOKEN));
    let summaries = "/v1/p/replication_summaries";
    let list = "/v1/p/replication_records";
    for (path, param) in [
        (
            format!("{summaries}?updated_after=2030-01-01T00:00:00"),
            "updated_after",
        ),
        (
            format!("{summaries}?checkpoint_item_id=c1"),
            "checkpoint_item_id",
        ),
        (format!("{summaries}?status=fail&sort=created_at"), "sort"),
        (format!("{summaries}?limit=10"), "limit"),
        (format!("{list}?group_by=status"), "group_by"),
        (format!("{list}?since=3"), "since"),
    ] {
        let (status, body) = get(&path);
        assert_eq!(status, 400, "{path}: {body}");
        let msg = body["error_msg"].as_str().unwrap_or_default();
        assert!(msg.contains(param), "{path}: {body}");
    }
    for path in [
        format!("{summaries}?status=fail&group_by=source_region&created_after=2024-01-01T00:00:00"),
        format!("{list}?limit=10&offest=5"),
    ] {
        let (status, body) = get(&path);
        assert_eq!(status, 200, "{path}: {body}");
    }
    stop(child, dir.path());
}

/// Readiness said `caught_up_once: true` once the start-up grace elapsed,
/// with the broker down all along. It now says only what happened, and
/// `start_up` says why lists are served.
#[test]
fn readiness_never_says_caught_up_when_only_the_grace_elapsed() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = start(dir.path(), &[], &["--startup-grace-secs", "1"]);
    std::thread::sleep(Duration::from_millis(2500));
    let (status, body) = http_get(port, "/health/ready", None);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["caught_up_once"], Value::Bool(false), "{body}");
    assert_eq!(body["start_up"], "grace_elapsed", "{body}");
    let (status, body) = http_get(port, "/v1/p/replication_records", Some(OPERATOR_TOKEN));
    assert_eq!(status, 200, "served as it is after the grace: {body}");
    stop(child, dir.path());
}

/// With `TRACKER_LOG_FORMAT=json`, every line is one JSON object: the
/// access line's `ms` a number (it was a string), with the client's
/// address and the path (a 404 was `route="unmatched"` and nothing else),
/// and the line that ends a failed start (it was plain text).
#[test]
fn json_logs_are_json_to_the_last_line_with_the_peer_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let json = [("TRACKER_LOG_FORMAT", "json")];
    let (child, port) = start(dir.path(), &json, &["--startup-grace-secs", "0"]);
    let (status, _) = http_get(port, "/v1/p/no-such-route", Some(OPERATOR_TOKEN));
    assert_eq!(status, 404);
    // A path past 200 characters is logged cut at 200.
    let long = format!("/v1/p/{}", "x".repeat(300));
    let (status, _) = http_get(port, &long, Some(OPERATOR_TOKEN));
    assert_eq!(status, 404);
    let log = stop(child, dir.path());
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| l["span"]["path"] == "/v1/p/no-such-route")
        .unwrap_or_else(|| panic!("no access line: {log}"));
    assert!(access["fields"]["ms"].is_number(), "{access}");
    assert_eq!(access["fields"]["status"], 404, "{access}");
    assert_eq!(access["span"]["route"], "unmatched", "{access}");
    let peer = access["span"]["peer"].as_str().unwrap_or_default();
    assert!(peer.starts_with("127.0.0.1:"), "{access}");
    assert!(
        lines.iter().any(|l| l["span"]["path"] == long[..200]),
        "no access line with the path cut at 200 characters: {log}"
    );
    // A command line clap refuses: exit 2, and its line is JSON too.
    let out = Command::new(tracker_bin())
        .args(["run", "--max-batch-wait-ms", "soon"])
        .envs(json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let usage: Value = serde_json::from_str(err.trim()).unwrap_or_else(|e| panic!("{e}: {err}"));
    let why = usage["fields"]["error"].as_str().unwrap_or_default();
    assert!(why.contains("--max-batch-wait-ms"), "{err}");
    // A failed start: the port is taken (by a listener of the test's own).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let out = Command::new(tracker_bin())
        .args(["run", "--data-dir"])
        .arg(dir.path().join("other"))
        .args(["--brokers", &format!("127.0.0.1:{}", free_port())])
        .args(["--listen", &listen])
        .envs(json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last: Value = serde_json::from_str(err.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {err}"));
    assert_eq!(last["level"], "ERROR", "{err}");
    let why = last["fields"]["error"].as_str().unwrap_or_default();
    assert!(why.contains(&listen), "{err}");
}

/// The embedded demo (no broker configured) with `extra` flags: it, its
/// port and the demo token it prints.
fn demo(extra: &[&str]) -> (Child, u16, String) {
    use std::io::BufRead;
    let port = free_port();
    let mut child = Command::new(tracker_bin())
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env_remove("TRACKER_BROKERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let token = loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the demo ended early"
        );
        if let Some(t) = line.trim().strip_prefix("demo token (scope *): ") {
            break t.to_owned();
        }
    };
    // Whatever else it prints is read, so its stdout never breaks.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, port, token)
}

/// The audit trail is paged — `limit` (default 100, at most 1000) and
/// `marker`, the `seq` to continue after, with `next_marker` while more
/// follow — where it answered every event at once (5,000 events, 1.6 MB)
/// and ignored `limit`. Through the demo, whose sample records have
/// trails of several events.
#[test]
fn the_audit_trail_is_paged() {
    let (mut child, port, token) = demo(&[]);
    let project = common::sample::project_id(0);
    let get = |path: &str| http_get(port, path, Some(&token));
    let mut ids = Vec::new();
    wait_until("the demo's records", Duration::from_secs(60), || {
        let (s, b) = get(&format!("/v1/{project}/replication_records?limit=50"));
        ids = b["replication_records"]
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|r| r["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        s == 200 && !ids.is_empty()
    });
    let trail =
        |id: &str, q: &str| get(&format!("/v1/{project}/replication_records/{id}/events{q}"));
    let seqs = |b: &Value| -> Vec<u64> {
        b["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    };
    // The record with the longest trail among the first page.
    let (id, whole) = ids
        .iter()
        .map(|id| (id.clone(), trail(id, "?limit=1000").1))
        .max_by_key(|(_, b)| seqs(b).len())
        .unwrap();
    assert!(seqs(&whole).len() >= 3, "{whole}");
    assert!(whole.get("next_marker").is_none(), "{whole}");
    let (mut walked, mut query) = (Vec::new(), "?limit=2".to_owned());
    loop {
        let (status, page) = trail(&id, &query);
        assert_eq!(status, 200, "{page}");
        assert!(seqs(&page).len() <= 2, "{page}");
        walked.extend(seqs(&page));
        match page["next_marker"].as_str() {
            Some(m) => query = format!("?limit=2&marker={m}"),
            None => break,
        }
    }
    assert_eq!(walked, seqs(&whole));
    for (q, param) in [
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?marker=x", "marker"),
    ] {
        let (status, body) = trail(&id, q);
        assert_eq!(status, 400, "{q}: {body}");
        assert!(
            body["error_msg"].as_str().unwrap().contains(param),
            "{q}: {body}"
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// The sample events the stores below hold.
fn events() -> Vec<common::Event> {
    common::sample::events(&common::sample::Shape {
        records: 40,
        projects: 1,
        regions: 2,
        seed: 3,
    })
}

/// A store in `dir/name` holding the first `take` sample events, bound to
/// the topic `t`; its path.
fn sample_store(dir: &Path, name: &str, take: usize) -> String {
    let path = dir.join(name);
    let s = common::Store::open(&path, 1 << 20).unwrap();
    let events = events();
    assert_eq!(s.bind_topic("t").unwrap(), None);
    let ms = common::testkit::messages(&events[..events.len().min(take)], 0);
    s.apply_batch(&ms).unwrap();
    s.close().unwrap();
    path.to_str().unwrap().to_owned()
}

/// `digest` printed neither the store's topic nor its checkpoints; `verify`
/// cut its list of differences at 20 without saying so, and did not
/// compare checkpoints, so a copy merely behind read as DIFFERENT with no
/// hint (issue 40, item 9).
#[test]
fn digest_and_verify_say_which_topic_and_offsets_they_read() {
    let dir = tempfile::tempdir().unwrap();
    let (whole, behind) = (
        sample_store(dir.path(), "whole", usize::MAX),
        sample_store(dir.path(), "behind", 10),
    );
    let (code, out, err) = support::cli::run_in(dir.path(), &["digest", "--data-dir", &whole]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("topic t\n"), "{out}");
    let checkpoints = out
        .lines()
        .find_map(|l| l.strip_prefix("checkpoints "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(checkpoints.starts_with("t/0:"), "{out}");
    let (code, out, err) = support::cli::run_in(
        dir.path(),
        &["verify", "--data-dir", &whole, "--against", &behind],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        out.contains(&format!("checkpoints a {checkpoints}")),
        "{out}"
    );
    assert!(out.contains("checkpoints b t/0:10"), "{out}");
    assert!(out.contains("read different offsets"), "{out}");
    assert!(out.contains("more not listed"), "{out}");
    // Equal projections from different offsets (a redelivered event moved
    // one store's checkpoint): EQUAL, and said.
    let moved = sample_store(dir.path(), "moved", usize::MAX);
    {
        let s = common::Store::open(std::path::Path::new(&moved), 1 << 20).unwrap();
        let next = s.checkpoints()[&("t".to_owned(), 0)];
        let mut again = common::testkit::messages(&events(), 0).pop().unwrap();
        again.offset = next;
        s.apply_batch(&[again]).unwrap();
        s.close().unwrap();
    }
    let (code, out, err) = support::cli::run_in(
        dir.path(),
        &["verify", "--data-dir", &whole, "--against", &moved],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("EQUAL") && out.contains("read different offsets"),
        "{out}"
    );
    // A store of another topic: nothing to compare (exit 2), both named.
    let other = dir.path().join("other");
    {
        let s = common::Store::open(&other, 1 << 20).unwrap();
        assert_eq!(s.bind_topic("u").unwrap(), None);
        s.close().unwrap();
    }
    let (code, _, err) = support::cli::run_in(
        dir.path(),
        &[
            "verify",
            "--data-dir",
            &whole,
            "--against",
            other.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("\"t\"") && err.contains("\"u\""), "{err}");
}

/// A token with surrounding whitespace hashed to a value no HTTP client can
/// present (header values are trimmed), and a CORS origin with a path was
/// accepted though no browser's `Origin` could ever match it (issue 40,
/// item 9): both refused, naming what is wrong.
#[test]
fn settings_that_could_never_match_are_refused() {
    let (code, err) = support::cli::run_to_end(&["hash-token", " padded "]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("whitespace"), "{err}");
    let (code, _) = support::cli::run_to_end(&["hash-token", "fine-token"]);
    assert_eq!(code, Some(0));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for origin in [
        "https://dash.example/path",
        "https://dash.example?x=1",
        "https://",
    ] {
        let (code, err) = support::cli::run_refused(&data, &["--cors-origin", origin]);
        assert_eq!(code, Some(1), "{origin}: {err}");
        assert!(
            err.contains("cors origin") && err.contains(origin),
            "{origin}: {err}"
        );
    }
}

/// `run` is the default command, so its flags may come without it:
/// `tracker --listen X` failed as an unknown argument (issue 40, item 9).
#[test]
fn run_flags_without_run_run() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(tracker_bin())
        .args(["--brokers", &format!("127.0.0.1:{}", free_port())])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the port, or the end", Duration::from_secs(30), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            || child.try_wait().unwrap().is_some()
    });
    let listening = child.try_wait().unwrap().is_none();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    assert!(listening, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With the request cap reached, `/health/live`, `/health/ready` and
/// `/metrics` answered 503 `TRK.OVERLOADED` (6, 4 and 3 times in 20): a
/// liveness probe restarted a busy, healthy tracker. They are outside the
/// cap now. The demo with a cap of one request, eight clients keeping it
/// full with lists (some of which must be turned away, or the cap was
/// never reached), and every probe answered.
#[test]
fn probes_answer_while_the_request_cap_turns_lists_away() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (mut child, port, token) = demo(&["--max-concurrent-requests", "1"]);
    let project = common::sample::project_id(0);
    let list = format!("/v1/{project}/replication_records?limit=1000");
    wait_until("the demo's records", Duration::from_secs(60), || {
        http_get(port, &list, Some(&token)).0 == 200
    });
    let (done, turned_away) = (AtomicBool::new(false), AtomicUsize::new(0));
    let probes = std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    let (status, body) = http_get(port, &list, Some(&token));
                    if status == 503 {
                        assert_eq!(body["error_code"], "TRK.OVERLOADED", "{body}");
                        turned_away.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        let mut probes = Vec::new();
        let start = std::time::Instant::now();
        // Until lists have been turned away for a while (or 60 s).
        while turned_away.load(Ordering::Relaxed) < 200 && start.elapsed() < Duration::from_secs(60)
        {
            for path in ["/health/live", "/health/ready", "/metrics"] {
                probes.push((path, http_get(port, path, None)));
            }
        }
        done.store(true, Ordering::Relaxed);
        probes
    });
    let turned_away = turned_away.into_inner();
    assert!(turned_away > 0, "the cap was never reached");
    for (path, (status, body)) in &probes {
        assert_eq!(*status, 200, "{path} during the cap: {body}");
    }
    println!(
        "{} probes answered while {turned_away} lists were turned away",
        probes.len()
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
