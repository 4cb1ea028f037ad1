//! Open after SIGKILL at a full memtable (issue 36): a child process opens
//! the store the apply left, applies new records until the memtable is one
//! batch short of its bound, and is killed with SIGKILL; the parent then
//! times `Store::open`, sled's own recovery and the memtable derived again
//! from the event log included.

use std::time::Instant;

use anyhow::Context;
use common::{sample, Message, Store};

use crate::Args;

/// Records of the child's stream: far more than one memtable holds.
const CHILD_RECORDS: usize = 200_000;

/// The parent's side: runs the child on the store in `dir` (closed), then
/// times the open and prints it.
pub fn open_after_kill(a: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    let status = std::process::Command::new(exe)
        .arg("--recovery-child")
        .arg("--tracker")
        .arg(&a.tracker)
        .arg("--work-dir")
        .arg(&a.work_dir)
        .arg("--cache-mb")
        .arg(a.cache_mb.to_string())
        .arg("--batch")
        .arg(a.batch.to_string())
        .arg("--seed")
        .arg((a.seed + 1).to_string())
        .env("BENCH_PG", "unused")
        .status()
        .context("the recovery child")?;
    // Killed by the signal it sent itself.
    anyhow::ensure!(
        status.code().is_none(),
        "the recovery child ended on its own: {status}"
    );
    let t = Instant::now();
    let store = Store::open(dir, a.cache_mb << 20)?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "open after SIGKILL at a full memtable: {secs:.2} s ({} events recovered from the event log)",
        store.recovered_at_open()
    );
    Ok(())
}

/// The child's side: fills the memtable to one batch short of its bound,
/// then SIGKILLs itself.
pub fn child(a: &Args, dir: &std::path::Path) -> anyhow::Result<()> {
    let store = Store::open(dir, a.cache_mb << 20)?;
    let events = sample::events(&sample::Shape {
        records: CHILD_RECORDS,
        projects: 20,
        regions: 10,
        seed: a.seed,
    });
    let messages: Vec<Message> = events
        .iter()
        .enumerate()
        .map(|(i, e)| Message {
            topic: "bench-recovery".into(),
            partition: 0,
            offset: i as i64,
            key: Some(e.record_id.clone().into_bytes()),
            payload: Some(serde_json::to_vec(&e.to_json()).expect("json")),
        })
        .collect();
    let bound = store.memtable_bound();
    let mut last_batch = 0;
    let mut applied = 0;
    for chunk in messages.chunks(a.batch) {
        let before = store.memtable_bytes();
        if before + 2 * last_batch >= bound {
            break;
        }
        store.apply_batch(chunk)?;
        last_batch = store.memtable_bytes().saturating_sub(before);
        applied += chunk.len();
    }
    anyhow::ensure!(applied < messages.len(), "the memtable never filled");
    println!(
        "recovery child: {applied} events applied, memtable {} of {} MiB; SIGKILL",
        store.memtable_bytes() >> 20,
        bound >> 20
    );
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    anyhow::bail!("kill -KILL did not end this process: {killed:?}")
}
