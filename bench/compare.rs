//! The in-process comparison: every shape on the tracker and on both
//! PostgreSQL schemas over the same parameters, timed side by side, pages
//! compared whole, with what the machine did while each system was timed.

use super::*;
use crate::counters::{counters, machine, Machine};

/// What the comparison found: pages that differed between the systems, and
/// shapes that compared nothing worth comparing.
pub struct Compared {
    pub mismatches: usize,
    pub hollow: Vec<String>,
}

/// Times every shape on the tracker's `store` and PostgreSQL, pushing one
/// row per shape onto `table`.
pub fn shapes(
    a: &Args,
    store: &Store,
    store_dir: &Path,
    pgc: &mut postgres::Client,
    params: &[Params],
    depth: f64,
    table: &mut Vec<Row>,
) -> anyhow::Result<Compared> {
    // PostgreSQL's load left its tables in its buffers and the OS page cache
    // and pushed part of the tracker's store out: put the store back, so that
    // both systems' timings start warm.
    let t = Instant::now();
    let warmed = process::read_through(store_dir)?;
    println!(
        "read the tracker's store ({:.0} MiB) into the OS page cache in {:.1?}",
        warmed as f64 / 1048576.0,
        t.elapsed()
    );
    let mut mismatches = 0usize;
    let mut hollow: Vec<String> = Vec::new();
    for shape in shapes::ALL {
        let preps = [
            pg::prepare(pgc, Schema::Listing, shape, depth)?,
            pg::prepare(pgc, Schema::Records, shape, depth)?,
        ];
        if a.explain {
            for (schema, prep) in [Schema::Listing, Schema::Records].into_iter().zip(&preps) {
                let plan = pg::explain(pgc, prep, shape, &params[0])?;
                println!("plan of {} on {}:\n{plan}", shape.name(), schema.table());
            }
        }
        // Warm all three (caches, plans), then time.
        for p in params.iter().take(10) {
            store
                .view()
                .list(&p.project, &shapes::list_query(shape, p))?;
            for prep in &preps {
                pg::run(pgc, prep, shape, p)?;
            }
        }
        let mut answers = Vec::new();
        let mut costs = Vec::new();
        let (t, before) = (Instant::now(), machine());
        for p in params {
            // Read outside the clock: what each query moved, for its tail.
            let c = counters();
            let s = Instant::now();
            let page = store
                .view()
                .list(&p.project, &shapes::list_query(shape, p))?;
            costs.push((s.elapsed(), c, counters()));
            answers.push((page.records, page.count.map(|c| c as i64)));
        }
        // q/s from the queries' own time, not the counters' reads between them.
        let mut tl: Vec<Duration> = costs.iter().map(|c| c.0).collect();
        let busy: Duration = tl.iter().sum();
        let ts = summarize(&mut tl, busy);
        println!(
            "{} tracker timing: {}\n  slowest: {}",
            shape.name(),
            Machine::since(before, t.elapsed().as_secs_f64()),
            counters::slowest(&mut costs, 4)
        );
        let mut pg_summaries = Vec::new();
        for (schema, prep) in [Schema::Listing, Schema::Records].into_iter().zip(&preps) {
            let mut pl = Vec::new();
            let (t, before) = (Instant::now(), machine());
            for (p, ans) in params.iter().zip(&answers) {
                let s = Instant::now();
                let got = pg::run(pgc, prep, shape, p)?;
                pl.push(s.elapsed());
                // Whole pages: every field of every record, nulls included.
                if &got != ans {
                    if mismatches == 0 {
                        println!(
                            "first mismatch, {} ({schema:?}): tracker {ans:?}\npostgres {got:?}",
                            shape.name()
                        );
                    }
                    mismatches += 1;
                }
            }
            // q/s on the tracker's basis: the queries' own time.
            let busy: Duration = pl.iter().sum();
            pg_summaries.push(summarize(&mut pl, busy));
            println!(
                "{} postgres {} timing: {}",
                shape.name(),
                schema.table(),
                Machine::since(before, t.elapsed().as_secs_f64())
            );
        }
        let (mut non_empty, mut full, mut nulls) = (0, 0, 0);
        let (offset, limit) = shape.page(depth);
        for (records, _) in &answers {
            non_empty += usize::from(!records.is_empty());
            full += usize::from(records.len() == limit);
            nulls += usize::from(records.iter().any(|r| shape.null_sort_value(r)));
        }
        println!(
            "{}: {non_empty} of {} pages compared were non-empty, {full} full, {nulls} with a null sort value",
            shape.name(),
            params.len()
        );
        // A shape that only ever returns empty pages compares nothing; one
        // with an offset must also reach full pages, and one sorting on a
        // nullable field must meet nulls.
        if non_empty == 0 || (offset > 0 && full == 0) || (shape.sorts_nullable() && nulls == 0) {
            hollow.push(shape.name());
        }
        push_latency(
            table,
            &format!("{} in-process", shape.describe(depth)),
            ts,
            pg_summaries[0],
            pg_summaries[1],
        );
    }
    Ok(Compared { mismatches, hollow })
}

fn push_latency(table: &mut Vec<Row>, shape: &str, t: Summary, p: Summary, u: Summary) {
    let cell = |s: Summary| format!("{:.3} / {:.3}, {:.0}", s.p50_ms, s.p99_ms, s.per_sec);
    table.push(Row {
        shape: format!("{shape}: p50 / p99 ms, q/s"),
        tracker: cell(t),
        postgres: cell(p),
        ratio: format!("{:.1}x / {:.1}x", p.p50_ms / t.p50_ms, p.p99_ms / t.p99_ms),
        union: cell(u),
    });
}
