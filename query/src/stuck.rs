//! When a replication counts as stuck: a threshold per status and the clock
//! to measure it against. Resolved here, per request, into the cutoffs the
//! store compares with, so the projection stays a function of the events and
//! tests can set the clock.

use std::sync::Arc;
use std::time::Duration;

use common::instant::Micros;
use common::store::Stuck;

/// The current time, as the API sees it.
pub type Clock = Arc<dyn Fn() -> Micros + Send + Sync>;

#[derive(Clone)]
pub struct StuckPolicy {
    /// A `replicating` record with no event for this long is stuck.
    pub replicating: Duration,
    /// A `waiting_replicate` record with no event for this long is stuck.
    pub waiting_replicate: Duration,
    pub clock: Clock,
}

impl Default for StuckPolicy {
    fn default() -> StuckPolicy {
        StuckPolicy {
            replicating: Duration::from_secs(6 * 3600),
            waiting_replicate: Duration::from_secs(24 * 3600),
            clock: Arc::new(Micros::now),
        }
    }
}

impl std::fmt::Debug for StuckPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StuckPolicy")
            .field("replicating", &self.replicating)
            .field("waiting_replicate", &self.waiting_replicate)
            .finish_non_exhaustive()
    }
}

impl StuckPolicy {
    /// `stuck=want` as of now.
    pub fn resolve(&self, want: bool) -> Stuck {
        let now = (self.clock)();
        let before = |d: Duration| Micros(now.0.saturating_sub(d.as_micros() as i64));
        Stuck {
            want,
            replicating_before: before(self.replicating),
            waiting_before: before(self.waiting_replicate),
        }
    }
}

/// A threshold as configured: a whole number and a unit, `s`, `m`, `h` or
/// `d` (`90s`, `45m`, `6h`, `2d`).
pub fn parse_threshold(s: &str) -> Result<Duration, String> {
    let unit = s.chars().last().ok_or("empty duration")?;
    let n: u64 = s[..s.len() - unit.len_utf8()]
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90s, 45m, 6h or 2d"))?;
    let secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(format!("`{s}`: the unit must be s, m, h or d")),
    };
    if n == 0 {
        return Err(format!("`{s}`: a threshold must be positive"));
    }
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{s}` is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_parse_with_units_and_refuse_the_rest() {
        assert_eq!(parse_threshold("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_threshold("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_threshold("2d"), Ok(Duration::from_secs(172_800)));
        for bad in [
            "",
            "6",
            "h",
            "6x",
            "-1h",
            "0h",
            "1.5h",
            "99999999999999999d",
        ] {
            assert!(parse_threshold(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cutoffs_are_now_minus_each_threshold() {
        let p = StuckPolicy {
            clock: Arc::new(|| Micros(100 * 3_600_000_000)),
            ..StuckPolicy::default()
        };
        let k = p.resolve(true);
        assert_eq!(k.replicating_before, Micros(94 * 3_600_000_000));
        assert_eq!(k.waiting_before, Micros(76 * 3_600_000_000));
    }
}
