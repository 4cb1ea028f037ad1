//! The test broker — tansu 0.6 with its sqlite engine — on a free loopback
//! port, in a directory of the caller's: one launcher for the end-to-end
//! tests and the benchmark. `scripts/install-tansu` builds the binary.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The tansu binary: `$TANSU_BIN`, else where `scripts/install-tansu` puts it.
pub fn bin() -> io::Result<PathBuf> {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return Ok(p.into());
    }
    let tools = match std::env::var("RT_TOOLS_DIR") {
        Ok(d) => PathBuf::from(d),
        Err(_) => PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/replication-tracker/tools"),
    };
    let bin = tools.join("bin/tansu");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "tansu not found at {} (run scripts/install-tansu, or scripts/test)",
                bin.display()
            ),
        ))
    }
}

/// A loopback port nobody listens on (now), and never handed out before in
/// this process: tests running side by side choose their ports before their
/// processes bind them (a cluster chooses all its nodes' at once), and the
/// system may give a released port to the next asker.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        if GIVEN.lock().expect("ports lock").insert(port) {
            return port;
        }
    }
}

/// A running tansu; stopped when dropped.
pub struct Tansu {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Tansu {
    /// Starts tansu with its sqlite file and log (`tansu.log`) in `dir`.
    pub fn start(dir: &Path) -> io::Result<Tansu> {
        let mut t = Tansu {
            child: None,
            port: free_port(),
            dir: dir.to_owned(),
        };
        t.restart()?;
        Ok(t)
    }

    /// Starts (again) on the same port and the same sqlite file, and waits
    /// until it listens.
    pub fn restart(&mut self) -> io::Result<()> {
        let url = self.url();
        let log = std::fs::File::create(self.dir.join("tansu.log"))?;
        let child = Command::new(bin()?)
            .current_dir(&self.dir)
            .args(["broker", "--storage-engine", "sqlite://tansu.db"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                self.stop();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "tansu did not listen within 60 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The broker's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `host:port`, as Kafka clients take it.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn url(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    pub fn create_topic(&self, name: &str, partitions: u32) -> io::Result<()> {
        self.create_topic_with(name, partitions, &[])
    }

    /// Creates a topic with settings (`cleanup.policy=delete`, say).
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: u32,
        configs: &[&str],
    ) -> io::Result<()> {
        let partitions = partitions.to_string();
        let mut args = vec!["topic", "create", name, "--partitions", &partitions];
        for c in configs {
            args.extend(["--config", c]);
        }
        self.cli(&args)
    }

    pub fn delete_topic(&self, name: &str) -> io::Result<()> {
        self.cli(&["topic", "delete", name])
    }

    fn cli(&self, args: &[&str]) -> io::Result<()> {
        let out = Command::new(bin()?)
            .args(args)
            .args(["--broker", &self.url()])
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "tansu {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.stop();
    }
}
