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
    Ok(())
}
