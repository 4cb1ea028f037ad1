//! Background work yields the CPU to queries. Ingest and the store's flushes
//! and merges run at a higher nice value than the threads that answer
//! requests, so on a busy machine a dashboard's page is not queued behind a
//! merge: the scheduler gives the background what the queries leave (as
//! RocksDB lowers its compaction threads' CPU priority). Ingest then runs
//! as fast as that allows, never throttled when the queries are idle; its
//! lag is in the metrics.

use std::sync::atomic::{AtomicI32, Ordering};

/// The nice value of background threads unless configured: a tenth of a
/// query thread's CPU share under contention (Linux's weights: 110 against
/// 1024), all of the CPU otherwise.
pub const DEFAULT_BACKGROUND_NICE: i32 = 10;

/// The highest nice value (least CPU under contention).
pub const MAX_NICE: i32 = 19;

static BACKGROUND_NICE: AtomicI32 = AtomicI32::new(DEFAULT_BACKGROUND_NICE);

/// Sets the nice value background threads take (0: the queries' own, no
/// yielding); threads already running take it at their next round of work.
pub fn set_background_nice(nice: i32) {
    BACKGROUND_NICE.store(nice.clamp(0, MAX_NICE), Ordering::Relaxed);
}

/// The nice value background threads take.
pub fn background_nice() -> i32 {
    BACKGROUND_NICE.load(Ordering::Relaxed)
}

/// A background thread's priority, kept at the configured value.
#[derive(Default)]
pub struct Background {
    applied: Option<i32>,
}

impl Background {
    /// Gives the calling thread the configured background nice value, if it
    /// does not have it yet. A refusal is logged once and the thread runs on
    /// at its priority: yielding is a courtesy, not a condition of work.
    pub fn keep(&mut self) {
        let want = background_nice();
        if self.applied == Some(want) {
            return;
        }
        if let Err(e) = set_this_thread(want) {
            if self.applied.is_none() {
                tracing::warn!(error = %e, nice = want, "could not lower a background thread's priority");
            }
        }
        self.applied = Some(want);
    }
}

/// On Linux a nice value is each thread's own: this sets the caller's.
#[cfg(target_os = "linux")]
fn set_this_thread(nice: i32) -> std::io::Result<()> {
    // SAFETY: gettid takes no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority reads only its integer arguments.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice) };
    match r {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Elsewhere the nice value is the process's: background threads are left
/// as they are.
#[cfg(not(target_os = "linux"))]
fn set_this_thread(_nice: i32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The value reaches the calling thread, and only it.
    #[test]
    fn a_background_thread_takes_the_nice_value_and_others_keep_theirs() {
        let nice_of_this = || {
            // SAFETY: as above; getpriority reads only its arguments.
            unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
        };
        let before = nice_of_this();
        let seen = std::thread::spawn(move || {
            let mut b = Background::default();
            b.keep();
            nice_of_this()
        })
        .join()
        .unwrap();
        if before <= background_nice() {
            assert_eq!(seen, background_nice());
        }
        assert_eq!(nice_of_this(), before);
    }
}
