//! The export of the dataset's largest project (issue 25): records/s and
//! the RSS the export adds, NDJSON and CSV, in-process (the store's export
//! written to a byte counter, as the endpoint writes it to its channel);
//! PostgreSQL's `COPY (SELECT …) TO STDOUT (FORMAT csv)` of the same rows,
//! in the list's order, beside it in the full run.

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use common::store::export::ExportFormat;
use common::store::ListQuery;
use common::{sample, Store};

use crate::counters::rss_of;

/// One export's measure.
pub struct Exported {
    pub format: &'static str,
    pub records: u64,
    pub bytes: u64,
    pub secs: f64,
    /// The RSS peak during the export over the RSS before it.
    pub rss_growth: u64,
    /// CPU seconds the process used meanwhile (every thread).
    pub cpu: f64,
    /// The second export of the same project and format in the run.
    pub again: bool,
}

impl Exported {
    pub fn per_sec(&self) -> f64 {
        self.records as f64 / self.secs
    }
}

/// Bytes written, counted and dropped.
struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lines written, counted and dropped (PostgreSQL's rows).
struct Lines(u64);

impl Write for Lines {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0 += b.iter().filter(|&&c| c == b'\n').count() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The project with the most records listed under it, and how many.
pub fn largest_project(store: &Store, projects: usize) -> anyhow::Result<(String, u64)> {
    let view = store.view();
    let mut best = (String::new(), 0);
    for i in 0..projects {
        let p = sample::project_id(i);
        let q = ListQuery {
            with_count: Some(true),
            limit: Some(1),
            ..Default::default()
        };
        let n = view.list(&p, &q)?.count.unwrap_or(0);
        if n > best.1 {
            best = (p, n);
        }
    }
    Ok(best)
}

/// The RSS peak of this process while `f` runs, sampled every 2 ms.
fn rss_peak_during<T>(f: impl FnOnce() -> T) -> anyhow::Result<(T, u64, u64)> {
    let pid = std::process::id();
    let before = rss_of(pid)?.0;
    let (stop, peak) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(before)),
    );
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok((rss, _)) = rss_of(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    Ok((out, before, peak.load(Ordering::Relaxed)))
}

/// The largest project exported in each format, default sort, twice (an
/// export reads around the store's cache: the second run finds what the
/// first left, the queries' working set).
pub fn tracker(store: &Store, project: &str) -> anyhow::Result<Vec<Exported>> {
    let mut out = Vec::new();
    for (format, again) in [
        (ExportFormat::Ndjson, false),
        (ExportFormat::Csv, false),
        (ExportFormat::Ndjson, true),
        (ExportFormat::Csv, true),
    ] {
        let cpu = crate::counters::cpu_secs("self");
        let t = Instant::now();
        let (r, before, peak) = rss_peak_during(|| {
            store.export_source()?.export(
                project,
                &ListQuery::default(),
                format,
                Counter(0),
                |_| Ok(()),
            )
        })?;
        let secs = t.elapsed().as_secs_f64();
        let cpu = crate::counters::cpu_secs("self") - cpu;
        let (w, trailer) = r?;
        out.push(Exported {
            format: format.as_str(),
            records: trailer.records,
            bytes: w.0,
            secs,
            rss_growth: peak.saturating_sub(before),
            cpu,
            again,
        });
    }
    Ok(out)
}

/// PostgreSQL streaming the same project's rows as CSV, in the list's
/// order, from the listing table (`COPY … TO STDOUT`, read to the end):
/// the rows (lines but the header) and the seconds.
pub fn postgres(c: &mut postgres::Client, project: &str) -> anyhow::Result<(u64, f64)> {
    let t = Instant::now();
    let sql = format!(
        "COPY (SELECT id, source_region, source_project_id, source_checkpoint_id, \
         source_checkpoint_item_id, destination_region, destination_project_id, \
         destination_checkpoint_id, destination_checkpoint_item_id, status, plan_id, \
         created_at, updated_at, auto_trigger, progress, fail_reason, fail_code \
         FROM listing WHERE project_id = '{project}' ORDER BY created_at DESC, id DESC) \
         TO STDOUT (FORMAT csv, HEADER)"
    );
    let mut reader = c.copy_out(sql.as_str())?;
    let mut lines = Lines(0);
    std::io::copy(&mut reader, &mut lines)?;
    Ok((lines.0.saturating_sub(1), t.elapsed().as_secs_f64()))
}
