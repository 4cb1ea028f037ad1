//! `--feed`: the change feed under full-speed ingest. The same dataset is
//! applied twice to a fresh store served over loopback HTTP by the real
//! router, first with no stream open, then with `--feed-streams` streams
//! (spread over the projects, as many dashboards of many tenants would be).
//! Reports the apply rate of both runs and, per delivered change, the delay
//! from the batch's commit to the client reading it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use common::{sample, Message, Store};
use query::{hash_token, AppState, Auth, Limits, TokenConfig};

const TOKEN: &str = "bench-feed";

pub fn run(a: &crate::Args) -> anyhow::Result<()> {
    let messages = crate::dataset(a);
    // The apply rate of one run on this machine varies by ~10 %: alternate
    // the two settings and compare medians.
    let (mut quiet, mut loaded, mut delays, mut resets) = (Vec::new(), Vec::new(), Vec::new(), 0);
    for round in 0..a.feed_rounds {
        quiet.push(apply(a, &messages, 0, &format!("feed-0-{round}"))?.rate);
        let o = apply(a, &messages, a.feed_streams, &format!("feed-n-{round}"))?;
        loaded.push(o.rate);
        delays.extend(o.delays);
        resets += o.resets;
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (quiet, loaded) = (median(&mut quiet), median(&mut loaded));
    delays.sort();
    let q = |p: f64| delays[((delays.len() as f64 * p) as usize).min(delays.len() - 1)];
    println!();
    println!("| measure | no stream | {} streams |", a.feed_streams);
    println!("|---|---|---|");
    println!(
        "| apply, events/s (median of {}) | {quiet:.0} | {loaded:.0} ({:.0} % of no stream) |",
        a.feed_rounds,
        100.0 * loaded / quiet
    );
    println!(
        "| changes delivered | - | {} to {} streams, {resets} resets |",
        delays.len(),
        a.feed_streams,
    );
    if !delays.is_empty() {
        println!(
            "| commit → client p50 / p99 / max | - | {:.1} / {:.1} / {:.1} ms |",
            ms(q(0.5)),
            ms(q(0.99)),
            ms(*delays.last().unwrap())
        );
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Outcome {
    rate: f64,
    delays: Vec<Duration>,
    resets: usize,
}

/// What one stream read: (change seq, when) per event, and resets.
#[derive(Default)]
struct Received {
    events: Vec<(u64, Instant)>,
    resets: usize,
}

fn apply(
    a: &crate::Args,
    messages: &[Message],
    streams: usize,
    name: &str,
) -> anyhow::Result<Outcome> {
    let dir = a.work_dir.join(name);
    let store = Arc::new(Store::open(&dir, a.cache_mb << 20)?);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let closing = CancellationToken::new();
    let auth = Auth::new(&[TokenConfig {
        name: "bench".into(),
        sha256: hex::encode(hash_token(TOKEN)),
        projects: vec!["*".into()],
    }])?;
    let state = AppState::new(store.clone(), auth, None)
        .with_limits(Limits {
            max_streams: streams.max(1),
            ..Limits::default()
        })
        .with_closing(closing.clone());
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let port = listener.local_addr()?.port();
    let c = closing.clone();
    let server = rt.spawn(query::serve(
        listener,
        state,
        async move { c.cancelled().await },
    ));

    let received: Vec<Arc<Mutex<Received>>> = (0..streams).map(|_| Arc::default()).collect();
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    for (i, r) in received.iter().enumerate() {
        let (r, tx, c) = (r.clone(), opened_tx.clone(), closing.clone());
        let project = sample::project_id(i % 20);
        rt.spawn(async move {
            if let Err(e) = stream(port, &project, r, tx, c).await {
                eprintln!("stream {i}: {e:#}");
            }
        });
    }
    for _ in 0..streams {
        opened_rx
            .recv_timeout(Duration::from_secs(30))
            .context("a stream did not open")?;
    }

    let mut commits: Vec<(u64, Instant)> = Vec::new();
    let t = Instant::now();
    for chunk in messages.chunks(a.batch) {
        store.apply_batch(chunk)?;
        commits.push((store.feed().head(), Instant::now()));
    }
    let secs = t.elapsed().as_secs_f64();
    let rate = messages.len() as f64 / secs;
    println!(
        "{name}: {} messages applied in {secs:.1} s with {streams} streams open: {rate:.0} events/s",
        messages.len()
    );
    // Let the streams read what is committed, then end them.
    std::thread::sleep(Duration::from_secs(2));
    closing.cancel();
    rt.block_on(server)??;
    drop(rt);

    let mut delays = Vec::new();
    let mut resets = 0;
    for r in &received {
        let r = r.lock().unwrap();
        resets += r.resets;
        for &(seq, at) in &r.events {
            let i = commits.partition_point(|(head, _)| *head < seq);
            let Some(&(_, committed)) = commits.get(i) else {
                bail!("change {seq} was never committed");
            };
            delays.push(at.saturating_duration_since(committed));
        }
    }
    drop(store);
    std::fs::remove_dir_all(&dir)?;
    Ok(Outcome {
        rate,
        delays,
        resets,
    })
}

/// One change-feed client over raw HTTP/1.1: reads the chunked body line by
/// line and notes when each change id arrives.
async fn stream(
    port: u16,
    project: &str,
    out: Arc<Mutex<Received>>,
    opened: std::sync::mpsc::Sender<()>,
    closing: CancellationToken,
) -> anyhow::Result<()> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.set_nodelay(true)?;
    s.write_all(
        format!(
            "GET /v1/{project}/replication_records/changes HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Auth-Token: {TOKEN}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut line = String::new();
    r.read_line(&mut line).await?;
    if !line.starts_with("HTTP/1.1 200") {
        bail!("the feed answered {line}");
    }
    loop {
        line.clear();
        r.read_line(&mut line).await?;
        if line == "\r\n" {
            break;
        }
    }
    let _ = opened.send(());
    let mut pending = String::new();
    loop {
        // A chunk: its size in hex, CRLF, the bytes, CRLF.
        line.clear();
        let read = tokio::select! {
            n = r.read_line(&mut line) => n?,
            _ = closing.cancelled() => 0,
        };
        let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
        if read == 0 || size == 0 {
            return Ok(());
        }
        let mut chunk = vec![0; size + 2];
        r.read_exact(&mut chunk).await?;
        let now = Instant::now();
        pending.push_str(std::str::from_utf8(&chunk[..size])?);
        let mut got = out.lock().unwrap();
        while let Some(end) = pending.find("\n\n") {
            for l in pending[..end].lines() {
                if let Some(id) = l.strip_prefix("id: ") {
                    let id = common::store::changes::EventId::parse(id)
                        .ok_or_else(|| anyhow::anyhow!("not a change id: {id}"))?;
                    got.events.push((id.seq, now));
                } else if l == "event: reset" {
                    got.resets += 1;
                }
            }
            pending.drain(..end + 2);
        }
    }
}
