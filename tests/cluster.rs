//! The cluster (issue 26) through a real broker: two fold workers and three
//! listing shards on a six-partition events topic, every request through
//! any node, against the independent reference fold and a single node of
//! the same topic; kills mid-stream; records moving between shards; and a
//! cluster map that misses or repeats a partition refused at start
//! (`cluster/start.rs`).

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use common::cluster::partition;
use common::sample;
use common::testkit::reference;
use support::feed::Feed;
use support::*;

#[path = "cluster/harness.rs"]
mod harness;
#[path = "cluster/start.rs"]
mod start;

use harness::*;

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn every_project_answers_through_any_node_as_the_reference_and_one_node() {
    let broker = Broker::start();
    let topic = broker.create_topic(6);
    let changelog = format!("{topic}-changelog");
    broker.create_named_topic(&changelog, CHANGELOG_PARTITIONS);
    let stream = Stream::sample(300, 21);
    stream.publish(&broker, &topic, 0..stream.messages.len());
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(&broker, &topic, &changelog, dir.path());
    let single = Tracker::start(&broker, &topic, &dir.path().join("single"), &[]);
    let records = stream.reference();
    let (want_projects, want) = reference_listings(&records);
    cluster.wait_listings(&want);
    single.wait_consumed(stream.messages.len() as u64, WAIT);
    let one = single.digest();
    assert_eq!(one["listings_digest"], want.as_str());
    let (_, joined) = cluster
        .node("s2")
        .get("/v1/admin/cluster/digest", Some(OPERATOR_TOKEN));
    assert_eq!(joined["projects"], json!(want_projects));
    assert_eq!(joined["listings_digest"], one["listings_digest"]);

    let projects: Vec<String> = (0..4).map(sample::project_id).collect();
    // Replicas converge: s1 and its replica s1b list the same.
    let of = |n: &str| cluster.node(n).digest()["projects"].clone();
    assert_eq!(of("s1"), of("s1b"));
    assert!(!of("s1").as_object().unwrap().is_empty());
    // The dashboard's picker: every project, through every node.
    let picker = single.get("/v1/projects", Some(OPERATOR_TOKEN));
    assert_eq!(picker.1["projects"].as_array().unwrap().len(), 4);
    for (name, node) in &cluster.nodes {
        assert_eq!(
            node.get("/v1/projects", Some(OPERATOR_TOKEN)),
            picker,
            "{name}"
        );
        let mine = node.get("/v1/projects", Some(TENANT_TOKEN));
        assert_eq!(mine.1["projects"], json!([sample::project_id(0)]), "{name}");
    }
    let owners: std::collections::BTreeSet<&str> =
        projects.iter().map(|p| Cluster::shard_of(p)).collect();
    assert_eq!(
        owners.len(),
        3,
        "a shard lists none of the sample's projects"
    );
    for project in &projects {
        let mut want: Vec<&common::Record> = records
            .values()
            .filter(|r| reference::listed_under(r, project))
            .collect();
        want.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
        let want = serde_json::to_value(&want).unwrap();
        let paths = [
            format!("/v1/{project}/replication_records?with_count=true&limit=1000"),
            format!(
                "/v1/{project}/replication_summaries?group_by=status,source_region&interval=day"
            ),
            format!("/v1/{project}/replication_capabilities"),
            format!("/v1/{project}/replication_records?stuck=true&sort=updated_at:desc&limit=50"),
        ];
        for (name, node) in &cluster.nodes {
            let (s, b) = node.get(&paths[0], Some(OPERATOR_TOKEN));
            assert_eq!(s, 200, "{name}: {b}");
            assert_eq!(b["replication_records"], want, "{name} {project}");
            assert_eq!(b["count"], want.as_array().unwrap().len(), "{name}");
            for path in &paths[1..] {
                assert_eq!(
                    node.get(path, Some(OPERATOR_TOKEN)),
                    single.get(path, Some(OPERATOR_TOKEN)),
                    "{name} {path}"
                );
            }
        }
        // The export, streamed through every node: the same records, in
        // the same order (the trailer's offsets are each store's own).
        let export = format!("/v1/{project}/replication_records/export?status=success");
        let lines = |port: u16| {
            let body = get_http10(port, &export, OPERATOR_TOKEN);
            let mut lines: Vec<String> = body.lines().map(str::to_owned).collect();
            let trailer = lines.pop().unwrap_or_default();
            assert!(trailer.contains("\"export\""), "{trailer}");
            lines
        };
        let want_export = lines(single.port);
        assert!(!want_export.is_empty());
        for (name, node) in &cluster.nodes {
            assert_eq!(lines(node.port), want_export, "{name}");
        }
        // One record, and its trail (its fold worker's), through every node.
        let id = want[0]["id"].as_str().unwrap();
        for path in [
            format!("/v1/{project}/replication_records/{id}"),
            format!("/v1/{project}/replication_records/{id}/events"),
            format!("/v1/{project}/replication_records/{id}?as_of=2100-01-01T00:00:00"),
        ] {
            // A trail's `seq` is its place in one store's log: the fold
            // worker's log holds fewer events than the single node's.
            let unsequenced = |(s, mut b): (u16, Value)| {
                for e in b["events"].as_array_mut().into_iter().flatten() {
                    e.as_object_mut().unwrap().remove("seq");
                }
                (s, b)
            };
            let here = unsequenced(single.get(&path, Some(OPERATOR_TOKEN)));
            assert_eq!(here.0, 200, "{path}: {}", here.1);
            for (name, node) in &cluster.nodes {
                let there = unsequenced(node.get(&path, Some(OPERATOR_TOKEN)));
                assert_eq!(there, here, "{name} {path}");
            }
        }
    }
    // Tokens are checked where the client comes in: the tenant's project
    // through a node that does not own it, another project refused there.
    let (p0, p1) = (&projects[0], &projects[1]);
    let stranger = NODES
        .iter()
        .find(|(n, _, _)| *n != Cluster::shard_of(p0))
        .unwrap()
        .0;
    let entry = cluster.node(stranger);
    let path = |p: &str| format!("/v1/{p}/replication_records?limit=1");
    assert_eq!(entry.get(&path(p0), Some(TENANT_TOKEN)).0, 200);
    assert_eq!(entry.get(&path(p1), Some(TENANT_TOKEN)).0, 403);
    assert_eq!(entry.get(&path(p0), Some("nope")).0, 401);

    // A forwarded request landing on a node that does not own it is
    // answered there or fails: 421, never forwarded again.
    let misrouted = |port: u16| {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            s,
            "GET {} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: {OPERATOR_TOKEN}\r\nX-Tracker-Forwarded: elsewhere\r\nConnection: close\r\n\r\n",
            path(p0)
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw
    };
    let answer = misrouted(entry.port);
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    assert!(
        answer.contains("TRK.MISROUTED") && answer.contains("`elsewhere`"),
        "{answer}"
    );

    // Every project's change feed, through every node: new records'
    // changes arrive as the reference fold has them.
    let mut feeds: Vec<(String, &str, Feed)> = Vec::new();
    for project in &projects {
        for (name, node) in &cluster.nodes {
            let feed = Feed::open(node.port, project, OPERATOR_TOKEN, None);
            feeds.push((project.clone(), *name, feed));
        }
    }
    let mut fresh = Vec::new();
    for (i, project) in projects.iter().enumerate() {
        for n in 0..2 {
            let id = format!("fresh-{i}-{n}");
            fresh.push(event(
                &format!("{id}-a"),
                &id,
                1,
                "2024-06-01T00:00:00Z",
                project,
            ));
            fresh.push(event(
                &format!("{id}-b"),
                &id,
                2,
                "2024-06-01T00:05:00Z",
                project,
            ));
        }
    }
    ingest::publish::publish(&broker.bootstrap(), &topic, &fresh).unwrap();
    let folded = reference::fold_messages(
        fresh
            .iter()
            .map(|(k, v)| (k.as_deref(), Some(v.as_slice()))),
    );
    for (project, name, feed) in &mut feeds {
        let mut want: BTreeMap<&String, Value> = folded
            .iter()
            .filter(|(_, r)| reference::listed_under(r, project))
            .map(|(id, r)| (id, serde_json::to_value(r).unwrap()))
            .collect();
        assert_eq!(want.len(), 2);
        while !want.is_empty() {
            let e = feed
                .next(Duration::from_secs(60))
                .unwrap_or_else(|| panic!("{name}'s feed of {project} still lacks {want:?}"));
            let r = &e.data["replication_record"];
            if let Some(id) = r["id"].as_str() {
                if want.get(&id.to_owned()) == Some(r) {
                    want.remove(&id.to_owned());
                }
            }
        }
    }
    drop(feeds);

    // A record moving between projects that different shards own leaves
    // the old one's list and appears in the new one's; a change feed
    // opened through a node that owns neither sees it arrive.
    let (from, to) = projects
        .iter()
        .flat_map(|a| projects.iter().map(move |b| (a, b)))
        .find(|(a, b)| Cluster::shard_of(a) != Cluster::shard_of(b))
        .unwrap();
    let watcher = NODES
        .iter()
        .map(|n| n.0)
        .find(|n| *n != Cluster::shard_of(to))
        .unwrap();
    let first = event("mover-1", "mover", 1, "2024-05-01T00:00:00Z", from);
    ingest::publish::publish(&broker.bootstrap(), &topic, &[first]).unwrap();
    wait_until("the mover listed", WAIT, || {
        listed(cluster.node("f2"), from, "mover")
    });
    let mut feed = Feed::open(cluster.node(watcher).port, to, OPERATOR_TOKEN, None);
    let mut left = Feed::open(cluster.node(watcher).port, from, OPERATOR_TOKEN, None);
    let moved = event("mover-2", "mover", 2, "2024-05-01T01:00:00Z", to);
    ingest::publish::publish(&broker.bootstrap(), &topic, &[moved]).unwrap();
    wait_until("the mover moved", WAIT, || {
        listed(cluster.node("s1"), to, "mover") && !listed(cluster.node("s3"), from, "mover")
    });
    let seen = std::iter::from_fn(|| feed.next(Duration::from_secs(30)))
        .find(|e| e.data.to_string().contains("\"mover\""));
    assert!(
        seen.is_some(),
        "the feed through {watcher} never showed the move"
    );
    let gone = std::iter::from_fn(|| left.next(Duration::from_secs(30)))
        .find(|e| e.event == "removed" && e.data["id"] == "mover");
    assert!(
        gone.is_some(),
        "the old project's feed never said the mover left"
    );
    // `tracker verify --cluster`: the single node's store (stopped) against
    // the running cluster, project by project — equal, then one event
    // later (the single node no longer reads) different, naming the project.
    let mut single = single;
    single.stop();
    let verify = |url: &str| {
        std::process::Command::new(tracker_bin())
            .args(["verify", "--data-dir", &single.data.display().to_string()])
            .args(["--cluster", url, "--token", OPERATOR_TOKEN])
            .output()
            .unwrap()
    };
    let url = format!("http://127.0.0.1:{}", cluster.node("f1").port);
    let out = verify(&url);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("EQUAL"), "{said}");
    let late = event("late-1", "late", 1, "2024-05-02T00:00:00Z", from);
    ingest::publish::publish(&broker.bootstrap(), &topic, &[late]).unwrap();
    wait_until("the late record listed", WAIT, || {
        listed(cluster.node("f1"), from, "late")
    });
    let out = verify(&url);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains(&format!("differs: project {from}")), "{said}");
    // A change feed read through a node that forwards it ends when that
    // node stops: the stop is not held up by the stream.
    let mut through = Feed::open(cluster.node("f2").port, to, OPERATOR_TOKEN, None);
    let stopped_in = cluster.node_mut("f2").stop_with("-TERM");
    assert!(stopped_in < Duration::from_secs(8), "{stopped_in:?}");
    assert!(through.next(Duration::from_secs(5)).is_none());
    cluster.node_mut("f2").restart();
    wait_until("f2 ready again", WAIT, || {
        cluster.node("f2").get("/health/ready", None).0 == 200
    });
    // A fold worker says how many changelog messages it has published.
    let published = |n: &str| cluster.node(n).digest()["changelog_published"].clone();
    assert!(published("f1").as_u64().unwrap() > 0);
    assert_eq!(published("s1"), Value::Null);
    // `/v1/admin/cluster` lists every node, ready, with its partitions.
    let (s, b) = cluster
        .node("s3")
        .get("/v1/admin/cluster", Some(OPERATOR_TOKEN));
    assert_eq!(s, 200, "{b}");
    let nodes = b["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), NODES.len());
    for n in nodes {
        assert_eq!(n["ready"], true, "{n}");
        assert_eq!(n["lag"], 0, "{n}");
    }
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn a_killed_fold_worker_and_shard_lose_nothing_and_only_their_projects_wait() {
    let broker = Broker::start();
    let topic = broker.create_topic(6);
    let changelog = format!("{topic}-changelog");
    broker.create_named_topic(&changelog, CHANGELOG_PARTITIONS);
    let stream = Stream::sample(400, 33);
    let half = stream.messages.len() / 2;
    stream.publish(&broker, &topic, 0..half);
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(&broker, &topic, &changelog, dir.path());
    let projects: Vec<String> = (0..4).map(sample::project_id).collect();
    let victim = Cluster::shard_of(&projects[0]);
    // Every shard caught up once (before it, a shard's own projects wait
    // for it: not what this test is about).
    for name in NODES.iter().filter(|n| n.1 == "shard").map(|n| n.0) {
        wait_until(&format!("{name} caught up"), WAIT, || {
            cluster.node(name).get("/health/ready", None).1["caught_up_once"] == true
        });
    }
    // Mid-stream: the rest published while f1 and the shard die.
    let (b, t, rest) = (
        broker.bootstrap(),
        topic.clone(),
        stream.messages[half..].to_vec(),
    );
    let publisher = std::thread::spawn(move || {
        for chunk in rest.chunks(20) {
            ingest::publish::publish(&b, &t, chunk).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !publisher.is_finished(),
        "the stream ended before the kills"
    );
    cluster.node_mut("f1").kill();
    cluster.node_mut(victim).kill();
    let entry = cluster.node("f2").port;
    let path = |p: &str| format!("/v1/{p}/replication_records?limit=5");
    let (s, retry, body) =
        get_with_header(entry, &path(&projects[0]), OPERATOR_TOKEN, "retry-after");
    assert_eq!(s, 503, "{body}");
    assert!(retry.is_some(), "no Retry-After");
    assert_eq!(body["error_code"], "TRK.NODE_UNAVAILABLE");
    assert!(
        body["error_msg"].as_str().unwrap().contains(victim),
        "{body}"
    );
    for p in projects.iter().filter(|p| Cluster::shard_of(p) != victim) {
        let answer = http_get(entry, &path(p), Some(OPERATOR_TOKEN));
        assert_eq!(answer.0, 200, "{p}: {}", answer.1);
    }
    // A record whose events f1 folds: its trail is f1's, and waits for it.
    let folded_by_f1 = stream
        .events
        .iter()
        .map(|e| &e.record_id)
        .find(|id| partition(id.as_bytes(), 6) < 3)
        .unwrap();
    let trail = format!(
        "/v1/{}/replication_records/{folded_by_f1}/events",
        projects[0]
    );
    let (s, retry, body) = get_with_header(entry, &trail, OPERATOR_TOKEN, "retry-after");
    assert_eq!((s, retry.is_some()), (503, true), "{body}");
    assert!(
        body["error_msg"].as_str().unwrap().contains("`f1`"),
        "{body}"
    );
    // A shard with a replica: its projects are answered by the replica.
    let replicated = projects
        .iter()
        .find(|p| Cluster::shard_of(p) == "s1")
        .expect("a project s1 (and its replica s1b) owns");
    cluster.node_mut("s1").kill();
    let (s, by, body) = get_with_header(entry, &path(replicated), OPERATOR_TOKEN, "x-tracker-node");
    assert_eq!((s, by.as_deref()), (200, Some("s1b")), "{body}");
    publisher.join().unwrap();
    for n in ["f1", victim, "s1"] {
        cluster.node_mut(n).restart();
    }
    let (_, want) = reference_listings(&stream.reference());
    cluster.wait_listings(&want);
    // Nothing folded twice: the fold workers consumed each message once,
    // whatever their restart redid (and published again).
    let folded = consumed(&cluster.node("f1").digest()) + consumed(&cluster.node("f2").digest());
    assert_eq!(folded, stream.messages.len() as u64);

    // An owner that accepts but does not answer (stopped): a 503 naming
    // it within the request's time, not the entry's own timeout.
    cluster.node(victim).signal("-STOP");
    let started = std::time::Instant::now();
    let (s, _, body) = get_with_header(entry, &path(&projects[0]), OPERATOR_TOKEN, "retry-after");
    cluster.node(victim).signal("-CONT");
    assert_eq!(s, 503, "{body}");
    let said = body["error_msg"].as_str().unwrap();
    assert!(
        said.contains(victim) && said.contains("no answer within"),
        "{said}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // A partition moved from f1 to f2 in every node's map: f1 goes on with
    // the rest (ready: the one it gave up is no gap of its), f2 folds it
    // from the topic's start and publishes its records again — versions
    // the shards have, so the listings stay as they were.
    for n in ["f1", "f2"] {
        cluster.node_mut(n).stop();
    }
    let config = dir.path().join("cluster.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let moved = text
        .replace("partitions = [0, 1, 2]", "partitions = [0, 1]")
        .replace("partitions = [3, 4, 5]", "partitions = [2, 3, 4, 5]");
    assert_ne!(moved, text);
    std::fs::write(&config, moved).unwrap();
    for n in ["f1", "f2"] {
        cluster.node_mut(n).restart();
    }
    for n in ["f1", "f2"] {
        wait_until(&format!("{n} ready"), WAIT, || {
            cluster.node(n).get("/health/ready", None).0 == 200
        });
    }
    let (_, ready) = cluster.node("f1").get("/health/ready", None);
    assert!(ready.get("gaps").is_none(), "{ready}");
    cluster.wait_listings(&want);
}
