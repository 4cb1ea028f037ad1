//! Prometheus text exposition: store totals, ingest progress and request
//! latency histograms by route and status. Hand-written: a few counters do not
//! need a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::histogram::Histogram;
use common::progress::IngestProgress;
use common::{Status, Store};

use crate::error::ApiError;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), Histogram>>,
    /// Error answers by code, in [`ApiError::CODES`]' order: every code is
    /// exported from start-up, at 0, so a rate over it is never absent.
    errors: [AtomicU64; ApiError::CODES.len()],
    streams: AtomicU64,
    stalled: AtomicU64,
}

impl Metrics {
    pub fn stream_opened(&self) {
        self.streams.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_closed(&self) {
        self.streams.fetch_sub(1, Ordering::Relaxed);
    }

    /// Change-feed streams open now.
    pub fn streams_open(&self) -> u64 {
        self.streams.load(Ordering::Relaxed)
    }

    /// A connection closed because its client accepted no output within the
    /// send timeout.
    pub fn client_stalled(&self) {
        self.stalled.fetch_add(1, Ordering::Relaxed);
    }

    pub fn clients_stalled(&self) -> u64 {
        self.stalled.load(Ordering::Relaxed)
    }

    /// A request answered; `code`, when it was an error in the API's shape.
    pub fn observe(&self, route: &str, status: u16, code: Option<&str>, elapsed: Duration) {
        let mut m = self.requests.lock().expect("metrics lock");
        m.entry((route.to_owned(), status))
            .or_insert_with(|| Histogram::new(&BUCKETS))
            .observe(elapsed.as_secs_f64());
        drop(m);
        if let Some(i) = code.and_then(|c| ApiError::CODES.iter().position(|k| *k == c)) {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `stuck`: stuck records per status, `by_status`: records per status,
    /// and `size`: the store's bytes on disk, each when the store could tell.
    pub fn render(
        &self,
        store: &Store,
        ingest: Option<&IngestProgress>,
        stuck: Option<&[(Status, u64)]>,
        by_status: Option<&[(Status, u64)]>,
        size: Option<u64>,
    ) -> String {
        let mut out = String::new();
        let t = store.totals();
        // One family of one unlabelled series (a counter or a gauge).
        let mut unlabelled = |name: &str, help: &str, kind: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        };
        unlabelled(
            "tracker_events_applied_total",
            "New events folded into records.",
            "counter",
            t.applied,
        );
        unlabelled(
            "tracker_events_duplicate_total",
            "Events whose event_id the record had already seen.",
            "counter",
            t.duplicates,
        );
        unlabelled(
            "tracker_events_quarantined_total",
            "Messages kept in the quarantine.",
            "counter",
            t.quarantined,
        );
        unlabelled(
            "tracker_streams_open",
            "Change-feed streams open.",
            "gauge",
            self.streams_open(),
        );
        unlabelled(
            "tracker_connections_stalled_total",
            "Connections closed because the client accepted no output within the send timeout.",
            "counter",
            self.clients_stalled(),
        );
        unlabelled(
            "tracker_records",
            "Records in the projection.",
            "gauge",
            t.records,
        );
        if let Some(size) = size {
            unlabelled(
                "tracker_store_size_bytes",
                "The store's size on disk (sled's files).",
                "gauge",
                size,
            );
        }
        let o = store.outcomes();
        let name = "tracker_status_changes_total";
        let _ = writeln!(
            out,
            "# HELP {name} Records whose status a batch changed (a new record included), by new status and region pair.\n# TYPE {name} counter"
        );
        for ((status, source, destination), n) in &o.status_changes {
            let _ = writeln!(
                out,
                "{name}{{status=\"{}\",source_region=\"{}\",destination_region=\"{}\"}} {n}",
                status.as_str(),
                escape(source),
                escape(destination)
            );
        }
        let name = "tracker_apply_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to decode, fold and write one batch.\n# TYPE {name} histogram"
        );
        o.apply.render(&mut out, name, "");
        let name = "tracker_http_errors_total";
        let _ = writeln!(
            out,
            "# HELP {name} Answers in the API's error shape, by error code.\n# TYPE {name} counter"
        );
        for (code, n) in ApiError::CODES.iter().zip(&self.errors) {
            let _ = writeln!(
                out,
                "{name}{{code=\"{code}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        if let Some(by_status) = by_status {
            per_status(
                &mut out,
                "tracker_records_by_status",
                "Records in each status, each record once whatever projects list it.",
                by_status,
            );
        }
        if let Some(stuck) = stuck {
            per_status(
                &mut out,
                "tracker_stuck_records",
                "Records replicating or waiting with no event for longer than their status's threshold.",
                stuck,
            );
        }
        if let Some(p) = ingest {
            let s = p.snapshot();
            let _ = writeln!(out, "# HELP tracker_broker_up 1 when the broker answered the last metadata request.\n# TYPE tracker_broker_up gauge\ntracker_broker_up {}", u8::from(s.broker == common::progress::BrokerState::Up));
            let _ = writeln!(out, "# HELP tracker_topic_missing 1 when the broker answered but has no such topic.\n# TYPE tracker_topic_missing gauge\ntracker_topic_missing {}", u8::from(s.topic_missing));
            let _ = writeln!(out, "# HELP tracker_ingest_lag Messages on the broker not yet applied, all partitions.\n# TYPE tracker_ingest_lag gauge\ntracker_ingest_lag {}", s.lag());
            let _ = writeln!(out, "# HELP tracker_ingest_batches_total Batches written.\n# TYPE tracker_ingest_batches_total counter\ntracker_ingest_batches_total {}", s.batches);
            for (name, help) in [
                (
                    "tracker_partition_next_offset",
                    "Next offset to apply (the stored checkpoint).",
                ),
                (
                    "tracker_partition_high_watermark",
                    "Broker high watermark at the last look.",
                ),
                ("tracker_partition_lag", "Messages not yet applied."),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                for (partition, pp) in &s.partitions {
                    let v = match name {
                        "tracker_partition_next_offset" => pp.next_offset,
                        "tracker_partition_high_watermark" => pp.high_watermark,
                        _ => pp.lag(),
                    };
                    let _ = writeln!(
                        out,
                        "{name}{{topic=\"{}\",partition=\"{partition}\"}} {v}",
                        escape(&s.topic)
                    );
                }
            }
            let name = "tracker_partition_gap";
            let _ = writeln!(out, "# HELP {name} 1 for each partition held at an offset gap (retention_gap or topic_reset) until accepted.\n# TYPE {name} gauge");
            for (partition, gap) in &s.gaps {
                let _ = writeln!(
                    out,
                    "{name}{{topic=\"{}\",partition=\"{partition}\",kind=\"{}\"}} 1",
                    escape(&s.topic),
                    gap.kind.as_str()
                );
            }
            let name = "tracker_store_write_failing";
            let _ = writeln!(out, "# HELP {name} 1 while the store refuses ingest's writes.\n# TYPE {name} gauge\n{name} {}", u8::from(s.store_error.is_some()));
        }
        let name = "tracker_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Request latency by route and status.\n# TYPE {name} histogram"
        );
        for ((route, status), h) in self.requests.lock().expect("metrics lock").iter() {
            let labels = format!("route=\"{}\",status=\"{status}\"", escape(route));
            h.render(&mut out, name, &labels);
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// One gauge family labelled by status.
fn per_status(out: &mut String, name: &str, help: &str, rows: &[(Status, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for (status, n) in rows {
        let _ = writeln!(out, "{name}{{status=\"{}\"}} {n}", status.as_str());
    }
}
