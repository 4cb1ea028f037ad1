//! `--cluster` (issue 26): what each role of a cluster costs, in-process and
//! side by side on the same dataset — a single node applying every event;
//! two fold workers each applying half the events partitions while
//! encoding their batches' changelog messages (what they publish: counted,
//! with their bytes); three listing shards each applying its changelog
//! partition. Kafka itself is not in it (its throughput is the cluster's
//! shared part: docs/scaling.md does the arithmetic with these numbers).

use super::*;
use common::cluster::changelog::Outgoing;
use common::cluster::partition;
use common::store::listing::Listing;
use process::free_port;

const SHARDS: u32 = 3;

pub fn run(a: &Args) -> anyhow::Result<()> {
    let messages = dataset(a);
    let events = messages.len() as f64;
    // One node, the reference.
    let single_dir = a.work_dir.join("single");
    let single = Store::open(&single_dir, a.cache_mb << 20)?;
    let secs = writepath::apply_all(&single, &messages, a.batch)?;
    single.close()?;
    println!(
        "single node: {:.0} events/s ({} messages in {secs:.1} s), {} records, disk {:.0} MiB",
        events / secs,
        messages.len(),
        single.totals().records,
        dir_bytes(&single_dir)? as f64 / 1048576.0
    );
    let want = single.view().project_digests()?;
    drop(single);

    // A fold worker over every partition: the single node's job plus its
    // changelog messages, encoded — what publishing costs a writer.
    let dir = a.work_dir.join("fold-all");
    let store = Store::open(&dir, a.cache_mb << 20)?;
    let t = Instant::now();
    let mut encoded = 0u64;
    let mut count = |cs: &[Outgoing]| {
        encoded += cs.iter().map(|c| c.value.len() as u64).sum::<u64>();
        Ok(())
    };
    for chunk in messages.chunks(a.batch) {
        store.apply_batch_publishing(chunk, Some(&mut count))?;
    }
    store.flush()?;
    let secs = t.elapsed().as_secs_f64();
    store.close()?;
    drop(store);
    println!(
        "fold worker, every partition: {:.0} events/s ({} messages in {secs:.1} s; {:.0} MiB of changelog encoded)",
        events / secs,
        messages.len(),
        encoded as f64 / 1048576.0
    );
    std::fs::remove_dir_all(&dir)?;

    // Two fold workers: partitions 0-2 and 3-5 of the events.
    let mut changelog: Vec<Vec<Message>> = vec![Vec::new(); SHARDS as usize];
    let (mut published, mut bytes) = (0u64, 0u64);
    for (worker, parts) in [(0, 0..3), (1, 3..6)] {
        let mine: Vec<Message> = messages
            .iter()
            .filter(|m| parts.contains(&m.partition))
            .cloned()
            .collect();
        let dir = a.work_dir.join(format!("fold-{worker}"));
        let store = Store::open(&dir, a.cache_mb << 20)?;
        let t = Instant::now();
        let mut publish = |cs: &[Outgoing]| {
            for c in cs {
                let p = partition(c.project.as_bytes(), SHARDS) as usize;
                let value = c.value.clone();
                bytes += value.len() as u64;
                published += 1;
                let offset = changelog[p].len() as i64;
                changelog[p].push(Message {
                    topic: "changelog".into(),
                    partition: p as i32,
                    offset,
                    key: Some(c.project.clone().into_bytes()),
                    payload: Some(value),
                });
            }
            Ok(())
        };
        for chunk in mine.chunks(a.batch) {
            store.apply_batch_publishing(chunk, Some(&mut publish))?;
        }
        store.flush()?;
        let secs = t.elapsed().as_secs_f64();
        store.close()?;
        println!(
            "fold worker {worker}: {:.0} events/s ({} messages in {secs:.1} s, changelog encoded included), disk {:.0} MiB",
            mine.len() as f64 / secs,
            mine.len(),
            dir_bytes(&dir)? as f64 / 1048576.0
        );
    }
    println!(
        "changelog: {published} messages ({:.3} per event), {:.0} bytes each on average, {:.0} MiB",
        published as f64 / events,
        bytes as f64 / published.max(1) as f64,
        bytes as f64 / 1048576.0
    );

    // Three listing shards, one changelog partition each.
    let mut joined = BTreeMap::new();
    for (p, log) in changelog.iter().enumerate() {
        let dir = a.work_dir.join(format!("shard-{p}"));
        let store = Store::open(&dir, a.cache_mb << 20)?;
        store.bind_listing(&Listing {
            partitions: SHARDS,
            owned: [p as u32].into(),
        })?;
        let secs = writepath::apply_all(&store, log, a.batch)?;
        store.close()?;
        joined.extend(store.view().project_digests()?);
        println!(
            "listing shard {p}: {:.0} changelog messages/s ({} in {secs:.1} s), {} records, disk {:.0} MiB",
            log.len() as f64 / secs,
            log.len(),
            store.totals().records,
            dir_bytes(&dir)? as f64 / 1048576.0
        );
    }
    anyhow::ensure!(
        joined == want,
        "the shards' per-project digests differ from the single node's"
    );
    println!("the shards' per-project digests joined equal the single node's");
    forwarding(a)
}

/// The stores just built, each served by a real `tracker run` with its
/// role (no broker: a dead address, and no start-up grace, so each serves
/// its store as it is): the same list pages asked of the shard that owns
/// their project, and of a fold worker that forwards them to it — what
/// the one hop costs — with 1 and 16 connections.
fn forwarding(a: &Args) -> anyhow::Result<()> {
    let token = "bench-operator-token";
    let ports: Vec<u16> = (0..5).map(|_| free_port()).collect::<Result<_, _>>()?;
    let node = |i: usize, name: &str, partitions: &str, list: &str| {
        format!(
            "\n[[cluster.{list}]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:{}\"\npartitions = {partitions}\n",
            ports[i]
        )
    };
    let cfg = a.work_dir.join("cluster.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[tokens]]\nname = \"bench\"\nsha256 = \"{}\"\nprojects = [\"*\"]\n\n[cluster]\nevents_partitions = 6\nchangelog_topic = \"changelog\"\nchangelog_partitions = {SHARDS}\n{}{}{}{}{}",
            hex::encode(query::hash_token(token)),
            node(0, "fold-0", "[0, 1, 2]", "folds"),
            node(1, "fold-1", "[3, 4, 5]", "folds"),
            node(2, "shard-0", "[0]", "shards"),
            node(3, "shard-1", "[1]", "shards"),
            node(4, "shard-2", "[2]", "shards"),
        ),
    )?;
    let cache = a.cache_mb.to_string();
    let mut children = Vec::new();
    for (i, (role, name, topic)) in [
        ("fold", "fold-0", "bench"),
        ("fold", "fold-1", "bench"),
        ("shard", "shard-0", "changelog"),
        ("shard", "shard-1", "changelog"),
        ("shard", "shard-2", "changelog"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = a.work_dir.join(name).display().to_string();
        let listen = format!("127.0.0.1:{}", ports[i]);
        let child = Command::new(&a.tracker)
            .args([
                "--config",
                &cfg.display().to_string(),
                "run",
                "--role",
                role,
            ])
            .args(["--node", name, "--brokers", "127.0.0.1:9", "--topic", topic])
            .args([
                "--data-dir",
                &dir,
                "--listen",
                &listen,
                "--cache-mb",
                &cache,
            ])
            .args(["--startup-grace-secs", "0"])
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        children.push(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", ports[i])).is_err() {
            if start.elapsed() > Duration::from_secs(60) {
                bail!("{name} did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let result = (|| -> anyhow::Result<()> {
        // The projects shard-1 owns (its port: 3), first page of each.
        let projects: Vec<String> = (0..PROJECTS)
            .map(sample::project_id)
            .filter(|p| partition(p.as_bytes(), SHARDS) == 1)
            .collect();
        anyhow::ensure!(!projects.is_empty(), "no project on shard-1");
        let paths: Vec<String> = (0..2000)
            .map(|i| {
                let p = &projects[i % projects.len()];
                format!("/v1/{p}/replication_records?limit=100")
            })
            .collect();
        for (port, what) in [
            (ports[3], "the owner"),
            (ports[0], "a fold worker, forwarded"),
        ] {
            let _ = http::load(port, token, 1, &paths[..100]); // warm-up
            for clients in [1, 16] {
                let (mut lat, wall, errors) = http::load(port, token, clients, &paths);
                let s = summarize(&mut lat, wall);
                println!(
                    "list page (limit 100) asked of {what}, {clients} connections: p50 {:.2} ms, p99 {:.2} ms, {:.0} req/s, {errors} errors",
                    s.p50_ms, s.p99_ms, s.per_sec
                );
            }
        }
        Ok(())
    })();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    result
}
