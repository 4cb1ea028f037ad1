//! Connection- and request-level limits over real loopback sockets: a client
//! that never finishes its headers is cut off and does not block others,
//! oversized heads get 431, past the concurrency cap requests get 503, and a
//! client that stops reading is cut off after the send timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use common::Store;
use query::{serve, AppState, Auth, Limits};

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
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve(listener, state, std::future::pending())
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

/// Past the cap an API request is shed at once; the probes and `/metrics`
/// are outside the cap (issue 40, item 3): a liveness probe of a busy,
/// healthy tracker must not fail.
#[test]
fn requests_past_the_concurrency_cap_get_503_at_once_but_probes_answer() {
    let state = AppState::new(Arc::new(Store::temporary().unwrap()), Auth::default(), None)
        .with_limits(Limits {
            max_concurrent: 0,
            ..limits()
        });
    let port = start(state);
    let get = |path: &str| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut buf = String::new();
        s.read_to_string(&mut buf).unwrap();
        buf
    };
    let buf = get("/v1/projects");
    assert!(buf.starts_with("HTTP/1.1 503"), "{buf}");
    assert!(buf.contains("TRK.OVERLOADED"));
    assert!(buf.to_ascii_lowercase().contains("retry-after: 5"));
    for probe in ["/health/live", "/health/ready", "/metrics"] {
        let buf = get(probe);
        // (`/metrics` names the code as a label: the answer's body is what tells.)
        assert!(
            !buf.contains("\"error_code\":\"TRK.OVERLOADED\""),
            "{probe} shed: {buf}"
        );
    }
    assert!(get("/health/live").starts_with("HTTP/1.1 200"));
    let metrics = get("/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200"));
    // What the shedding alert counts (issue 28).
    assert!(
        metrics.contains("tracker_http_errors_total{code=\"TRK.OVERLOADED\"} 1\n"),
        "{metrics}"
    );
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

/// A change feed whose client stops reading (a socket that never reads,
/// with a small receive buffer, and a backlog far larger than the socket
/// buffers) is closed after the send timeout, its slot freed and counted,
/// while another stream keeps flowing.
#[test]
fn a_stalled_client_is_cut_off_and_its_stream_slot_freed() {
    let token = "limits-token";
    let auth = Auth::new(&[query::TokenConfig {
        name: "t".into(),
        sha256: hex::encode(query::hash_token(token)),
        projects: vec!["*".into()],
    }])
    .unwrap();
    let store = Arc::new(Store::temporary().unwrap());
    let events = common::sample::events(&common::sample::Shape {
        records: 10_000,
        projects: 1,
        regions: 2,
        seed: 5,
    });
    let (backlog, later) = events.split_at(events.len() - 40);
    for (i, chunk) in backlog.chunks(5000).enumerate() {
        store
            .apply_batch(&common::testkit::messages(chunk, i * 5000))
            .unwrap();
    }
    let state = AppState::new(store.clone(), auth, None).with_limits(Limits {
        send_timeout: Duration::from_secs(1),
        max_streams: 2,
        ..limits()
    });
    let metrics = state.metrics.clone();
    let port = start(state);
    let feed = |since: &str| {
        format!(
            "GET /v1/{}/replication_records/changes{since} HTTP/1.1\r\nHost: h\r\nX-Auth-Token: {token}\r\n\r\n",
            common::sample::project_id(0)
        )
    };
    // The stalled client: the whole backlog asked for, nothing read.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stalled = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut s, feed("?since=0").as_bytes())
            .await
            .unwrap();
        s.into_std().unwrap()
    });
    // A healthy client beside it, reading as changes come.
    let mut healthy = TcpStream::connect(("127.0.0.1", port)).unwrap();
    healthy.write_all(feed("").as_bytes()).unwrap();
    healthy
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = [0u8; 12];
    healthy.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    let start = std::time::Instant::now();
    while metrics.clients_stalled() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the stalled client was not cut off"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(start.elapsed() >= Duration::from_millis(900));
    // The healthy stream still flows.
    store
        .apply_batch(&common::testkit::messages(later, backlog.len()))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("event: record") {
        let n = healthy.read(&mut buf).expect("the healthy stream flows");
        assert!(n > 0, "the healthy stream ended");
        got.extend_from_slice(&buf[..n]);
    }
    // The stalled stream's slot is free: a new stream (the cap is 2) opens.
    let wait = std::time::Instant::now();
    while metrics.streams_open() > 1 {
        assert!(
            wait.elapsed() < Duration::from_secs(5),
            "the slot stayed taken"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut third = TcpStream::connect(("127.0.0.1", port)).unwrap();
    third.write_all(feed("").as_bytes()).unwrap();
    third.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    drop(stalled);
}
