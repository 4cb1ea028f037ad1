//! The store's use of the engine ([`crate::lsm`]): its settings, and the
//! maintenance — flushes of the memtable and merges of runs — that runs on
//! a thread of its own beside ingest (the second core), so a batch does not
//! wait for a flush. Only when the memtable runs past twice its bound does
//! the writer flush itself (backpressure: memory stays bounded when flushes
//! fall behind). A failed flush or merge is reported to the writer, whose
//! batches then fail the way a failed write does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::lsm::{Config, Lsm, LsmError};

use super::steps::{Step, Steps};
use super::{keys, StoreError};

/// The memtable's bound unless configured, in MiB.
pub const DEFAULT_MEMTABLE_MB: u64 = 64;

/// How the store's one cache budget (`--cache-mb`) is shared: a quarter to
/// sled's page cache, three quarters to the engine's decoded blocks. Reads
/// are served from decoded blocks; sled's cache mostly holds the same
/// blocks compressed, and what was written lately. With the budget given
/// whole to each (512 MiB in all at the default), `tracker run` held
/// 1,000–1,050 MiB under load (docs/benchmarks.md, "Store v3 mends").
pub(super) fn split_cache(cache_bytes: u64) -> (u64, u64) {
    let sled = cache_bytes / 4;
    (sled, cache_bytes - sled)
}

/// The engine's settings for the store: point reads are of records; the
/// decoded-block cache is its share of the budget ([`split_cache`]). Unit
/// tests use tiny blocks and memtables, so that small generated worlds
/// still flush after a few batches, span blocks and merge runs.
pub(super) fn config(cache_bytes: u64) -> Config {
    let config = Config {
        bloomed: |k| {
            matches!(
                k.first(),
                Some(&keys::space::RECORD_ID | &keys::space::RECORD)
            )
        },
        memtable_bytes: (DEFAULT_MEMTABLE_MB << 20) as usize,
        cache_bytes: cache_bytes as usize,
        ..Config::default()
    };
    if cfg!(test) {
        Config {
            block_bytes: 512,
            frame_bytes: 128,
            memtable_bytes: 16 << 10,
            merge_width: 2,
            ..config
        }
    } else {
        config
    }
}

impl From<LsmError> for StoreError {
    fn from(e: LsmError) -> StoreError {
        match e {
            LsmError::Sled(e) => StoreError::Sled(e),
            LsmError::Corrupt { key, reason } => StoreError::Corrupt { key, reason },
            LsmError::Stopped => StoreError::Engine("the store is closing".into()),
        }
    }
}

/// The last flush and the last merge that failed, each until one of its
/// kind succeeds: shared by the maintenance threads and the writer, whose
/// next batch a failure fails (unwritten).
#[derive(Clone, Default)]
pub(super) struct Health(Arc<Mutex<[Option<String>; 2]>>);

/// The two kinds of maintenance, each on a thread of its own.
#[derive(Debug, Clone, Copy)]
pub(super) enum Job {
    Flush = 0,
    Merge = 1,
}

impl Health {
    pub(super) fn failure(&self) -> Option<String> {
        let f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.iter().flatten().next().cloned()
    }

    /// Records a failure of `job` (logged once, when it starts) or, with
    /// `None`, a success.
    pub(super) fn set(&self, job: Job, failure: Option<String>) {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut f[job as usize];
        if let (None, Some(e)) = (&*slot, &failure) {
            tracing::error!(error = %e, ?job, "the store's flush or merge failed; batches fail until one succeeds");
        }
        *slot = failure;
    }
}

/// The maintenance threads — one flushes the memtable, one merges runs, so
/// a long merge never holds up a flush (and so ingest) — stopped when
/// dropped: a merge under way is given up, a flush finished.
pub(super) struct Maintenance {
    flush: Sender<()>,
    merge: Sender<()>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Maintenance {
    pub(super) fn start(lsm: Arc<Lsm>, health: Health, steps: Arc<Steps>) -> Maintenance {
        let stop = Arc::new(AtomicBool::new(false));
        let (flush, flushes) = std::sync::mpsc::channel();
        let (merge, merges) = std::sync::mpsc::channel::<()>();
        let spawn = |name: &str, job: Job, woken: Receiver<()>, then: Option<Sender<()>>| {
            let (lsm, stop, health) = (lsm.clone(), stop.clone(), health.clone());
            let steps = steps.clone();
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let jobs = Jobs {
                        lsm: &lsm,
                        stop: &stop,
                        steps: &steps,
                    };
                    run(&jobs, job, &woken, then.as_ref(), &health)
                })
                .expect("a thread starts")
        };
        let threads = vec![
            spawn("store-flush", Job::Flush, flushes, Some(merge.clone())),
            spawn("store-merge", Job::Merge, merges, None),
        ];
        Maintenance {
            flush,
            merge,
            stop,
            threads,
        }
    }

    /// Asks for a flush (and the merges after it).
    pub(super) fn poke(&self) {
        let _ = self.flush.send(());
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.flush.send(());
        let _ = self.merge.send(());
        // A thread stuck in sled (a full disk can block its writers) is
        // left behind rather than holding up the close for ever.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for t in self.threads.drain(..) {
            while !t.is_finished() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                tracing::warn!("a store maintenance thread did not stop within 10 s; left behind");
            }
        }
    }
}

/// `work`, with a panic (a broken invariant) turned into a failure like
/// any other: reported, and the writer's batches fail, rather than a thread
/// that silently stops flushing or a written batch reported as a panic.
pub(super) fn guarded(work: impl FnOnce() -> Result<(), LsmError>) -> Result<(), String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)) {
        Ok(done) => done.map_err(|e| e.to_string()),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!("the flush or merge panicked: {what}"))
        }
    }
}

/// What the jobs work on: the engine, the stop flag and the timers.
struct Jobs<'a> {
    lsm: &'a Lsm,
    stop: &'a AtomicBool,
    steps: &'a Steps,
}

impl Jobs<'_> {
    /// What each kind of job does in a round: the flushes due, or the
    /// merges due until a stop is asked for; timed.
    fn job(&self, job: Job) -> Result<(), String> {
        let (lsm, stop) = (self.lsm, self.stop);
        let start = std::time::Instant::now();
        let done = guarded(|| {
            match job {
                Job::Flush => {
                    while lsm.flush_due() && lsm.flush()? {}
                    while !stop.load(Ordering::Acquire) && lsm.merge_slices() {}
                }
                Job::Merge => while !stop.load(Ordering::Acquire) && lsm.merge_unless(stop)? {},
            }
            Ok(())
        });
        let step = match job {
            Job::Flush => Step::Flush,
            Job::Merge => Step::Merge,
        };
        self.steps.add(step, start);
        done
    }
}

/// One round of both, on the caller's thread (the writer's, in unit
/// tests); the failure of either is recorded.
pub(super) fn round(lsm: &Lsm, health: &Health, steps: &Steps) {
    let never = AtomicBool::new(false);
    let jobs = Jobs {
        lsm,
        stop: &never,
        steps,
    };
    for j in [Job::Flush, Job::Merge] {
        health.set(j, jobs.job(j).err());
    }
}

fn run(
    jobs: &Jobs<'_>,
    kind: Job,
    woken: &Receiver<()>,
    then: Option<&Sender<()>>,
    health: &Health,
) {
    let stop = jobs.stop;
    let mut priority = crate::priority::Background::default();
    while !stop.load(Ordering::Acquire) {
        priority.keep();
        let _ = woken.recv_timeout(Duration::from_secs(1));
        if stop.load(Ordering::Acquire) {
            break;
        }
        let done = jobs.job(kind);
        let failed = done.is_err();
        health.set(kind, done.err());
        if failed {
            std::thread::sleep(Duration::from_millis(500));
        } else if let Some(next) = then {
            let _ = next.send(());
        }
    }
}
