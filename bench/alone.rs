//! `--tracker-only`: the shapes and the dashboard queries on the tracker
//! alone, with nothing else on the machine.

use super::*;

/// `--tracker-only`: each shape over the same parameters twice. A tail that
/// the warm pass lacks is a cache miss (sled reading and deserialising a node
/// its cache did not hold); one that stays is the work itself. Then, warm,
/// the same pages' records read one by one by id: the share of a page's time
/// that is fetching its records rather than planning it.
pub fn tracker_only(store: &Store, params: &[Params], depth: f64) -> anyhow::Result<()> {
    for shape in shapes::ALL {
        let mut passes = Vec::new();
        let mut pages = Vec::with_capacity(params.len());
        for pass in 0..2 {
            let mut lat = Vec::with_capacity(params.len());
            let t = Instant::now();
            for p in params {
                let s = Instant::now();
                let page = store
                    .view()
                    .list(&p.project, &shapes::list_query(shape, p))?;
                lat.push(s.elapsed());
                if pass == 1 {
                    pages.push((p.project.clone(), page.records));
                }
            }
            let max = lat.iter().max().copied().unwrap_or_default();
            let s = summarize(&mut lat, t.elapsed());
            passes.push(format!(
                "{:.3} / {:.3} / {:.3}",
                s.p50_ms,
                s.p99_ms,
                max.as_secs_f64() * 1000.0
            ));
        }
        let mut reads = Vec::with_capacity(pages.len());
        let t = Instant::now();
        for (project, records) in &pages {
            let s = Instant::now();
            for r in records {
                store.view().get(project, &r.id)?;
            }
            reads.push(s.elapsed());
        }
        let r = summarize(&mut reads, t.elapsed());
        println!(
            "{}: p50 / p99 / max ms, cold {}, warm {}; its records read by id, warm: {:.3} / {:.3}",
            shape.describe(depth),
            passes[0],
            passes[1],
            r.p50_ms,
            r.p99_ms
        );
    }
    for (name, s) in dashboard::run(store, params, depth)?.0 {
        println!("{name}: p50 / p99 ms {:.3} / {:.3}", s.p50_ms, s.p99_ms);
    }
    let (project, listed) = export::largest_project(store, PROJECTS)?;
    for e in export::tracker(store, &project)? {
        println!(
            "export of the largest project ({listed} listed), {}{}: {} records in {:.3} s, {:.0} records/s, {:.2} CPU s, {:.0} MiB, RSS growth {:.1} MiB",
            e.format,
            if e.again { ", again" } else { "" },
            e.records,
            e.secs,
            e.per_sec(),
            e.cpu,
            e.bytes as f64 / 1048576.0,
            e.rss_growth as f64 / 1048576.0
        );
    }
    Ok(())
}
