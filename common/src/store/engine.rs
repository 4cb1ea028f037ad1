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

use super::{keys, StoreError};

/// The memtable's bound unless configured, in MiB.
pub const DEFAULT_MEMTABLE_MB: u64 = 64;

/// The engine's settings for the store: point reads are of records; the
/// decoded-block cache is as large as sled's page cache. Unit
/// tests use tiny blocks and memtables, so that small generated worlds
/// still flush after a few batches, span blocks and merge runs.
pub(super) fn config(cache_bytes: u64) -> Config {
    let config = Config {
        bloomed: |k| k.first() == Some(&keys::space::RECORD),
        memtable_bytes: (DEFAULT_MEMTABLE_MB << 20) as usize,
        cache_bytes: cache_bytes as usize,
        ..Config::default()
    };
    if cfg!(test) {
        Config {
            block_bytes: 512,
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
        }
    }
}

/// The last flush or merge that failed, until one succeeds: shared by the
/// maintenance thread and the writer, whose next batch it fails (unwritten).
#[derive(Clone, Default)]
pub(super) struct Health(Arc<Mutex<Option<String>>>);

impl Health {
    pub(super) fn failure(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records a failure (logged once, when it starts) or, with `None`, a
    /// success.
    pub(super) fn set(&self, failure: Option<String>) {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let (None, Some(e)) = (&*f, &failure) {
            tracing::error!(error = %e, "the store's flush or merge failed; batches fail until one succeeds");
        }
        *f = failure;
    }
}

/// The maintenance thread, stopped and joined when dropped.
pub(super) struct Maintenance {
    wake: Sender<()>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Maintenance {
    pub(super) fn start(lsm: Arc<Lsm>, health: Health) -> Maintenance {
        let (wake, woken) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("store-maintenance".into())
            .spawn(move || run(&lsm, &woken, &s, &health))
            .expect("a thread starts");
        Maintenance {
            wake,
            stop,
            thread: Some(thread),
        }
    }

    /// Asks for a flush (and the merges after it).
    pub(super) fn poke(&self) {
        let _ = self.wake.send(());
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.poke();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One round: the flushes due, then merges until none is due or a stop is
/// asked for (a drop waits for the merge under way, not for a cascade).
pub(super) fn round(lsm: &Lsm, stop: &AtomicBool) -> Result<(), String> {
    let work = || -> Result<(), LsmError> {
        while lsm.flush_due() && lsm.flush()? {}
        while !stop.load(Ordering::Acquire) && lsm.merge()? {}
        Ok(())
    };
    // A panic (a broken invariant) is a failure like any other: reported,
    // and the writer's batches fail, rather than a thread that silently
    // stops flushing.
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

fn run(lsm: &Lsm, woken: &Receiver<()>, stop: &AtomicBool, health: &Health) {
    while !stop.load(Ordering::Acquire) {
        let _ = woken.recv_timeout(Duration::from_secs(1));
        if stop.load(Ordering::Acquire) {
            break;
        }
        match round(lsm, stop) {
            Ok(()) => health.set(None),
            Err(e) => {
                health.set(Some(e));
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}
