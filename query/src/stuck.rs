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
        // Saturating: a threshold longer than the clock's range puts the
        // cutoff at its start (nothing is stuck), never wraps around
        // (200000000d once made every record stuck).
        let before = |d: Duration| {
            let d = i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
            Micros(now.0.saturating_sub(d))
        };
        Stuck {
            want,
            replicating_before: before(self.replicating),
            waiting_before: before(self.waiting_replicate),
        }
    }
}

/// The longest stuck threshold: ten years (a record with no event for
/// longer is not "stuck", it is forgotten).
pub const MAX_THRESHOLD: Duration = Duration::from_secs(3650 * 86_400);

/// A threshold as configured: a whole number and a unit, `s`, `m`, `h` or
/// `d` (`90s`, `45m`, `6h`, `2d`), at most [`MAX_THRESHOLD`] (`3650d`).
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
        .filter(|d| *d <= MAX_THRESHOLD)
        .ok_or_else(|| format!("`{s}` is too long: at most 3650d"))
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
            "3651d",
            "200000000d",
            "18446744073709551615s",
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

    proptest::proptest! {
        /// Over the whole range of thresholds and clocks, the cutoff is at
        /// or before now, and a longer threshold never moves it later (a
        /// wrapped subtraction once made every record stuck).
        #[test]
        fn cutoffs_never_wrap(
            now in proptest::num::i64::ANY,
            a in proptest::num::u64::ANY,
            b in proptest::num::u64::ANY,
            nanos in 0u32..1_000_000_000,
        ) {
            let at = |secs: u64| StuckPolicy {
                replicating: Duration::new(secs, nanos),
                waiting_replicate: Duration::from_secs(secs),
                clock: Arc::new(move || Micros(now)),
            }
            .resolve(true);
            let (short, long) = (at(a.min(b)), at(a.max(b)));
            proptest::prop_assert!(short.replicating_before.0 <= now);
            proptest::prop_assert!(short.waiting_before.0 <= now);
            proptest::prop_assert!(long.replicating_before.0 <= short.replicating_before.0);
            proptest::prop_assert!(long.waiting_before.0 <= short.waiting_before.0);
        }
    }
}
