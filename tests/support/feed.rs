//! A change-feed client over a plain blocking socket: opens
//! `/v1/{project}/replication_records/changes`, decodes the chunked body and
//! parses server-sent events.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub use common::testkit::sse::Sse;

pub struct Feed {
    r: BufReader<TcpStream>,
    pending: String,
}

impl Feed {
    /// Opens the feed; panics unless it answers 200.
    pub fn open(port: u16, project: &str, token: &str, last_event_id: Option<u64>) -> Feed {
        Feed::open_filtered(port, project, "", token, last_event_id)
    }

    /// Opens the feed with a query string (`?status=success`, or empty).
    pub fn open_filtered(
        port: u16,
        project: &str,
        query: &str,
        token: &str,
        last_event_id: Option<u64>,
    ) -> Feed {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /v1/{project}/replication_records/changes{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {token}\r\n{resume}\r\n"
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 200"), "the feed answered {line}");
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
        }
        Feed {
            r,
            pending: String::new(),
        }
    }

    /// The next event, skipping comments; `None` when the stream ends or
    /// nothing comes within `wait`.
    pub fn next(&mut self, wait: Duration) -> Option<Sse> {
        // Within `wait` in all: keep-alive comments do not extend it.
        let until = std::time::Instant::now() + wait;
        loop {
            if let Some(e) = common::testkit::sse::take(&mut self.pending) {
                return Some(e);
            }
            let left = until.checked_duration_since(std::time::Instant::now())?;
            self.r
                .get_ref()
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .unwrap();
            // A chunk: its size in hex, CRLF, the bytes, CRLF.
            let mut size = String::new();
            match self.r.read_line(&mut size) {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            if n == 0 {
                return None;
            }
            let mut chunk = vec![0; n + 2];
            self.r.read_exact(&mut chunk).ok()?;
            self.pending
                .push_str(std::str::from_utf8(&chunk[..n]).unwrap());
        }
    }
}
