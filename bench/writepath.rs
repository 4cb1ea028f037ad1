//! Profiles of the write path: what bounds the in-process apply rate as the
//! store grows (`--apply-only`), and how much of the end-to-end rate is the
//! apply itself (`--e2e-only`).

use std::time::Instant;

use common::store::{Step, StepTimes};
use common::{Message, Store};

use crate::counters::counters;
use crate::process::through_broker;
use crate::Args;

/// Applies `messages` in batches of `batch`, flushes, and returns the seconds
/// it took.
pub fn apply_all(store: &Store, messages: &[Message], batch: usize) -> anyhow::Result<f64> {
    let t = Instant::now();
    for chunk in messages.chunks(batch) {
        store.apply_batch(chunk)?;
    }
    store.flush()?;
    Ok(t.elapsed().as_secs_f64())
}

/// Applies `messages` in batches of `a.batch`, then prints the rate, and for
/// each tenth of the stream: its rate, CPU per wall second, read syscalls
/// and MiB read per batch (sled cache misses) and from the device, MiB
/// written per batch, and the time per event in each step of the write
/// path (the writer's and the maintenance threads').
pub fn apply_only(a: &Args, store: &Store, messages: &[Message]) -> anyhow::Result<()> {
    // Whole batches per tenth, so the batches are the full run's.
    let tenth = messages.len().div_ceil(10).div_ceil(a.batch).max(1) * a.batch;
    let t = Instant::now();
    // The longest single batch: a writer that waits on a flush or merge;
    // and where its time went.
    let mut longest = (0.0f64, 0usize, StepTimes::default());
    // The process holds the dataset already: what the store adds is above
    // it. The allocator first returns what generating the dataset freed,
    // so the baseline is the dataset, not the garbage of making it.
    release_free_memory();
    let (dataset, _) = crate::counters::rss_of(std::process::id())?;
    let mut peak = dataset;
    for (i, part) in messages.chunks(tenth).enumerate() {
        let (start, before, steps) = (Instant::now(), counters(), store.step_times());
        let mut batches = 0;
        for chunk in part.chunks(a.batch) {
            let (b, at_start) = (Instant::now(), store.step_times());
            store.apply_batch(chunk)?;
            let took = b.elapsed().as_secs_f64();
            // After every batch: /proc/self/status is a few microseconds.
            peak = peak.max(crate::counters::rss_of(std::process::id())?.0);
            if took > longest.0 {
                longest = (took, i + 1, store.step_times().since(&at_start));
            }
            batches += 1;
        }
        let (secs, after) = (start.elapsed().as_secs_f64(), counters());
        let per_batch = |d: u64| d as f64 / batches as f64;
        let (rss, _) = crate::counters::rss_of(std::process::id())?;
        println!(
            "tenth {}: {:.0} events/s, RSS {} MiB, cpu {:.2} s per s, {:.0} read calls and {:.1} MiB read per batch, {:.1} MiB from the device, {:.1} MiB written per batch",
            i + 1,
            part.len() as f64 / secs,
            rss >> 20,
            (after.cpu_secs - before.cpu_secs) / secs,
            per_batch(after.read_calls - before.read_calls),
            per_batch(after.read_chars - before.read_chars) / 1048576.0,
            (after.device_reads - before.device_reads) as f64 / 1048576.0,
            per_batch(after.written - before.written) / 1048576.0,
        );
        println!(
            "  {}",
            per_step(&store.step_times().since(&steps), part.len())
        );
    }
    store.flush()?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "tracker apply: {:.0} events/s ({} msgs in {secs:.1} s, cache {} MiB)",
        messages.len() as f64 / secs,
        messages.len(),
        a.cache_mb
    );
    let ms = |s: Step| longest.2.nanos(s) as f64 / 1e6;
    println!(
        "longest apply_batch: {:.1} ms (tenth {}): {}",
        longest.0 * 1e3,
        longest.1,
        Step::ALL[1..]
            .iter()
            .map(|s| format!("{} {:.1} ms", s.name(), ms(*s)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "RSS: {} MiB with the dataset loaded, at most {} MiB after any batch: the store's {} MiB beyond it",
        dataset >> 20,
        peak >> 20,
        peak.saturating_sub(dataset) >> 20
    );
    store.close()?;
    Ok(())
}

/// Each step's time, in µs per event: the writer's steps, what else the
/// writer did in its batches, and the maintenance threads' flushes and
/// merges.
fn per_step(t: &StepTimes, events: usize) -> String {
    let us = |nanos: u64| nanos as f64 / 1e3 / events.max(1) as f64;
    let mut parts: Vec<String> = Step::ALL
        .iter()
        .map(|s| format!("{} {:.2}", s.name(), us(t.nanos(*s))))
        .collect();
    parts.insert(1, format!("(other {:.2})", us(t.other())));
    format!("µs per event: {}", parts.join(", "))
}

/// Asks mimalloc to return the memory it holds free to the system.
fn release_free_memory() {
    #[cfg(not(feature = "system-alloc"))]
    {
        extern "C" {
            fn mi_collect(force: bool);
        }
        // SAFETY: mi_collect takes no pointers; mimalloc is the allocator
        // linked into this binary (src/alloc).
        unsafe { mi_collect(true) };
    }
}

/// The end-to-end run alone, `a.e2e_rounds` times: the bare consumer's
/// drain, the ingest worker's, and the in-process apply of the same
/// messages in the worker's batch size, so the gap between the worker and
/// the consumer splits into the apply and the rest.
pub fn e2e_only(a: &Args, messages: &[Message]) -> anyhow::Result<()> {
    let n = a.e2e_messages.min(messages.len());
    let batch = ingest::IngestConfig::new("", "").max_batch;
    for round in 1..=a.e2e_rounds {
        let dir = a.work_dir.join("e2e-apply");
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir, a.cache_mb << 20)?;
        let apply = n as f64 / apply_all(&store, &messages[..n], batch)?;
        drop(store);
        std::fs::remove_dir_all(&dir)?;
        // A fresh broker and store each round.
        let _ = std::fs::remove_dir_all(a.work_dir.join("e2e-store"));
        let _ = std::fs::remove_dir_all(a.work_dir.join("tansu-bench-events"));
        let (bare, worker) = through_broker(a, &messages[..n])?;
        println!(
            "round {round}: {n} msgs, bare consumer {bare:.0} msgs/s, worker {worker:.0} ({:.0} % of bare), in-process apply in batches of {batch} {apply:.0} (worker at {:.0} % of it)",
            100.0 * worker / bare,
            100.0 * worker / apply
        );
    }
    Ok(())
}
