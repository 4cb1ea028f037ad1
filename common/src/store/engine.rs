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

/// The maintenance thread, stopped and joined when dropped.
pub(super) struct Maintenance {
    wake: Sender<()>,
    stop: Arc<AtomicBool>,
    failed: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Maintenance {
    pub(super) fn start(lsm: Arc<Lsm>) -> Maintenance {
        let (wake, woken) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(Mutex::new(None));
        let (s, f) = (stop.clone(), failed.clone());
        let thread = std::thread::Builder::new()
            .name("store-maintenance".into())
            .spawn(move || run(&lsm, &woken, &s, &f))
            .expect("a thread starts");
        Maintenance {
            wake,
            stop,
            failed,
            thread: Some(thread),
        }
    }

    /// Asks for a flush (and the merges after it).
    pub(super) fn poke(&self) {
        let _ = self.wake.send(());
    }

    /// The last flush or merge that failed, until one succeeds.
    pub(super) fn failure(&self) -> Option<String> {
        self.failed.lock().expect("maintenance state").clone()
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

fn run(lsm: &Lsm, woken: &Receiver<()>, stop: &AtomicBool, failed: &Mutex<Option<String>>) {
    while !stop.load(Ordering::Acquire) {
        let _ = woken.recv_timeout(Duration::from_secs(1));
        if stop.load(Ordering::Acquire) {
            break;
        }
        let done = (|| -> Result<(), LsmError> {
            while lsm.flush_due() && lsm.flush()? {}
            while lsm.merge()? {}
            Ok(())
        })();
        let mut f = failed.lock().expect("maintenance state");
        match done {
            Ok(()) => *f = None,
            Err(e) => {
                if f.is_none() {
                    tracing::error!(error = %e, "the store's flush or merge failed; batches fail until one succeeds");
                }
                *f = Some(e.to_string());
                drop(f);
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}
