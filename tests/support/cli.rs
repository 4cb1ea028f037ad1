//! Running the built `tracker` as an operator would: to its end, or as a
//! serving process awaited on its port.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, tracker_bin, wait_until};

/// `tracker run` with a store in `dir`, a broker nobody listens on (ingest
/// waits, the query service serves) and `listen` (the port of which is
/// awaited on loopback); stderr is piped.
pub fn start_run(dir: &Path, listen: &str, extra: &[&str]) -> Child {
    let port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
    let child = Command::new(tracker_bin())
        .args(["run", "--data-dir"])
        .arg(dir.join("data"))
        .args(["--brokers", &format!("127.0.0.1:{}", free_port())])
        .args(["--listen", listen])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the tracker to answer", Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            || std::net::TcpStream::connect(("::1", port)).is_ok()
    });
    child
}

/// `tracker run` with its store in `data`, a broker nobody listens on, a
/// free port and `extra`, run to its end (a start that is refused): its
/// exit code and stderr.
pub fn run_refused(data: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let brokers = format!("127.0.0.1:{}", free_port());
    let listen = format!("127.0.0.1:{}", free_port());
    let data = data.to_str().unwrap();
    let mut args = vec!["run", "--brokers", &brokers, "--data-dir", data];
    args.extend_from_slice(&["--listen", &listen]);
    args.extend_from_slice(extra);
    run_to_end(&args)
}

/// Runs the tracker to its end (at most 60 s): its exit code and stderr.
pub fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let (code, _, err) = run_in(Path::new("."), args);
    (code, err)
}

/// Runs the tracker in `cwd` to its end (at most 60 s): its exit code,
/// stdout and stderr.
pub fn run_in(cwd: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = Command::new(tracker_bin())
        .current_dir(cwd)
        .args(args)
        .env_remove("TRACKER_BROKERS")
        .env_remove("TRACKER_DATA_DIR")
        // What an operator debugging something else may have set: errors
        // must still be one line, without a backtrace.
        .env("RUST_BACKTRACE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("tracker {args:?} did not stop by itself");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
