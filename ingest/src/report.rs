//! What a headless operator sees of ingest in the log: a progress line every
//! few seconds while there is work, and one line each time ingest reaches the
//! head of the topic.

use std::time::{Duration, Instant};

use common::progress::{BrokerState, Snapshot};
use tracing::info;

/// What a headless operator sees: a progress line every few seconds while
/// there is work, and one line each time ingest catches up.
pub(crate) struct Report {
    pub(crate) consumed: u64,
    pub(crate) applied: u64,
    last: Instant,
    caught_up: bool,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            consumed: 0,
            applied: 0,
            last: Instant::now(),
            caught_up: false,
        }
    }
}

impl Report {
    const EVERY: Duration = Duration::from_secs(10);

    pub(crate) fn tick(&mut self, snap: &Snapshot) {
        let lag = snap.lag();
        let at_head = snap.broker == BrokerState::Up && !snap.partitions.is_empty() && lag == 0;
        if at_head && !self.caught_up {
            info!(lag, consumed = self.consumed, "caught up with the topic");
        }
        self.caught_up = at_head;
        if self.consumed > 0 && self.last.elapsed() >= Self::EVERY {
            let secs = self.last.elapsed().as_secs_f64();
            info!(
                consumed = self.consumed,
                applied = self.applied,
                // A whole number, typed as one in JSON logs.
                per_sec = (self.consumed as f64 / secs).round() as u64,
                lag,
                "ingest progress"
            );
            (self.consumed, self.applied, self.last) = (0, 0, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use common::progress::IngestProgress;

    /// A headless operator sees progress while there is work, and one
    /// line each time ingest reaches the head of the topic.
    #[test]
    fn progress_is_reported_and_catching_up_said_once() {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let snapshot = |next: i64| {
            let p = IngestProgress::new("t");
            p.set_broker(BrokerState::Up);
            p.set_high_watermark(0, 10);
            p.set_next_offset(0, next);
            p.snapshot()
        };
        tracing::subscriber::with_default(subscriber, || {
            let mut r = Report {
                consumed: 100,
                applied: 90,
                last: Instant::now() - Report::EVERY,
                caught_up: false,
            };
            r.tick(&snapshot(5)); // behind, with work done: progress
            r.tick(&snapshot(10)); // at the head: caught up
            r.tick(&snapshot(10)); // still there: nothing new
        });
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("ingest progress").count(), 1, "{log}");
        assert!(
            log.contains("consumed=100") && log.contains("lag=5"),
            "{log}"
        );
        assert_eq!(log.matches("caught up with the topic").count(), 1, "{log}");
    }
}
