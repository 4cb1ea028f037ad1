//! A minimal keep-alive HTTP/1.1 load generator over loopback (one thread and
//! one connection per client, a fixed number of requests each), and the
//! comparison's HTTP runs built on it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::counters::rss_of;
use crate::dashboard::Dashboard;
use crate::process::{free_port, spawn_tracker};
use crate::shapes::{self, Params, Shape};
use crate::stats::summarize;
use crate::Row;

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    pub fn open(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(Conn {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        })
    }

    /// One GET; returns the status and the body.
    pub fn get(&mut self, path: &str, token: &str) -> std::io::Result<(u16, Vec<u8>)> {
        write!(
            self.writer,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\n\r\n"
        )?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut len = 0usize;
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; len];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// Runs `clients` threads, each sending its share of `paths` in turn; returns
/// every latency, the wall time and the number of non-200 answers.
pub fn load(
    port: u16,
    token: &str,
    clients: usize,
    paths: &[String],
) -> (Vec<Duration>, Duration, usize) {
    let start = Instant::now();
    let results: Vec<(Vec<Duration>, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let mut conn = Conn::open(port).expect("connect to the tracker");
                    let mut lat = Vec::new();
                    let mut errors = 0;
                    for path in paths.iter().skip(c).step_by(clients) {
                        let t = Instant::now();
                        match conn.get(path, token) {
                            Ok((200, _)) => {}
                            _ => errors += 1,
                        }
                        lat.push(t.elapsed());
                    }
                    (lat, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    let wall = start.elapsed();
    let errors = results.iter().map(|r| r.1).sum();
    (
        results.into_iter().flat_map(|r| r.0).collect(),
        wall,
        errors,
    )
}

/// The HTTP runs, against the real `tracker query` process serving the
/// loaded store: Q1 with 1 and 16 connections, every other shape and every
/// dashboard query with one (the same drawn parameters as in-process), and
/// the process's RSS at the end. Failed requests go to `notes`.
pub fn runs(
    a: &crate::Args,
    store_dir: &std::path::Path,
    params: &[Params],
    dashboard: &Dashboard,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<Row>> {
    let port = free_port()?;
    let cache = a.cache_mb.to_string();
    let listen = format!("127.0.0.1:{port}");
    let dir = store_dir.display().to_string();
    let mut child = spawn_tracker(
        a,
        &[
            "query",
            "--listen",
            &listen,
            "--cache-mb",
            &cache,
            "--data-dir",
            &dir,
        ],
        port,
    )?;
    let token = "bench-operator-token";
    let shape_paths = |shape: Shape| -> Vec<String> {
        params
            .iter()
            .map(|p| {
                format!(
                    "/v1/{}/replication_records?{}",
                    p.project,
                    shapes::query_string(shape, p)
                )
            })
            .collect()
    };
    let mut rows = Vec::new();
    let q1 = shape_paths(Shape::Q1);
    let _ = load(port, token, 1, &q1[..q1.len().min(20)]); // warm-up
    for clients in [1usize, 16] {
        let paths: Vec<String> = q1
            .iter()
            .cycle()
            .take(q1.len() * clients.min(4))
            .cloned()
            .collect();
        let (mut lat, wall, errors) = load(port, token, clients, &paths);
        if errors > 0 {
            notes.push(format!("{errors} HTTP errors with {clients} clients"));
        }
        let s = summarize(&mut lat, wall);
        rows.push(Row::tracker_only(
            format!("Q1 over HTTP, {clients} client(s): p50 / p99 ms, req/s"),
            format!("{:.2} / {:.2}, {:.0}", s.p50_ms, s.p99_ms, s.per_sec),
        ));
    }
    let others = shapes::ALL
        .into_iter()
        .skip(1)
        .map(|shape| (shape.name(), shape_paths(shape)))
        .chain(dashboard.paths(params));
    for (name, paths) in others {
        let (mut lat, wall, errors) = load(port, token, 1, &paths);
        if errors > 0 {
            notes.push(format!("{errors} HTTP errors on {name}"));
        }
        let s = summarize(&mut lat, wall);
        rows.push(Row::tracker_only(
            format!("{name} over HTTP, 1 client: p50 / p99 ms"),
            format!("{:.2} / {:.2}", s.p50_ms, s.p99_ms),
        ));
    }
    let (rss, hwm) = rss_of(child.id())?;
    let _ = child.kill();
    let _ = child.wait();
    rows.push(Row::tracker_only(
        "tracker process RSS after the HTTP runs, MiB (peak)".into(),
        format!(
            "{:.0} ({:.0})",
            rss as f64 / 1048576.0,
            hwm as f64 / 1048576.0
        ),
    ));
    Ok(rows)
}
