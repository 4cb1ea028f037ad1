//! Reliability suites through the real broker: the SIGKILL loop, a broker
//! outage, and stops that stop. `#[ignore]`d for a bare `cargo test` (they need tansu); `scripts/test`
//! runs them. Each prints its numbers (see docs/reliability.md).

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{sample, Store};
use support::*;

const WAIT: Duration = Duration::from_secs(180);

/// Publish a stream while killing the tracker with SIGKILL at random moments
/// (start-up, mid-batch, around sled's 500 ms flush, during the engine's
/// flushes and merges of runs), restarting it each time.
/// At the end the projection must equal the reference fold and no event may
/// have been applied twice.
#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn sigkill_loop_loses_nothing_and_applies_nothing_twice() {
    let kills: usize = std::env::var("KILL_LOOP_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    kill_loop(kills, &["--max-batch", "40", "--max-batch-wait-ms", "5"]);
}

/// The same at the default batch size: each batch's event log is then
/// hundreds of KiB, written in chunks (sled would make a larger value a blob
/// file, which it never fsyncs), kills land in those writes too, and each
/// restart recovers a larger memtable from the event log.
#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn sigkill_loop_at_the_default_batch_size_loses_nothing() {
    kill_loop(8, &[]);
}

fn kill_loop(kills: usize, batching: &[&str]) {
    let seed: u64 = std::env::var("KILL_LOOP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let broker = Broker::start();
    let topic = broker.create_topic(3);
    let stream = Stream::sample(2500, seed);
    let total = stream.messages.len();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rng = sample::Rng::new(seed);
    let chunk = total.div_ceil(kills);
    let mut tracker: Option<Tracker> = None;
    let start = Instant::now();
    for k in 0..kills {
        stream.publish(
            &broker,
            &topic,
            (k * chunk).min(total)..((k + 1) * chunk).min(total),
        );
        match &mut tracker {
            None => {
                tracker = Some(Tracker::start(
                    &broker,
                    &topic,
                    &data,
                    // A 1 MiB memtable: flushes and merges run all through
                    // the stream, so kills land in them too.
                    &[batching, &["--memtable-mb", "1"]].concat(),
                ))
            }
            Some(t) => t.restart(),
        }
        // 0-1.2 s: some kills land in start-up, most mid-stream.
        std::thread::sleep(Duration::from_millis(rng.below(1200)));
        tracker.as_mut().unwrap().kill();
    }
    let mut t = tracker.unwrap();
    t.restart();
    t.wait_consumed(total as u64, WAIT);
    t.stop();

    let store = Store::open(&data, 64 << 20).unwrap();
    let want = stream.reference_digest();
    let have = store.view().digest().unwrap();
    store.assert_internally_consistent();
    let coords = event_log_coordinates(&store);
    let unique: HashSet<_> = coords.iter().collect();
    let totals = store.totals();
    let mismatches = usize::from(want != have) + (coords.len() - unique.len());
    println!(
        "kill loop: {kills} SIGKILLs, {total} messages ({} events applied, {} duplicates, {} quarantined), {} event-log entries, {mismatches} mismatches, {:.1?}",
        totals.applied,
        totals.duplicates,
        totals.quarantined,
        coords.len(),
        start.elapsed()
    );
    assert_eq!(have, want, "projection differs from the reference fold");
    assert_store_equals_reference(&store, &stream.reference());
    assert_eq!(unique.len(), coords.len(), "an event was applied twice");
    assert_eq!(
        (totals.applied + totals.duplicates + totals.quarantined) as usize,
        total
    );
}

/// Stop the broker for 30 s mid-stream: the API keeps answering from the
/// projection, readiness reports not ready, and ingest resumes by itself.
#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn broker_outage_keeps_the_api_up_and_ingest_resumes() {
    let outage = Duration::from_secs(
        std::env::var("OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(30),
    );
    let mut broker = Broker::start();
    let topic = broker.create_topic(3);
    let stream = Stream::sample(400, 8);
    let total = stream.messages.len();
    let dir = tempfile::tempdir().unwrap();
    stream.publish(&broker, &topic, 0..total / 2);
    let tracker = Tracker::start(
        &broker,
        &topic,
        &dir.path().join("data"),
        &["--max-ready-lag", "0"],
    );
    tracker.wait_consumed((total / 2) as u64, WAIT);
    let project = sample::project_id(0);
    let list = format!("/v1/{project}/replication_records?with_count=true");
    let (_, before) = tracker.get(&list, Some(TENANT_TOKEN));

    broker.stop();
    let down_at = Instant::now();
    wait_until(
        "readiness to report the outage",
        Duration::from_secs(60),
        || tracker.get("/health/ready", None).0 == 503,
    );
    let mut answered = 0;
    while down_at.elapsed() < outage {
        let (s, body) = tracker.get(&list, Some(TENANT_TOKEN));
        assert_eq!(
            s, 200,
            "the API must keep answering during the outage: {body}"
        );
        assert_eq!(body["count"], before["count"]);
        let (s, ready) = tracker.get("/health/ready", None);
        assert_eq!(
            (s, ready["broker"].as_str()),
            (503, Some("down")),
            "{ready}"
        );
        answered += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    // The loop above must have run: requests were made while the broker was down.
    assert!(
        answered >= 5,
        "only {answered} requests were made during the {outage:?} outage"
    );
    let (_, metrics) = tracker.get("/metrics", None);
    assert!(metrics.as_str().unwrap().contains("tracker_broker_up 0"));
    broker.restart();
    let outage_len = down_at.elapsed();
    stream.publish(&broker, &topic, total / 2..total);
    tracker.wait_consumed(total as u64, WAIT);
    wait_until("readiness to recover", Duration::from_secs(60), || {
        tracker.get("/health/ready", None).0 == 200
    });
    assert_eq!(tracker.digest()["digest"], stream.reference_digest());
    println!("broker outage: {outage_len:.1?} down, {answered} list requests answered 200 during it, ingest resumed, {total} messages, digest equal");
}

/// A dashboard that follows the change feed, is cut off by a SIGKILL of the
/// tracker mid-stream and resumes with the last id it saw, ends up showing
/// exactly what the API lists: nothing missed across the crash, even changes
/// it saw that the crash then lost (they are re-applied under new numbers),
/// and records that moved to another project (the adversarial events) gone.
#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn a_feed_client_resuming_after_a_sigkill_converges_to_the_list() {
    let broker = Broker::start();
    let topic = broker.create_topic(3);
    let stream = Stream::sample(600, 21);
    let total = stream.messages.len();
    let dir = tempfile::tempdir().unwrap();
    let mut tracker = Tracker::start(
        &broker,
        &topic,
        &dir.path().join("data"),
        &["--max-batch", "50", "--max-batch-wait-ms", "5"],
    );
    stream.publish(&broker, &topic, 0..total / 3);
    tracker.wait_consumed((total / 3) as u64, WAIT);
    let project = sample::project_id(0);
    let list = |t: &Tracker| -> std::collections::BTreeMap<String, serde_json::Value> {
        let (s, b) = t.get(
            &format!("/v1/{project}/replication_records?limit=1000"),
            Some(OPERATOR_TOKEN),
        );
        assert_eq!(s, 200, "{b}");
        b["replication_records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (r["id"].as_str().unwrap().to_owned(), r.clone()))
            .collect()
    };
    // The dashboard: the feed first, then the list, then every change.
    let mut feed = feed::Feed::open(tracker.port, &project, OPERATOR_TOKEN, None);
    let mut shown = list(&tracker);
    let mut last = None;
    // Publish the rest while the tracker runs; kill it mid-stream.
    let before = std::thread::scope(|s| {
        s.spawn(|| stream.publish(&broker, &topic, total / 3..total));
        wait_until("half the stream consumed", WAIT, || {
            consumed(&tracker.digest()) >= (total / 2) as u64
        });
        tracker.kill();
        follow(&mut feed, &mut shown, &mut last, Duration::from_secs(1))
    });
    assert!(before > 0, "the feed sent nothing before the kill");
    tracker.restart();
    // The feed, like the list, answers 503 until ingest has caught up.
    tracker.wait_consumed(total as u64, WAIT);
    let resume_from = last.expect("an id");
    let mut feed = feed::Feed::open(tracker.port, &project, OPERATOR_TOKEN, Some(resume_from));
    let after = follow(&mut feed, &mut shown, &mut last, Duration::from_secs(2));
    println!(
        "feed across a SIGKILL: {before} changes before, {after} after resuming from {resume_from}"
    );
    let listed = list(&tracker);
    let differing: Vec<_> = shown
        .keys()
        .chain(listed.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|id| shown.get(*id) != listed.get(*id))
        .map(|id| (id, shown.get(id), listed.get(id)))
        .collect();
    assert!(
        differing.is_empty(),
        "the dashboard's view differs from the list: (id, shown, listed) {differing:#?}"
    );
}

/// Applies every change the feed sends until it is quiet for `wait`:
/// the dashboard's view, by record id. Returns how many came.
fn follow(
    feed: &mut feed::Feed,
    shown: &mut std::collections::BTreeMap<String, serde_json::Value>,
    last: &mut Option<u64>,
    wait: Duration,
) -> usize {
    let mut n = 0;
    while let Some(e) = feed.next(wait) {
        match e.event.as_str() {
            "record" => {
                let r = e.data["replication_record"].clone();
                shown.insert(r["id"].as_str().unwrap().to_owned(), r);
            }
            "removed" => {
                shown.remove(e.data["id"].as_str().unwrap());
            }
            other => panic!("unexpected event {other}: {e:?}"),
        }
        *last = e.id;
        n += 1;
    }
    n
}

/// A stop closes the batch in hand at once, whatever the batch wait (a
/// SIGTERM waited out the whole `--max-batch-wait-ms`: at 40000 it was
/// still running past the 30 s bound), writing and flushing it; SIGHUP
/// stops as SIGTERM does (left to its default it ended the process
/// unflushed, exit 129).
#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn a_stop_closes_the_open_batch_at_once_and_sighup_stops_as_sigterm_does() {
    let broker = Broker::start();
    let topic = broker.create_topic(1);
    let stream = Stream::sample(20, 7);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut t = Tracker::start(&broker, &topic, &data, &["--max-batch-wait-ms", "60000"]);
    stream.publish(&broker, &topic, 0..stream.messages.len());
    // Polled into a batch that stays open for a minute: nothing applied.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(consumed(&t.digest()), 0, "the batch closed before its wait");
    let took = t.stop_with("-TERM");
    assert!(took < Duration::from_secs(10), "the stop took {took:?}");
    let (code, out, err) = support::cli::run_in(
        dir.path(),
        &["digest", "--data-dir", data.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&stream.reference_digest()),
        "the open batch was not written at the stop: {out}"
    );
    t.restart();
    t.stop_with("-HUP");
    assert!(t.log().contains("SIGHUP"), "{}", t.log_tail());
}
