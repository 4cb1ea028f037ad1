//! The dashboard's queries, timed in-process on the tracker: a 24-hour
//! window, a marker page as deep as Q7's offset, summaries, capabilities.
//! Each is run over the same drawn parameters as the list shapes.

use std::time::{Duration, Instant};

use common::instant::Micros;
use common::store::{GroupField, Interval, Stuck, SummaryQuery, Window};
use common::{ListQuery, Store};

use crate::shapes::{self, Params, Shape};
use crate::stats::{summarize, Summary};

const HOUR: i64 = 3_600_000_000;

/// The dashboard queries with their drawn inputs, as API paths (for the
/// HTTP runs): the same inputs `run` times in-process.
pub struct Dashboard {
    biggest: String,
    newest: Micros,
    windows: Vec<Window>,
    markers: Vec<(String, String)>,
    limit: usize,
}

impl Dashboard {
    /// `(name, paths)` of each query.
    pub fn paths(&self, params: &[Params]) -> Vec<(String, Vec<String>)> {
        let b = &self.biggest;
        let day = |t: Micros| t.render();
        let mut out = vec![(
            "list, 24-hour created window, biggest project".to_string(),
            self.windows
                .iter()
                .map(|w| {
                    format!(
                        "/v1/{b}/replication_records?limit=100&created_after={}&created_before={}",
                        day(w.after.expect("set")),
                        day(w.before.expect("set"))
                    )
                })
                .collect(),
        )];
        out.push((
            "marker page at Q7's depth".into(),
            self.markers
                .iter()
                .map(|(p, m)| {
                    format!(
                        "/v1/{p}/replication_records?limit={}&marker={m}",
                        self.limit
                    )
                })
                .collect(),
        ));
        let from = day(Micros(self.newest.0 - 30 * 24 * HOUR));
        out.push((
            "summaries, 30 days by day x status, biggest project".into(),
            params
                .iter()
                .map(|_| format!("/v1/{b}/replication_summaries?group_by=status&interval=day&created_after={from}"))
                .collect(),
        ));
        out.push((
            "summaries, source x destination region".into(),
            params
                .iter()
                .map(|p| {
                    format!(
                        "/v1/{}/replication_summaries?group_by=source_region,destination_region",
                        p.project
                    )
                })
                .collect(),
        ));
        out.push((
            "capabilities".into(),
            params
                .iter()
                .map(|p| format!("/v1/{}/replication_capabilities", p.project))
                .collect(),
        ));
        out.push((
            "stuck=true, limit 100 (every unfinished record is stuck by the wall clock)".into(),
            params
                .iter()
                .map(|p| format!("/v1/{}/replication_records?stuck=true&limit=100", p.project))
                .collect(),
        ));
        out
    }
}

/// Each dashboard query's name and its latencies, and the drawn inputs.
pub fn run(
    store: &Store,
    params: &[Params],
    depth: f64,
) -> anyhow::Result<(Vec<(String, Summary)>, Dashboard)> {
    let biggest = biggest_project(store, params)?;
    let newest = store
        .view()
        .list(
            &biggest,
            &ListQuery {
                limit: Some(1),
                ..Default::default()
            },
        )?
        .records
        .first()
        .and_then(|r| Micros::parse_api(&r.created_at))
        .ok_or_else(|| anyhow::anyhow!("the biggest project is empty"))?;
    let mut out = Vec::new();

    // Windows ending at each drawn record's hour, on the biggest project.
    let mut windows = Vec::new();
    for p in params {
        let q = shapes::list_query(Shape::Q1, p);
        let end = store
            .view()
            .list(&p.project, &q)?
            .records
            .first()
            .and_then(|r| Micros::parse_api(&r.created_at));
        if let Some(end) = end {
            let before = Micros(end.0.div_euclid(HOUR) * HOUR);
            windows.push(Window {
                after: Some(Micros(before.0 - 24 * HOUR)),
                before: Some(before),
            });
        }
    }
    out.push((
        "list, 24-hour created window, limit 100, biggest project".to_string(),
        time(&windows, |w| {
            store.view().list(
                &biggest,
                &ListQuery {
                    created: *w,
                    limit: Some(100),
                    ..Default::default()
                },
            )?;
            Ok(())
        })?,
    ));

    // The record at Q7's depth of each drawn project, then the page after it.
    let (offset, limit) = Shape::Q7.page(depth);
    let mut markers = Vec::new();
    for p in params {
        let q = ListQuery {
            offset: Some(offset - 1),
            limit: Some(1),
            ..Default::default()
        };
        if let Some(r) = store.view().list(&p.project, &q)?.records.first() {
            markers.push((p.project.clone(), r.id.clone()));
        }
    }
    out.push((
        format!("marker page at depth {offset}, limit {limit} (Q7 by marker)"),
        time(&markers, |(project, id)| {
            let q = ListQuery {
                marker: Some(id.clone()),
                limit: Some(limit),
                ..Default::default()
            };
            store.view().list(project, &q)?;
            Ok(())
        })?,
    ));

    let days = SummaryQuery {
        group_by: vec![GroupField::Status],
        interval: Some(Interval::Day),
        created: Window {
            after: Some(Micros(newest.0 - 30 * 24 * HOUR)),
            before: Some(Micros(newest.0 + 1)),
        },
        ..Default::default()
    };
    out.push((
        "summaries: 30 days by day x status, biggest project".into(),
        time(params, |_| {
            store.view().summaries(&biggest, &days)?;
            Ok(())
        })?,
    ));
    let pairs = SummaryQuery {
        group_by: vec![GroupField::SourceRegion, GroupField::DestinationRegion],
        ..Default::default()
    };
    out.push((
        "summaries: all time by source x destination region".into(),
        time(params, |p| {
            store.view().summaries(&p.project, &pairs)?;
            Ok(())
        })?,
    ));
    out.push((
        "capabilities (observed pairs)".into(),
        time(params, |p| {
            store.view().region_pairs(&p.project)?;
            Ok(())
        })?,
    ));
    // Stuck as of the dataset's end, with the default thresholds.
    let stuck = Stuck {
        want: true,
        replicating_before: Micros(newest.0 - 6 * HOUR),
        waiting_before: Micros(newest.0 - 24 * HOUR),
    };
    let mut found = 0;
    out.push((
        "stuck=true, limit 100 (as of the dataset's end; 6h / 24h)".into(),
        time(params, |p| {
            let q = ListQuery {
                stuck: Some(stuck),
                limit: Some(100),
                ..Default::default()
            };
            found += store.view().list(&p.project, &q)?.records.len();
            Ok(())
        })?,
    ));
    println!("stuck=true pages returned {found} records in all");
    let dashboard = Dashboard {
        biggest,
        newest,
        windows,
        markers,
        limit,
    };
    Ok((out, dashboard))
}

/// The project with the most records among those drawn.
fn biggest_project(store: &Store, params: &[Params]) -> anyhow::Result<String> {
    let mut best = (0, String::new());
    for p in params {
        let q = ListQuery {
            limit: Some(0),
            with_count: Some(true),
            ..Default::default()
        };
        let n = store.view().list(&p.project, &q)?.count.unwrap_or(0);
        if n > best.0 {
            best = (n, p.project.clone());
        }
    }
    Ok(best.1)
}

/// Latencies of `f` over `inputs`, after warming on the first ten.
fn time<T>(inputs: &[T], mut f: impl FnMut(&T) -> anyhow::Result<()>) -> anyhow::Result<Summary> {
    for x in inputs.iter().take(10) {
        f(x)?;
    }
    let mut lat: Vec<Duration> = Vec::with_capacity(inputs.len());
    let t = Instant::now();
    for x in inputs {
        let s = Instant::now();
        f(x)?;
        lat.push(s.elapsed());
    }
    Ok(summarize(&mut lat, t.elapsed()))
}
