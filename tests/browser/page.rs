//! Driving the page: chromedriver on a free loopback port, a WebDriver
//! client, and waits on what the page shows.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::support::*;

/// chromedriver on a free loopback port, ended on drop.
pub(crate) struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Driver {
    pub(crate) fn start() -> Driver {
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = free_port();
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} (scripts/bootstrap --with-compose installs chromium-driver): {e}"));
        wait_until("chromedriver listening", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Driver {
            child,
            port,
            _profile: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) async fn client(&self) -> Client {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", self._profile.path().display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let caps = caps.as_object().unwrap().clone().into_iter().collect();
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }

    /// The browser's console entries since the last call (chromedriver's
    /// log endpoint).
    pub(crate) async fn console(&self, client: &Client) -> Vec<Value> {
        let session = client.session_id().await.unwrap().unwrap();
        let body = r#"{"type":"browser"}"#;
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "POST /session/{session}/se/log HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        // chromedriver may keep the connection open: read the head, then
        // exactly Content-Length bytes.
        let mut raw = Vec::new();
        let mut byte = [0u8; 1];
        while !raw.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut byte).unwrap();
            raw.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .expect("a Content-Length");
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body);
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("log answer: {body}"));
        v["value"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap()
}

/// Polls `script` until it returns something truthy; returns that.
pub(crate) async fn until(c: &Client, what: &str, timeout: Duration, script: &str) -> Value {
    let start = Instant::now();
    loop {
        let v = js(c, script).await;
        if !(v.is_null() || v == json!(false) || v == json!("") || v == json!([])) {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const ROW_IDS: &str = "return [...document.querySelectorAll('#rows tr')].map(t => t.dataset.id)";

pub(crate) async fn row_ids(c: &Client) -> Vec<String> {
    serde_json::from_value(js(c, ROW_IDS).await).unwrap()
}

/// Waits until the table shows exactly `want`, in order.
pub(crate) async fn until_rows(c: &Client, what: &str, want: &[String]) {
    let start = Instant::now();
    loop {
        let have = row_ids(c).await;
        if have == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: the table shows {have:?}, the API {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) fn api_ids(t: &Tracker, path: &str) -> (Vec<String>, Value) {
    let (status, body) = t.get(path, Some(OPERATOR_TOKEN));
    assert_eq!(status, 200, "{path}: {body}");
    let ids = body["replication_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    (ids, body)
}

pub(crate) async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}
