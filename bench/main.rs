//! The benchmark harness (`scripts/bench`): the tracker against what users
//! would otherwise build — a consumer writing rows into PostgreSQL — on the
//! same data, the same query shapes and the same parameters, in one run.
//!
//! Steps: generate the dataset (fixed seed) → apply it to a tracker store
//! (decode + fold + atomic batch writes) → upsert the reference fold's rows
//! into PostgreSQL, in two schemas (one row per listing — the anchor — and
//! one row per record) → run the query shapes in-process against all three
//! (checking they return the same pages) → serve the store with the real `tracker query` process and
//! load it over HTTP with 1 and 16 clients, reading its RSS → drain a prefix of
//! the stream through the real broker with a bare consumer and with the
//! ingest worker → print one table.

mod alone;
mod cluster;
mod compare;
mod counters;
mod dashboard;
mod export;
mod feed;
mod http;
mod load;
mod pg;
mod pg_same;
mod process;
mod recovery;
mod shapes;
mod stats;
mod writepath;

// The tracker's allocator, so that the in-process apply is measured as
// `tracker` runs it.
#[path = "../src/alloc/mod.rs"]
mod alloc;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use common::progress::IngestProgress;
use common::{sample, Message, Store};
use compare::Compared;
use pg::Schema;
use process::{dir_bytes, through_broker};
use shapes::Params;
use stats::{summarize, Summary};

#[derive(Parser)]
#[command(about = "Tracker vs PostgreSQL benchmark (run it through scripts/bench)")]
struct Args {
    /// Records in the dataset (~4 events each).
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    /// The 10,000-record CI smoke run.
    #[arg(long)]
    smoke: bool,
    #[arg(long, default_value_t = 20260101)]
    seed: u64,
    /// Timed runs per query shape and system.
    #[arg(long, default_value_t = 300)]
    iterations: usize,
    /// Messages drained through the real broker.
    #[arg(long, default_value_t = 200_000)]
    e2e_messages: usize,
    /// Events per tracker batch (one atomic write each).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Rows per PostgreSQL upsert statement.
    #[arg(long, default_value_t = 1_000)]
    pg_batch: usize,
    /// The store's cache budget in MiB for the load and the in-process
    /// queries (split between sled and decoded blocks by the store).
    #[arg(long, default_value_t = common::store::DEFAULT_CACHE_MB)]
    cache_mb: u64,
    /// Scratch directory (scripts/bench makes one).
    #[arg(long)]
    work_dir: PathBuf,
    /// Instead of the comparison: the load test (`--load-clients` connections
    /// for `--load-secs` against `tracker run` during full-speed ingest).
    #[arg(long)]
    load: bool,
    #[arg(long, default_value_t = 64)]
    load_clients: usize,
    #[arg(long, default_value_t = 60)]
    load_secs: u64,
    /// Records published during the load test.
    #[arg(long, default_value_t = 300_000)]
    load_records: usize,
    /// Instead of the comparison: the change feed under full-speed ingest
    /// (the apply rate with no stream and with `--feed-streams` open, and the
    /// delay from commit to client).
    #[arg(long)]
    feed: bool,
    #[arg(long, default_value_t = 100)]
    feed_streams: usize,
    #[arg(long, default_value_t = 3)]
    feed_rounds: usize,
    /// Instead of the comparison: what each role of a cluster costs, in
    /// process (a single node, two fold workers encoding their changelog,
    /// three listing shards applying it).
    #[arg(long)]
    cluster: bool,
    /// Stop after the tracker apply, printing its rate, CPU and sled cache
    /// misses per tenth of the stream (for profiling the write path).
    #[arg(long)]
    apply_only: bool,
    /// Internal: the child process of `--apply-only`'s open after SIGKILL.
    #[arg(long, hide = true)]
    recovery_child: bool,
    /// Instead of the comparison: only the end-to-end run through tansu,
    /// `--e2e-rounds` times, next to the in-process apply of the same messages.
    #[arg(long)]
    e2e_only: bool,
    #[arg(long, default_value_t = 3)]
    e2e_rounds: usize,
    /// After the apply, time the query shapes on the tracker alone, twice over
    /// the same parameters (cold, then warm), without PostgreSQL: for
    /// profiling the read path and finding what its tails are.
    #[arg(long)]
    tracker_only: bool,
    /// Print PostgreSQL's plan of every shape (first parameter set) on both
    /// schemas.
    #[arg(long)]
    explain: bool,
    /// The release `tracker` binary.
    #[arg(long)]
    tracker: PathBuf,
}

struct Row {
    shape: String,
    tracker: String,
    /// PostgreSQL with the listing schema: the anchor.
    postgres: String,
    /// PostgreSQL ÷ tracker (listing schema).
    ratio: String,
    /// PostgreSQL with one row per record (a UNION per list), for reference.
    union: String,
}

impl Row {
    /// A row with nothing to compare on the PostgreSQL side.
    fn tracker_only(shape: String, tracker: String) -> Row {
        Row {
            shape,
            tracker,
            postgres: "-".into(),
            ratio: "-".into(),
            union: "-".into(),
        }
    }
}

/// Projects in the dataset.
const PROJECTS: usize = 20;

/// The dataset (fixed seed): sample events delivered out of order with
/// duplicates, as messages over six partitions in publish order.
fn dataset(a: &Args) -> Vec<Message> {
    let t = Instant::now();
    let mut events = sample::events(&sample::Shape {
        records: a.records,
        projects: PROJECTS,
        regions: 10,
        seed: a.seed,
    });
    events.sort_by_key(|e| e.occurred_at); // publish order: by time, records interleaved
    let delivered = sample::deliver(&events, a.seed);
    let mut next_offset = [0i64; 6];
    let messages: Vec<Message> = delivered
        .iter()
        .map(|e| {
            let partition = (e
                .record_id
                .bytes()
                .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
                % 6) as i32;
            let offset = next_offset[partition as usize];
            next_offset[partition as usize] += 1;
            Message {
                topic: "bench".into(),
                partition,
                offset,
                key: Some(e.record_id.clone().into_bytes()),
                payload: Some(serde_json::to_vec(&e.to_json()).expect("json")),
            }
        })
        .collect();
    drop(delivered);
    let bytes: usize = messages
        .iter()
        .map(|m| m.payload.as_ref().map_or(0, Vec::len))
        .sum();
    println!(
        "dataset: {} records, {} distinct events, {} messages ({} duplicates), {:.0} MiB of JSON, generated in {:.1?}",
        a.records,
        events.len(),
        messages.len(),
        messages.len() - events.len(),
        bytes as f64 / 1048576.0,
        t.elapsed()
    );
    drop(events);
    messages
}

fn main() -> anyhow::Result<()> {
    #[cfg(feature = "alloc-stats")]
    alloc::stats::report_every(Duration::from_secs(5));
    common::telemetry::init().map_err(anyhow::Error::msg)?;
    let mut a = Args::parse();
    if a.smoke {
        a.records = 10_000;
        a.iterations = 30;
        a.e2e_messages = 5_000;
    }
    if a.load {
        return load::run(&a);
    }
    if a.feed {
        return feed::run(&a);
    }
    if a.cluster {
        return cluster::run(&a);
    }
    let conninfo = std::env::var("BENCH_PG").context("BENCH_PG is not set: run scripts/bench")?;
    let mut table: Vec<Row> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    if a.recovery_child {
        return recovery::child(&a, &a.work_dir.join("tracker"));
    }
    let messages = dataset(&a);

    if a.e2e_only {
        return writepath::e2e_only(&a, &messages);
    }

    // ---- apply: tracker ---------------------------------------------------
    let store_dir = a.work_dir.join("tracker");
    let store = Store::open(&store_dir, a.cache_mb << 20)?;
    if a.apply_only {
        writepath::apply_only(&a, &store, &messages)?;
        drop((store, messages));
        return recovery::open_after_kill(&a, &store_dir);
    }
    let apply_secs = writepath::apply_all(&store, &messages, a.batch)?;
    let tracker_eps = messages.len() as f64 / apply_secs;
    let totals = store.totals();
    println!(
        "tracker apply: {:.0} events/s ({} msgs in {apply_secs:.1} s); records {}",
        tracker_eps,
        messages.len(),
        totals.records
    );

    let mut states: Vec<(String, common::RecordState)> = Vec::with_capacity(a.records);
    for r in store.view().records() {
        states.push(r?);
    }
    let mut status_mix: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, s) in &states {
        *status_mix.entry(s.status().as_str()).or_default() += 1;
    }
    println!("status mix: {status_mix:?}");

    // ---- queries, in-process ---------------------------------------------
    // Deep offsets scale with the dataset (see shapes.rs).
    let depth = a.records as f64 / 1_000_000.0;
    let mut rng = sample::Rng::new(a.seed ^ 0x5eed);
    // Drawn from records that carry every value a shape filters on: a record
    // still waiting for its destination region would make Q3 send an empty
    // `destination_region=`, which the API rightly rejects with a 400.
    let complete = |s: &common::RecordState| {
        use common::record::Field;
        [
            Field::SourceProjectId,
            Field::SourceRegion,
            Field::DestinationRegion,
            Field::SourceCheckpointItemId,
        ]
        .into_iter()
        .all(|f| s.get(f).is_some())
    };
    let mut params: Vec<Params> = Vec::with_capacity(a.iterations);
    while params.len() < a.iterations {
        let s = &states[rng.below(states.len() as u64) as usize].1;
        if complete(s) {
            params.push(Params::from_record(s, depth));
        }
    }
    drop(states);
    if a.tracker_only {
        return alone::tracker_only(&store, &params, depth);
    }

    // ---- apply: PostgreSQL, both schemas (see pg::load_both) ----------------
    let mut pgc = pg::connect(&conninfo)?;
    let same = pg_same::apply(&mut pgc, &messages, a.batch)?;
    let pg_eps = pg::load_both(&mut pgc, &messages, a.batch, a.pg_batch)?;
    let (listing_eps, union_eps) = (pg_eps[0], pg_eps[1]);
    table.push(Row {
        shape: format!(
            "apply, events/s, the same job: from the raw messages, decode, fold, the events with their coordinates, the listing, the offsets ({}-event batches, one transaction each)",
            a.batch
        ),
        tracker: format!("{tracker_eps:.0}"),
        postgres: format!("{:.0}", same.events_per_sec),
        ratio: format!("{:.2}x", tracker_eps / same.events_per_sec),
        union: "-".into(),
    });
    table.push(Row {
        shape: format!(
            "apply, events/s, PostgreSQL timed from prebuilt rows only (no decode, fold or events; each touched record written once per {}-event batch)",
            a.batch
        ),
        tracker: format!("{tracker_eps:.0}"),
        postgres: format!("{listing_eps:.0}"),
        ratio: format!("{:.2}x", tracker_eps / listing_eps),
        union: format!("{union_eps:.0}"),
    });

    let Compared { mismatches, hollow } =
        compare::shapes(&a, &store, &store_dir, &mut pgc, &params, depth, &mut table)?;
    let (timings, dashboard) = dashboard::run(&store, &params, depth)?;
    for (name, s) in timings {
        table.push(Row::tracker_only(
            format!("{name}, in-process: p50 / p99 ms"),
            format!("{:.3} / {:.3}", s.p50_ms, s.p99_ms),
        ));
    }
    let (project, listed) = export::largest_project(&store, PROJECTS)?;
    let (pg_rows, pg_secs) = export::postgres(&mut pgc, &project)?;
    for e in export::tracker(&store, &project)? {
        if e.records != listed || pg_rows != listed {
            notes.push(format!(
                "the export ({}) wrote {} records and PostgreSQL's COPY {pg_rows}, of {listed} listed",
                e.format, e.records
            ));
        }
        table.push(Row {
            shape: format!(
                "export of the largest project ({listed} records), {}{}, in-process: records/s (PostgreSQL: COPY … TO STDOUT csv, the same rows in the list's order); RSS growth {:.1} MiB, {:.2} CPU s, {:.0} MiB written",
                e.format,
                if e.again { ", again" } else { "" },
                e.rss_growth as f64 / 1048576.0,
                e.cpu,
                e.bytes as f64 / 1048576.0
            ),
            tracker: format!("{:.0}", e.per_sec()),
            postgres: format!("{:.0}", pg_rows as f64 / pg_secs),
            ratio: format!("{:.2}x", e.per_sec() / (pg_rows as f64 / pg_secs)),
            union: "-".into(),
        });
    }
    if mismatches > 0 {
        notes.push(format!(
            "{mismatches} query results differed between the tracker and PostgreSQL"
        ));
    }
    println!("result check: {mismatches} mismatching pages between tracker and PostgreSQL");
    let pg_bytes = pg::table_bytes(&mut pgc, Schema::Listing)?;
    let union_bytes = pg::table_bytes(&mut pgc, Schema::Records)?;
    drop(pgc);
    drop(store);
    let tracker_bytes = dir_bytes(&store_dir)?;

    // ---- HTTP, through the real tracker process ----------------------------
    table.extend(http::runs(&a, &store_dir, &params, &dashboard, &mut notes)?);
    table.push(Row {
        shape: "disk after loading, MiB".into(),
        tracker: format!("{:.0}", tracker_bytes as f64 / 1048576.0),
        postgres: format!("{:.0}", pg_bytes as f64 / 1048576.0),
        ratio: format!("{:.2}x", tracker_bytes as f64 / pg_bytes as f64),
        union: format!("{:.0}", union_bytes as f64 / 1048576.0),
    });
    table.push(Row {
        shape: "disk after loading, MiB, the same job (PostgreSQL: listing and events tables, indexes included)".into(),
        tracker: format!("{:.0}", tracker_bytes as f64 / 1048576.0),
        postgres: format!("{:.0}", same.bytes as f64 / 1048576.0),
        ratio: format!("{:.2}x", tracker_bytes as f64 / same.bytes as f64),
        union: "-".into(),
    });

    // ---- end to end through the real broker --------------------------------
    let n = a.e2e_messages.min(messages.len());
    let (bare, ingest) = through_broker(&a, &messages[..n])?;
    table.push(Row {
        shape: format!(
            "end to end through tansu, {n} msgs: msgs/s (bare consumer drain in the PG column)"
        ),
        tracker: format!("{ingest:.0}"),
        postgres: format!("{bare:.0}"),
        ratio: format!("{:.0} % of bare", 100.0 * ingest / bare),
        union: "-".into(),
    });

    // ---- the table ----------------------------------------------------------
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n| shape | tracker | PostgreSQL, listing table | PG listing ÷ tracker | PostgreSQL, one row per record (UNION) |\n|---|---|---|---|---|"
    );
    for r in &table {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            r.shape, r.tracker, r.postgres, r.ratio, r.union
        );
    }
    println!("{out}");
    for schema in [Schema::Listing, Schema::Records] {
        println!(
            "PostgreSQL indexes ({}): {}",
            schema.table(),
            schema
                .indexes()
                .iter()
                .map(|(n, c)| format!("{n} {c}"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    for n in &notes {
        println!("NOTE: {n}");
    }
    if mismatches > 0 {
        bail!("the tracker and PostgreSQL disagreed on {mismatches} pages");
    }
    if !hollow.is_empty() {
        bail!(
            "shapes {} compared no full page (or, sorting on a nullable field, no null): resize the dataset or the shapes",
            hollow.join(", ")
        );
    }
    Ok(())
}
