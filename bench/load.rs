//! `--load`: 64 concurrent HTTP connections for `--load-secs` against `tracker run`
//! while its ingest worker drains a stream at full speed from the real
//! broker. Reports errors, latency percentiles and RSS over time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

use common::record::Field;
use common::{sample, EventType};

use crate::counters::rss_of;
use crate::process::{free_port, spawn_tracker, start_tansu};
use crate::shapes::{self, Params};
use crate::{http, summarize};

pub fn run(a: &crate::Args) -> anyhow::Result<()> {
    let events = sample::events(&sample::Shape {
        records: a.load_records,
        projects: 20,
        regions: 10,
        seed: a.seed,
    });
    let params: Vec<Params> = events
        .iter()
        // Queued events that carry every filtered value (a late destination
        // region would make Q3 send an empty parameter: a 400).
        .filter(|e| e.kind == EventType::Queued)
        .filter(|e| e.identity.get(Field::DestinationRegion).is_some())
        .take(2000)
        .map(|e| Params {
            project: e
                .identity
                .get(Field::SourceProjectId)
                .unwrap_or_default()
                .to_owned(),
            status: common::Status::Success,
            source_region: e
                .identity
                .get(Field::SourceRegion)
                .unwrap_or_default()
                .to_owned(),
            destination_region: e
                .identity
                .get(Field::DestinationRegion)
                .unwrap_or_default()
                .to_owned(),
            checkpoint_item: e
                .identity
                .get(Field::SourceCheckpointItemId)
                .unwrap_or_default()
                .to_owned(),
            // The load pages as deep as the standard dataset does.
            depth: 1.0,
        })
        .collect();
    let messages: Vec<(Option<Vec<u8>>, Vec<u8>)> = sample::deliver(&events, a.seed)
        .iter()
        .map(|e| {
            (
                Some(e.record_id.clone().into_bytes()),
                serde_json::to_vec(&e.to_json()).expect("json"),
            )
        })
        .collect();
    let total = messages.len();
    let (broker, brokers) = start_tansu(a, "load-events")?;
    let port = free_port()?;
    let data = a.work_dir.join("load-store");
    let brokers_arg = brokers.clone();
    let mut tracker = spawn_tracker(
        a,
        &[
            "run",
            "--brokers",
            &brokers_arg,
            "--topic",
            "load-events",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &data.display().to_string(),
            "--cache-mb",
            &a.cache_mb.to_string(),
            "--startup-grace-secs",
            "0",
        ],
        port,
    )?;
    // Publish the stream while the clients run: ingest works at full speed.
    // A stream longer than the run stops being published when the clients
    // stop, so that the run ends on time.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        std::thread::spawn(move || -> anyhow::Result<usize> {
            let mut published = 0;
            for chunk in messages.chunks(20_000) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                ingest::publish::publish(&brokers, "load-events", chunk)?;
                published += chunk.len();
            }
            Ok(published)
        })
    };
    let paths: Vec<String> = params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let shape = shapes::ALL[i % shapes::ALL.len()];
            format!(
                "/v1/{}/replication_records?{}",
                p.project,
                shapes::query_string(shape, p)
            )
        })
        .collect();
    let pid = tracker.id();
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = rss_of(pid) {
                    samples.push(rss);
                }
                std::thread::sleep(Duration::from_secs(5));
            }
            samples
        })
    };
    let deadline = Instant::now() + Duration::from_secs(a.load_secs);
    let start = Instant::now();
    let results: Vec<(Vec<Timed>, Vec<Refusal>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..a.load_clients)
            .map(|c| {
                let paths = &paths;
                s.spawn(move || {
                    let mut conn = http::Conn::open(port).expect("connect");
                    let (mut lat, mut errors) = (Vec::new(), Vec::new());
                    let mut i = c;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        match conn.get(&paths[i % paths.len()], "bench-operator-token") {
                            Ok((200, _)) => {}
                            Ok((status, body)) => {
                                // Each refusal with its error code and when it came.
                                let code = serde_json::from_slice::<serde_json::Value>(&body)
                                    .ok()
                                    .and_then(|b| b["error_code"].as_str().map(str::to_owned))
                                    .unwrap_or_default();
                                errors.push((status, code, start.elapsed().as_secs()));
                            }
                            Err(_) => {
                                errors.push((0, String::new(), start.elapsed().as_secs()));
                                conn = http::Conn::open(port).expect("reconnect");
                            }
                        }
                        // Path j was built as shape j % ALL.len().
                        lat.push(((i % paths.len()) % shapes::ALL.len(), t.elapsed()));
                        i += a.load_clients;
                    }
                    (lat, errors)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let wall = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let rss = sampler.join().expect("sampler");
    // (status, error code) → (count, first and last second of the run).
    let mut by_status: std::collections::BTreeMap<(u16, String), (usize, u64, u64)> =
        std::collections::BTreeMap::new();
    for (status, code, at) in results.iter().flat_map(|r| &r.1) {
        let e = by_status
            .entry((*status, code.clone()))
            .or_insert((0, *at, *at));
        e.0 += 1;
        e.1 = e.1.min(*at);
        e.2 = e.2.max(*at);
    }
    let errors: usize = by_status.values().map(|e| e.0).sum();
    let timed: Vec<Timed> = results.into_iter().flat_map(|r| r.0).collect();
    let mut lat: Vec<Duration> = timed.iter().map(|t| t.1).collect();
    let requests = lat.len();
    let s = summarize(&mut lat, wall);
    // Which shapes make the tail: each one's p50 and p99 under the load.
    let by_shape: Vec<String> = shapes::ALL
        .iter()
        .enumerate()
        .map(|(k, shape)| {
            let mut own: Vec<Duration> = timed.iter().filter(|t| t.0 == k).map(|t| t.1).collect();
            let o = summarize(&mut own, wall);
            format!("{} {:.1}/{:.1}", shape.name(), o.p50_ms, o.p99_ms)
        })
        .collect();
    let published = publisher.join().expect("publisher").context("publishing")?;
    let consumed = consumed_from_metrics(port)?;
    let _ = tracker.kill();
    let _ = tracker.wait();
    drop(broker);
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "load: {} clients for {:.0?}: {requests} requests, {errors} errors {by_status:?} ((status, code): (count, first s, last s); status 0 = connection error), {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        a.load_clients, wall, s.per_sec, s.p50_ms, s.p99_ms
    );
    println!("load: by shape, p50/p99 ms: {}", by_shape.join(", "));
    println!(
        "load: ingest consumed {consumed} of {published} published messages (of a stream of {total}) meanwhile; RSS every 5 s (MiB): {}",
        rss.iter().map(|r| format!("{:.0}", mib(*r))).collect::<Vec<_>>().join(" ")
    );
    if errors > 0 {
        anyhow::bail!("{errors} errors under load");
    }
    Ok(())
}

/// A request's latency with its shape (paths cycle through the shapes).
type Timed = (usize, Duration);

/// A non-200 answer: status (0: connection error), error code, and the
/// second of the run it came in.
type Refusal = (u16, String, u64);

/// Messages consumed so far, from the Prometheus counters (cheap, unlike
/// the digest).
fn consumed_from_metrics(port: u16) -> anyhow::Result<u64> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    use std::io::{Read, Write};
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text
        .lines()
        .filter(|l| {
            [
                "tracker_events_applied_total ",
                "tracker_events_duplicate_total ",
                "tracker_events_quarantined_total ",
            ]
            .iter()
            .any(|m| l.starts_with(m))
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum())
}
