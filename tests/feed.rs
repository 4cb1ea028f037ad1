//! The change feed through the real broker, as dashboards use it while
//! ingest runs at full speed: clients that subscribe, read for a while,
//! disconnect and resume with `Last-Event-ID`, over and over (bounded in
//! count and time). At the end each client's view equals what the API
//! lists for its project and filter, and no client was told to reload.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::sample;
use serde_json::Value;
use support::*;

const WAIT: Duration = Duration::from_secs(180);

/// One dashboard: its project and filter, what it shows, where it is.
struct Client {
    project: String,
    /// A status filter (`?status=…`), or none.
    status: Option<&'static str>,
    shown: BTreeMap<String, Value>,
    last: Option<u64>,
    /// Every change received, over all sessions: its number and record.
    seqs: Vec<(u64, String)>,
    sessions: usize,
    /// Starts as a new dashboard does (the feed without a resume point,
    /// then the list) rather than resuming from 0.
    fresh: bool,
}

impl Client {
    fn new(project: usize, status: Option<&'static str>, fresh: bool) -> Client {
        Client {
            project: sample::project_id(project),
            status,
            shown: BTreeMap::new(),
            last: None,
            seqs: Vec::new(),
            sessions: 0,
            fresh,
        }
    }

    /// One session: connects (resuming after `last`; the first time from 0,
    /// or as a new dashboard), reads for `read_for`, and disconnects.
    fn session(&mut self, tracker: &Tracker, read_for: Duration) {
        let query = self
            .status
            .map(|s| format!("?status={s}"))
            .unwrap_or_default();
        let new = self.fresh && self.sessions == 0;
        let resume = if new {
            None
        } else {
            Some(self.last.unwrap_or(0))
        };
        let mut feed =
            feed::Feed::open_filtered(tracker.port, &self.project, &query, OPERATOR_TOKEN, resume);
        if new {
            self.shown = listed(tracker, &self.project, self.status);
        }
        let until = Instant::now() + read_for;
        while let Some(e) = feed.next(
            until
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ) {
            let id = match e.event.as_str() {
                "record" => {
                    let r = e.data["replication_record"].clone();
                    let id = r["id"].as_str().unwrap().to_owned();
                    self.shown.insert(id.clone(), r);
                    id
                }
                "removed" => {
                    let id = e.data["id"].as_str().unwrap().to_owned();
                    self.shown.remove(&id);
                    id
                }
                other => panic!("a client was sent {other}: {e:?}"),
            };
            self.last = e.id;
            self.seqs.extend(e.id.map(|seq| (seq, id)));
            if Instant::now() >= until {
                break;
            }
        }
        self.sessions += 1;
    }

    /// What it shows that its filter still matches, by id.
    fn view(&self) -> BTreeMap<String, Value> {
        self.shown
            .iter()
            .filter(|(_, r)| self.status.is_none_or(|s| r["status"] == s))
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect()
    }
}

/// Every record the list endpoint gives for `project` and `status`, by id.
fn listed(tracker: &Tracker, project: &str, status: Option<&str>) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let filter = status.map(|s| format!("&status={s}")).unwrap_or_default();
    for offset in (0..).step_by(1000) {
        let (s, b) = tracker.get(
            &format!("/v1/{project}/replication_records?limit=1000&offset={offset}{filter}"),
            Some(OPERATOR_TOKEN),
        );
        assert_eq!(s, 200, "{b}");
        let page = b["replication_records"].as_array().unwrap();
        for r in page {
            out.insert(r["id"].as_str().unwrap().to_owned(), r.clone());
        }
        if page.len() < 1000 {
            break;
        }
    }
    out
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn feed_clients_reconnecting_during_full_speed_ingest_miss_nothing() {
    let broker = Broker::start();
    let topic = broker.create_topic(3);
    let stream = Stream::sample(5000, 77);
    let total = stream.messages.len();
    let dir = tempfile::tempdir().unwrap();
    // Half the stream is waiting when the tracker starts; the rest is
    // published while it runs. Small batches: many commits to race with.
    stream.publish(&broker, &topic, 0..total / 2);
    let tracker = Tracker::start(
        &broker,
        &topic,
        &dir.path().join("data"),
        &[
            "--max-batch",
            "100",
            "--max-batch-wait-ms",
            "5",
            "--startup-grace-secs",
            "0",
        ],
    );
    wait_until("the tracker to answer", WAIT, || {
        tracker.get("/health/live", None).0 == 200
    });
    // Half start from 0, half as new dashboards opened mid-ingest.
    let mut clients: Vec<Client> = [
        (0, None),
        (0, Some("success")),
        (1, None),
        (2, None),
        (0, None),
        (1, Some("replicating")),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (p, status))| Client::new(p, status, i % 2 == 1))
    .collect();
    let mut rng = sample::Rng::new(9);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| stream.publish(&broker, &topic, total / 2..total));
        // Sessions of 0-120 ms, round robin, 0-80 ms apart or 400 ms more, until everything is consumed
        // (at most 400 sessions or 150 s).
        let mut n = 0;
        while n < 400 && start.elapsed() < Duration::from_secs(150) {
            let c = &mut clients[n % 6];
            c.session(&tracker, Duration::from_millis(rng.below(120)));
            // Away for a moment: the server notices the closed connection
            // at its next write, so at times no stream is open at all —
            // which is when a batch collects no changes, and a client that
            // connects while it is applied has to read them from the log.
            let away = if rng.below(2) == 0 { 400 } else { 0 };
            std::thread::sleep(Duration::from_millis(away + rng.below(80)));
            n += 1;
            if n % 6 == 0 && consumed(&tracker.digest()) >= total as u64 {
                break;
            }
        }
    });
    tracker.wait_consumed(total as u64, WAIT);
    let ingest_secs = start.elapsed().as_secs_f64();
    // Records whose projects change as their events are folded (in the
    // order they were published: identities that conflict, a first event
    // without one): which of their changes a project's stream carries
    // depends on when each was read.
    let mut states: BTreeMap<String, (common::RecordState, bool)> = BTreeMap::new();
    for (_, value) in &stream.messages {
        let Ok(e) = common::decode(None, Some(value)) else {
            continue;
        };
        match states.get_mut(&e.record_id) {
            None => {
                let s = common::RecordState::new(&e);
                states.insert(e.record_id.clone(), (s, false));
            }
            Some((s, moved)) => {
                let before: Vec<String> = s.projects().iter().map(|p| p.to_string()).collect();
                s.apply(&e);
                *moved |= s.projects() != before;
            }
        }
    }
    let movers: std::collections::BTreeSet<String> = states
        .into_iter()
        .filter(|(_, (_, moved))| *moved)
        .map(|(id, _)| id)
        .collect();
    let (mut sessions, mut changes) = (0, 0);
    for c in &mut clients {
        // The last session drains what is left.
        c.session(&tracker, Duration::from_secs(2));
        sessions += c.sessions;
        changes += c.seqs.len();
        // 0 lost: what it received, session after session, is every change
        // a read of the whole log gives its project and filter (from its
        // first one, for a new dashboard), each once, in order.
        let mut whole = Client::new(0, c.status, false);
        whole.project = c.project.clone();
        whole.session(&tracker, Duration::from_secs(2));
        let from = if c.fresh {
            c.seqs.first().map_or(u64::MAX, |(s, _)| *s)
        } else {
            0
        };
        // Which changes of a record a project's stream carries depends on
        // where the record is listed when the change is read (a resumed
        // change carries the record as it is now): for a record that moves
        // between projects, on when it was read. Those are compared by the
        // views below; the changes of every other record, number by number.
        let settled = |seqs: &[(u64, String)]| -> Vec<u64> {
            seqs.iter()
                .filter(|(s, id)| *s >= from && !movers.contains(id))
                .map(|(s, _)| *s)
                .collect()
        };
        assert_eq!(
            settled(&c.seqs),
            settled(&whole.seqs),
            "{} (status {:?}): changes received across sessions against a read of the log",
            c.project,
            c.status
        );
        let listed = listed(&tracker, &c.project, c.status);
        let view = c.view();
        let differing: Vec<_> = view
            .keys()
            .chain(listed.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|id| view.get(*id) != listed.get(*id))
            .take(5)
            .collect();
        assert!(
            differing.is_empty(),
            "{} (status {:?}): the view differs from the list at {differing:?} ({} shown, {} listed)",
            c.project,
            c.status,
            view.len(),
            listed.len()
        );
        assert!(
            !listed.is_empty(),
            "{} {:?} lists nothing",
            c.project,
            c.status
        );
    }
    println!(
        "feed soak: {total} messages in {ingest_secs:.1} s, {} clients, {sessions} sessions, {changes} changes received, 0 lost, 0 resets ({} records moving between projects compared by view)",
        clients.len(),
        movers.len()
    );
}
