//! Where the write path's time goes (issue 36): the writer's steps in each
//! batch and the maintenance's flushes and merges, as running sums of
//! nanoseconds that a benchmark reads before and after a stretch of
//! batches. A handful of clock reads per batch, so always on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One step of the write path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The whole of `apply_batch`: what the steps below do not cover is
    /// bookkeeping (checkpoints, the change log, totals).
    Batch = 0,
    /// Checkpoint filter, JSON decode, quarantine.
    Decode,
    /// Folding events into their records (previous states read).
    Fold,
    /// Record values, index entries and count deltas of changed records.
    Derive,
    /// Encoding and compressing the event-log chunks.
    EventLog,
    /// sled's atomic write.
    Write,
    /// Making the batch visible to readers, and publishing it.
    Install,
    /// The writer flushing itself (the memtable far over its bound).
    WriterFlush,
    /// The maintenance thread's flushes.
    Flush,
    /// The maintenance thread's merges.
    Merge,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Step::Batch,
        Step::Decode,
        Step::Fold,
        Step::Derive,
        Step::EventLog,
        Step::Write,
        Step::Install,
        Step::WriterFlush,
        Step::Flush,
        Step::Merge,
    ];

    /// A step of the writer's (the rest are the maintenance threads').
    pub fn writer(self) -> bool {
        !matches!(self, Step::Flush | Step::Merge)
    }

    pub fn name(self) -> &'static str {
        match self {
            Step::Batch => "batch",
            Step::Decode => "decode",
            Step::Fold => "fold",
            Step::Derive => "derive",
            Step::EventLog => "event log",
            Step::Write => "sled write",
            Step::Install => "install",
            Step::WriterFlush => "writer flush",
            Step::Flush => "flush",
            Step::Merge => "merge",
        }
    }
}

/// The running sums, shared by the writer and the maintenance threads.
#[derive(Debug, Default)]
pub struct Steps([AtomicU64; Step::ALL.len()]);

impl Steps {
    /// Adds the time since `start` to `step`; returns now, the next step's
    /// start.
    pub fn add(&self, step: Step, start: Instant) -> Instant {
        let now = Instant::now();
        let nanos = now.duration_since(start).as_nanos() as u64;
        self.0[step as usize].fetch_add(nanos, Ordering::Relaxed);
        now
    }

    pub fn read(&self) -> StepTimes {
        StepTimes(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

/// The sums at one moment, in nanoseconds per step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepTimes([u64; Step::ALL.len()]);

impl StepTimes {
    pub fn nanos(&self, step: Step) -> u64 {
        self.0[step as usize]
    }

    /// What was spent between `earlier` and these.
    pub fn since(&self, earlier: &StepTimes) -> StepTimes {
        StepTimes(std::array::from_fn(|i| {
            self.0[i].saturating_sub(earlier.0[i])
        }))
    }

    /// The writer's time in a batch outside its named steps.
    pub fn other(&self) -> u64 {
        let named: u64 = Step::ALL
            .iter()
            .filter(|s| s.writer() && **s != Step::Batch)
            .map(|s| self.nanos(*s))
            .sum();
        self.nanos(Step::Batch).saturating_sub(named)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_add_up_per_step_and_subtract_between_readings() {
        let steps = Steps::default();
        let start = Instant::now() - std::time::Duration::from_millis(5);
        steps.add(Step::Fold, start);
        let first = steps.read();
        assert!(first.nanos(Step::Fold) >= 5_000_000);
        assert_eq!(first.nanos(Step::Decode), 0);
        let start = Instant::now() - std::time::Duration::from_millis(3);
        steps.add(Step::Batch, start);
        let d = steps.read().since(&first);
        assert_eq!(d.nanos(Step::Fold), 0);
        assert!(d.nanos(Step::Batch) >= 3_000_000);
        assert_eq!(d.other(), d.nanos(Step::Batch));
    }
}
