//! `--tracker-only`: the shapes and the dashboard queries on the tracker
//! alone, with nothing else on the machine.

use super::*;

/// `--tracker-only`: each shape over the same parameters twice. A tail that
/// the warm pass lacks is a cache miss (sled reading and deserialising a node
/// its cache did not hold); one that stays is the work itself.
pub fn tracker_only(store: &Store, params: &[Params], depth: f64) -> anyhow::Result<()> {
    for shape in shapes::ALL {
        let mut passes = Vec::new();
        for _ in 0..2 {
            let mut lat = Vec::with_capacity(params.len());
            let t = Instant::now();
            for p in params {
                let s = Instant::now();
                store.list(&p.project, &shapes::list_query(shape, p))?;
                lat.push(s.elapsed());
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
        println!(
            "{}: p50 / p99 / max ms, cold {}, warm {}",
            shape.describe(depth),
            passes[0],
            passes[1]
        );
    }
    for (name, s) in dashboard::run(store, params, depth)?.0 {
        println!("{name}: p50 / p99 ms {:.3} / {:.3}", s.p50_ms, s.p99_ms);
    }
    Ok(())
}
