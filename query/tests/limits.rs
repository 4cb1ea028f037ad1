//! Connection- and request-level limits over real loopback sockets: a client
//! that never finishes its headers is cut off and does not block others,
//! oversized heads get 431, and past the concurrency cap requests get 503.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::Store;
use query::{app, serve, AppState, Auth, Limits};

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(500),
        max_header_bytes: 8192,
        ..Limits::default()
    }
}

/// Serves on a free loopback port from a background runtime; returns the port.
fn start(state: AppState) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let lim = state.limits;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(listener, app(state), lim, std::future::pending())
                .await
                .unwrap();
        });
    });
    port
}

fn status_of(port: u16, request: &[u8]) -> u16 {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn slow_and_oversized_clients_are_cut_off_without_starving_others() {
    let state = AppState::new(Arc::new(Store::temporary().unwrap()), Auth::default(), None)
        .with_limits(limits());
    let port = start(state);
    // Fifty clients that start a request and never finish its head.
    let slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // Others are served meanwhile.
    for _ in 0..20 {
        assert_eq!(
            status_of(
                port,
                b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            ),
            200
        );
    }
    // The slow ones are disconnected once the head timeout passes.
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut buf = Vec::new();
        let closed = s.read_to_end(&mut buf).is_ok();
        assert!(closed, "a slow client's connection stayed open");
    }
    // A head over the limit is refused with 431.
    let big = format!(
        "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(20_000)
    );
    assert_eq!(status_of(port, big.as_bytes()), 431);
}

#[test]
fn requests_past_the_concurrency_cap_get_503_at_once() {
    let state = AppState::new(Arc::new(Store::temporary().unwrap()), Auth::default(), None)
        .with_limits(Limits {
            max_concurrent: 0,
            ..limits()
        });
    let port = start(state);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    assert!(buf.starts_with("HTTP/1.1 503"), "{buf}");
    assert!(buf.contains("TRK.OVERLOADED"));
    assert!(buf.to_ascii_lowercase().contains("retry-after: 5"));
}

/// The README's limit, exactly: a head up to 32 KiB is served, one over it
/// gets 431 in the API's error shape (and far over it, hyper's own 431).
#[test]
fn heads_over_32_kib_get_431() {
    let state = AppState::new(Arc::new(Store::temporary().unwrap()), Auth::default(), None);
    assert_eq!(state.limits.max_header_bytes, 32 * 1024);
    let port = start(state);
    let request = |filler: usize| {
        let head =
            "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Fill: \r\n\r\n";
        format!(
            "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Fill: {}\r\n\r\n",
            "a".repeat(filler - head.len())
        )
    };
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(request(33 * 1024).as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(answer.contains("TRK.HEADERS_TOO_LARGE"), "{answer}");
    assert_eq!(status_of(port, request(31 * 1024).as_bytes()), 200);
    assert_eq!(status_of(port, request(100 * 1024).as_bytes()), 431);
}

/// Regression: a raw `"` in the URL got hyper's bare 400 (no body, no
/// request id, no log line). It reaches the router and gets the API's 400
/// naming the parameter.
#[test]
fn a_malformed_url_gets_the_apis_400() {
    let token = "limits-token";
    let auth = Auth::new(&[query::TokenConfig {
        name: "t".into(),
        sha256: hex::encode(query::hash_token(token)),
        projects: vec!["*".into()],
    }])
    .unwrap();
    let port = start(AppState::new(
        Arc::new(Store::temporary().unwrap()),
        auth,
        None,
    ));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /v1/p/replication_records?status=\"x HTTP/1.1\r\nHost: h\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("x-request-id:"), "{answer}");
    assert!(answer.contains("TRK.INVALID_PARAMETER"), "{answer}");
    assert!(answer.contains("status"), "{answer}");
}
