//! The processes a run starts beside itself: the release `tracker` (for the
//! HTTP runs), tansu (for the end-to-end drain), the files they leave (disk
//! use, and reading a store back into the page cache), plus the drain of
//! the stream through the real broker.

use super::*;
use crate::counters::cpu_secs;
use common::testkit::tansu::Tansu;

/// `per_file` summed over every file under `dir`, however deep.
fn sum_files(dir: &Path, per_file: &dyn Fn(&Path) -> std::io::Result<u64>) -> std::io::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let path = e?.path();
        n += if path.is_dir() {
            sum_files(&path, per_file)?
        } else {
            per_file(&path)?
        };
    }
    Ok(n)
}

pub fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    sum_files(dir, &|p| Ok(std::fs::metadata(p)?.len()))
}

/// Reads every file under `dir` once (into the OS page cache); returns the
/// bytes read.
pub fn read_through(dir: &Path) -> std::io::Result<u64> {
    sum_files(dir, &|p| {
        std::io::copy(&mut std::fs::File::open(p)?, &mut std::io::sink())
    })
}

pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the tracker binary with `args` and an operator token, and waits
/// until it listens on `port`.
pub fn spawn_tracker(a: &Args, args: &[&str], port: u16) -> anyhow::Result<Child> {
    let cfg = a.work_dir.join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[tokens]]\nname = \"bench\"\nsha256 = \"{}\"\nprojects = [\"*\"]\n",
            hex::encode(query::hash_token("bench-operator-token"))
        ),
    )?;
    let child = Command::new(&a.tracker)
        .arg("--config")
        .arg(&cfg)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()?;
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            bail!("the tracker did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(child)
}

/// Starts tansu (sqlite engine) on a free loopback port and creates `topic`
/// with 3 partitions; returns the broker (stopped when dropped) and its
/// bootstrap address.
pub fn start_tansu(a: &Args, topic: &str) -> anyhow::Result<(Tansu, String)> {
    std::env::var("TANSU_BIN").context("TANSU_BIN is not set: run scripts/bench")?;
    let dir = a.work_dir.join(format!("tansu-{topic}"));
    std::fs::create_dir_all(&dir)?;
    let broker = Tansu::start(&dir)?;
    broker.create_topic(topic, 3)?;
    let bootstrap = broker.bootstrap();
    Ok((broker, bootstrap))
}

/// Publishes `messages` to a fresh topic on a tansu broker, then measures how
/// fast a bare consumer drains it and how fast the ingest worker applies it,
/// and prints the CPU each drain took from this process and from tansu.
pub fn through_broker(a: &Args, messages: &[Message]) -> anyhow::Result<(f64, f64)> {
    let topic = "bench-events";
    let (broker, brokers) = start_tansu(a, topic)?;
    let result = (|| -> anyhow::Result<(f64, f64)> {
        let payloads: Vec<(Option<Vec<u8>>, Vec<u8>)> = messages
            .iter()
            .map(|m| (m.key.clone(), m.payload.clone().unwrap_or_default()))
            .collect();
        let t = Instant::now();
        ingest::publish::publish(&brokers, topic, &payloads)?;
        println!(
            "published {} messages to tansu in {:.1?}",
            payloads.len(),
            t.elapsed()
        );

        // Bare consumer: assign every partition from the start, count, discard.
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "bench-bare")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..3 {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
        consumer.assign(&tpl)?;
        let tansu_pid = broker.pid().map(|p| p.to_string());
        let cpu = || (cpu_secs("self"), tansu_pid.as_deref().map_or(0.0, cpu_secs));
        let used = |what: &str, wall: f64, (s0, t0): (f64, f64)| {
            let (s1, t1) = cpu();
            println!(
                "{what}: {wall:.1} s; CPU: this process {:.1} s, tansu {:.1} s, of {:.1} on 2 cores",
                s1 - s0,
                t1 - t0,
                2.0 * wall
            );
        };
        let (t, before) = (Instant::now(), cpu());
        let mut seen = 0;
        while seen < payloads.len() {
            if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                seen += 1;
            }
            if t.elapsed() > Duration::from_secs(600) {
                bail!("bare consumer stalled at {seen}");
            }
        }
        let bare = seen as f64 / t.elapsed().as_secs_f64();
        used("bare consumer drain", t.elapsed().as_secs_f64(), before);
        drop(consumer);

        // The ingest worker, into a fresh store, until the high watermarks.
        let store = Arc::new(Store::open(
            &a.work_dir.join("e2e-store"),
            a.cache_mb << 20,
        )?);
        let progress = Arc::new(IngestProgress::new(topic));
        let worker = ingest::Worker::new(
            ingest::IngestConfig::new(&brokers, topic),
            store.clone(),
            progress,
        )?;
        let (t, before) = (Instant::now(), cpu());
        worker.run_to_end(&CancellationToken::new(), &mut |_| {})?;
        let ingest = payloads.len() as f64 / t.elapsed().as_secs_f64();
        used("ingest worker drain", t.elapsed().as_secs_f64(), before);
        let totals = store.totals();
        if (totals.applied + totals.duplicates + totals.quarantined) as usize != payloads.len() {
            bail!(
                "ingest consumed {totals:?}, expected {} messages",
                payloads.len()
            );
        }
        Ok((bare, ingest))
    })();
    drop(broker);
    result
}
