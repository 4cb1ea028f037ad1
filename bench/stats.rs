//! Latency samples and their summary.

use std::time::Duration;

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub per_sec: f64,
}

/// `wall` is the elapsed time of the whole run (for throughput).
pub fn summarize(samples: &mut [Duration], wall: Duration) -> Summary {
    samples.sort_unstable();
    let pick = |q: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    Summary {
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        per_sec: samples.len() as f64 / wall.as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_samples() {
        let mut xs: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = summarize(&mut xs, Duration::from_secs(1));
        assert_eq!((s.p50_ms, s.p99_ms, s.per_sec), (50.0, 99.0, 100.0));
    }
}
