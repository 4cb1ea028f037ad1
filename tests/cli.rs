//! The command line as an operator meets it: settings reach every command.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

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
    wait_until("the tracker to answer", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        wanted.join("db").exists() || wanted.join("conf").exists(),
        "no store at {}",
        wanted.display()
    );
    assert!(
        !cwd.path().join("data").exists(),
        "the store went to ./data"
    );
}
