//! The command line as an operator meets it: settings from every source and
//! their refusals, start-up checks, logs and tokens. What each command does
//! with a store or a topic is in `commands.rs`.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::cli::*;
use support::*;

/// Regression: bare `tracker` (the default `run`) ignored TRACKER_DATA_DIR
/// and TRACKER_CACHE_MB and wrote its store to ./data.
#[test]
fn bare_tracker_reads_its_store_settings_from_the_environment() {
    let cwd = tempfile::tempdir().unwrap();
    let wanted = cwd.path().join("elsewhere");
    let port = free_port();
    let mut child = Command::new(tracker_bin())
        .current_dir(cwd.path())
        .env("TRACKER_DATA_DIR", &wanted)
        .env("TRACKER_CACHE_MB", "16")
        .env("TRACKER_LISTEN", format!("127.0.0.1:{port}"))
        // A broker nobody listens on: the store is opened (the embedded
        // demo would keep it in memory), ingest waits for the broker.
        .env("TRACKER_BROKERS", format!("127.0.0.1:{}", free_port()))
        .env("TRACKER_STARTUP_GRACE_SECS", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The store's files, not the port: the port is bound before the store
    // is opened, so a tracker that answers may not have made it yet (seen
    // under a parallel test run).
    wait_until(
        &format!("the store at {}", wanted.display()),
        Duration::from_secs(60),
        || wanted.join("db").exists() || wanted.join("conf").exists(),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        !cwd.path().join("data").exists(),
        "the store went to ./data"
    );
}

/// Regression: with its port taken, `run` kept ingesting without ever
/// listening, logged nothing, and died of SIGTERM (143).
#[test]
fn run_stops_with_the_reason_when_its_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = format!("127.0.0.1:{}", free_port());
    let (code, err) = run_to_end(&[
        "run",
        "--brokers",
        &broker,
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        &addr,
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("binding {addr}")), "{err}");
    assert!(
        !data.exists(),
        "the store was opened before the port was checked"
    );
}

/// Token configurations that would fail silently, or hand a scope to the
/// wrong holder, stop the start with the token named.
#[test]
fn run_refuses_unsafe_token_configurations() {
    let hash = |t: &str| hex::encode(query::hash_token(t));
    for (tokens, says) in [
        (
            "[[tokens]]\nname = \"short\"\nsha256 = \"abc\"\nprojects = [\"p\"]\n".to_owned(),
            "token `short`: sha256 must be 64 hex characters",
        ),
        (
            format!(
                "[[tokens]]\nname = \"a\"\nsha256 = \"{0}\"\nprojects = [\"p\"]\n[[tokens]]\nname = \"b\"\nsha256 = \"{0}\"\nprojects = [\"*\"]\n",
                hash("shared")
            ),
            "tokens `a` and `b` have the same sha256",
        ),
        (
            format!("[[tokens]]\nname = \"none\"\nsha256 = \"{}\"\nprojects = []\n", hash("x")),
            "token `none`: projects is empty",
        ),
        (
            format!("[[tokens]]\nname = \"blank\"\nsha256 = \"{}\"\nprojects = [\"p\"]\n", hash("")),
            "token `blank`: sha256 is the hash of the empty string",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("tracker.toml");
        std::fs::write(&config, tokens).unwrap();
        let data = dir.path().join("data");
        let broker = format!("127.0.0.1:{}", free_port());
        let (code, err) = run_to_end(&[
            "--config",
            config.to_str().unwrap(),
            "run",
            "--brokers",
            &broker,
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(says), "wanted `{says}` in: {err}");
        assert!(!data.exists(), "started before refusing: {says}");
    }
}

/// The example config's tokens are published in this repository: a tracker
/// that accepts them says so loudly.
#[test]
fn the_example_configs_tokens_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tracker.example.toml");
    let mut child = start_run(
        dir.path(),
        &format!("127.0.0.1:{port}"),
        &["--config", example],
    );
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    for name in ["operator", "dashboard"] {
        assert!(
            err.contains(&format!(
                "TOKEN `{name}` IS THE EXAMPLE CONFIG'S PUBLISHED TOKEN"
            )),
            "{err}"
        );
    }
}

/// A relative `data_dir` in a config file is the config file's neighbour,
/// wherever the tracker starts.
#[test]
fn a_relative_data_dir_in_a_config_file_is_next_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("tracker.toml"), "data_dir = \"store\"\n").unwrap();
    drop(common::Store::open(&etc.join("store"), 1 << 20).unwrap());
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let config = etc.join("tracker.toml");
    let (code, out, err) = run_in(
        &elsewhere,
        &["--config", config.to_str().unwrap(), "digest"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("digest "), "{out}");
}

/// `TRACKER_LOG_FORMAT` is `text` or `json` in any case; anything else is
/// an error, not a silent fallback to text.
#[test]
fn the_log_format_is_checked_and_plain_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |format: &str| {
        Command::new(tracker_bin())
            .args(["digest", "--data-dir"])
            .arg(&data)
            .env("TRACKER_LOG_FORMAT", format)
            .output()
            .unwrap()
    };
    let out = run("yaml");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TRACKER_LOG_FORMAT must be `text` or `json`, not `yaml`"),
        "{err}"
    );
    // Accepted in any case (the digest of a missing store then fails as
    // usual).
    for format in ["JSON", "Text"] {
        let out = run(format);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no store at"), "{format}: {err}");
    }
}

/// `--listen localhost:PORT` is resolved, as an operator expects.
#[test]
fn listen_accepts_a_host_name() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = start_run(dir.path(), &format!("localhost:{port}"), &[]);
    let _ = child.kill();
    let _ = child.wait();
}

/// One access-log line per request, carrying the request id (the client's
/// own when it sends one) and never the token; one log line per
/// quarantined message is in `tests/e2e.rs`.
#[test]
fn every_request_is_logged_once_with_its_id_and_never_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = start_run(dir.path(), &format!("127.0.0.1:{port}"), &[]);
    let secret = "a-token-that-must-not-be-logged";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    write!(
        s,
        "GET /v1/p/replication_records HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {secret}\r\nX-Request-Id: audit-7\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("x-request-id: audit-7"), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("audit-7")).collect();
    assert!(
        lines.iter().any(|l| l.contains("status=401") && l.contains("/v1/{project_id}/replication_records")),
        "{err}"
    );
    assert!(!err.contains(secret), "the token was logged: {err}");
}

/// The embedded demo keeps its projection in memory: a data directory given
/// to it is not used, and it says so.
#[test]
fn the_demo_says_it_does_not_use_the_data_directory() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = Command::new(tracker_bin())
        .args([
            "run",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ])
        .env_remove("TRACKER_BROKERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Up once it prints its token (after the demo broker and its sample).
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("demo token") {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the demo ended early"
        );
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the configured data directory is not used"),
        "{err}"
    );
    assert!(!data.exists());
}

/// With no start-up grace, the first requests are answered from the
/// projection as it is (regression: a 0 s timer let the first ones through
/// as 503 `TRK.NOT_READY`; the load test met 22–63 of them in its first
/// second).
#[test]
fn no_grace_means_no_request_is_refused_as_not_ready() {
    // The race is narrow: three starts, to meet it more often than not.
    for _ in 0..3 {
        first_requests_without_grace();
    }
}

fn first_requests_without_grace() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let port = free_port();
    let mut child = Command::new(tracker_bin())
        .arg("--config")
        .arg(&config)
        .args(["run", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--brokers", &format!("127.0.0.1:{}", free_port())])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--startup-grace-secs", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The port is bound before the store opens: requests sent at once wait
    // in the backlog and are the very first the service answers.
    wait_until("the port", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let first: Vec<_> = (0..64)
        .map(|_| {
            std::thread::spawn(move || {
                http_get(port, "/v1/p/replication_records", Some(OPERATOR_TOKEN)).0
            })
        })
        .collect();
    let statuses: Vec<u16> = first.into_iter().map(|h| h.join().unwrap()).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

/// Issue 40, item 1: a blank broker or topic setting (an empty variable in
/// a deployment template) is refused by name, never read as "unset" — it
/// once started the in-memory demo in place of the configured tracker —
/// and the demo never starts beside a config file's tokens.
#[test]
fn a_blank_broker_setting_never_starts_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("tracker.toml");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/tracker.example.toml");
    let tokens = std::fs::read_to_string(example).unwrap();
    let tokens = &tokens[tokens.find("[[tokens]]").unwrap()..];
    std::fs::write(
        &config,
        format!("[kafka]\nbrokers = \"127.0.0.1:9\"\n\n{tokens}"),
    )
    .unwrap();
    let run = |config: &std::path::Path, env: &[(&str, &str)], extra: &[&str]| {
        let mut cmd = Command::new(tracker_bin());
        cmd.args(["--config", config.to_str().unwrap(), "run", "--data-dir"])
            .arg(&data)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("TRACKER_BROKERS")
            .env_remove("TRACKER_TOPIC")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        // A refusal ends at once; a tracker still running after 20 s
        // started (the demo, before the fix).
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let running = child.try_wait().unwrap().is_none();
        if running {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !running && !err.contains("EMBEDDED DEMO"),
            "it started: {err}"
        );
        (out.status.code(), err)
    };
    for (env, extra, says) in [
        (vec![("TRACKER_BROKERS", "")], vec![], "--brokers"),
        (vec![], vec!["--brokers", " "], "--brokers"),
        (vec![("TRACKER_TOPIC", "")], vec![], "--topic"),
    ] {
        let (code, err) = run(&config, &env, &extra);
        assert_eq!(code, Some(2), "{env:?} {extra:?}: {err}");
        assert!(
            err.contains(says) && err.contains("must not be blank"),
            "{err}"
        );
    }
    let blank = dir.path().join("blank.toml");
    std::fs::write(&blank, "[kafka]\nbrokers = \"\"\n").unwrap();
    let (code, err) = run(&blank, &[], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("kafka.brokers must not be blank"), "{err}");
    // Tokens configured and no brokers anywhere: refused, not the demo.
    let (code, err) = run(std::path::Path::new(example), &[], &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("configures tokens"), "{err}");
}
