//! Process plumbing: the runtime, signals, random tokens, and how an error
//! reads when it ends a command.

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Store reads run on the blocking pool. Tokio's default of 512 threads lets
/// a burst of requests spawn hundreds, each keeping its own allocator caches;
/// a few threads per core serve a CPU-bound store just as fast.
pub const BLOCKING_THREADS: usize = 16;

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?)
}

/// Runs `fut` to its end on `rt`, then shuts the runtime down without
/// waiting past `bound` for blocking tasks: a worker that never came back
/// from a store write (serve gives up on it after its own bound) must not
/// keep the process alive, and dropping a runtime waits for every blocking
/// task with no limit.
pub fn run_then_leave<T>(
    rt: tokio::runtime::Runtime,
    fut: impl std::future::Future<Output = T>,
    bound: std::time::Duration,
) -> T {
    let out = rt.block_on(fut);
    rt.shutdown_timeout(bound);
    out
}

pub fn new_token() -> String {
    hex::encode(rand::rng().random::<[u8; 24]>())
}

/// A token cancelled by ctrl-c, SIGTERM or SIGHUP (for the synchronous
/// commands).
pub fn shutdown_token() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let rt = runtime()?;
    let t = token.clone();
    std::thread::spawn(move || {
        rt.block_on(async move {
            wait_for_signal().await;
            t.cancel()
        })
    });
    Ok(token)
}

/// Waits for a stop: ctrl-c (SIGINT), SIGTERM, or SIGHUP — which, left to
/// its default, ended the process at once, unflushed (exit 129): a closed
/// terminal or a supervisor's hang-up stops the tracker as SIGTERM does.
pub async fn wait_for_signal() {
    StopSignals::register().recv().await
}

/// The stop signals, handled from the moment this is made (within a
/// runtime): made before the port is bound, so a stop sent to a tracker
/// that already answers is never met by the signal's default action.
pub struct StopSignals {
    #[cfg(unix)]
    signals: [(tokio::signal::unix::Signal, &'static str); 3],
}

impl StopSignals {
    pub fn register() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let on = |kind, name| (signal(kind).expect("a signal handler"), name);
            StopSignals {
                signals: [
                    on(SignalKind::interrupt(), "SIGINT"),
                    on(SignalKind::terminate(), "SIGTERM"),
                    on(SignalKind::hangup(), "SIGHUP"),
                ],
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The first stop signal, logged by name.
    pub async fn recv(self) {
        #[cfg(unix)]
        {
            let [mut int, mut term, mut hup] = self.signals;
            let name = tokio::select! {
                _ = int.0.recv() => int.1,
                _ = term.0.recv() => term.1,
                _ = hup.0.recv() => hup.1,
            };
            tracing::info!(signal = name, "stop requested");
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The error and its causes, `a: b: c`, leaving out a cause whose words the
/// message already holds (many errors quote their source).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A blocking task that never ends (a worker stuck in a store write)
    /// does not hold the process past the bound. Dropping the runtime
    /// instead waits for it forever.
    #[test]
    fn a_stuck_blocking_task_does_not_outlive_the_bound() {
        let (done, finished) = std::sync::mpsc::channel();
        // On a thread of its own, so that a runtime that does wait forever
        // fails the test rather than hanging it.
        std::thread::spawn(move || {
            let rt = super::runtime().unwrap();
            let out = super::run_then_leave(
                rt,
                async {
                    tokio::task::spawn_blocking(|| loop {
                        std::thread::park();
                    });
                    7
                },
                std::time::Duration::from_millis(200),
            );
            let _ = done.send(out);
        });
        let got = finished.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(got, Ok(7), "the runtime waited for the stuck task");
    }

    /// The load test's memory finding: the blocking pool must stay capped.
    #[test]
    fn blocking_pool_is_capped() {
        let rt = super::runtime().unwrap();
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let (active, peak) = (active.clone(), peak.clone());
                    tokio::task::spawn_blocking(move || {
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        active.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            peak <= super::BLOCKING_THREADS,
            "{peak} blocking tasks ran at once"
        );
        assert!(peak > 1, "the pool should still run tasks in parallel");
    }
}
