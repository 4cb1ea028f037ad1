//! A Prometheus histogram, hand-written like the rest of `/metrics`: fixed
//! upper bounds, cumulative counts, rendered as `_bucket`, `_sum`, `_count`.

use std::fmt::Write;

#[derive(Debug, Clone)]
pub struct Histogram {
    /// Upper bounds in seconds, ascending (`+Inf` is implied).
    bounds: &'static [f64],
    /// Observations at or under each bound (cumulative, as exposed).
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: vec![0; bounds.len()],
            count: 0,
            sum: 0.0,
        }
    }

    pub fn observe(&mut self, secs: f64) {
        for (b, le) in self.buckets.iter_mut().zip(self.bounds) {
            if secs <= *le {
                *b += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// The series of `name` with `labels` (`a="x",b="y"`, or empty).
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (le, n) in self.bounds.iter().zip(&self.buckets) {
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {n}");
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            self.count
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), self.sum);
        let _ = writeln!(out, "{name}_count{} {}", braces(labels), self.count);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_labels_optional() {
        let mut h = Histogram::new(&[0.1, 1.0]);
        h.observe(0.05);
        h.observe(0.5);
        h.observe(5.0);
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "");
        assert_eq!(
            out,
            "x_seconds_bucket{le=\"0.1\"} 1\nx_seconds_bucket{le=\"1\"} 2\n\
             x_seconds_bucket{le=\"+Inf\"} 3\nx_seconds_sum 5.55\nx_seconds_count 3\n"
        );
        let mut out = String::new();
        h.render(&mut out, "x_seconds", "route=\"/r\"");
        assert!(
            out.contains("x_seconds_bucket{route=\"/r\",le=\"1\"} 2\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_count{route=\"/r\"} 3\n"), "{out}");
    }
}
