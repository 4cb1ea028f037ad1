//! A minimal keep-alive HTTP/1.1 load generator over loopback: one thread and
//! one connection per client, a fixed number of requests each.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

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

    /// One GET; returns the status and the body length.
    pub fn get(&mut self, path: &str, token: &str) -> std::io::Result<(u16, usize)> {
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
        Ok((status, len))
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
