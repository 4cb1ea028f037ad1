//! Event streams meant to break a wrong fold, not to look like production:
//! every identity field written by several events with conflicting values
//! (records even move between projects), retries whose progress is lower than
//! the old attempt's, terminal events followed by stragglers, equal instants
//! broken by `event_id`, every optional field present or absent, and event
//! times spread over days. Deterministic for a seed.

use crate::event::{Event, EventType};
use crate::instant::Micros;
use crate::record::{Field, Identity};
use crate::sample::Rng;

const HOUR: i64 = 3_600_000_000;

/// `records` records whose events name projects from `projects` (each record
/// starts in one of them; later events may move it to another).
pub fn events(records: usize, projects: &[String], seed: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for n in 0..records {
        let record_id = format!("adv-{seed:x}-{n:05}");
        let home = rng.below(projects.len() as u64) as usize;
        // Record start spread over three days, events within the next six hours.
        let t0 = 1_700_000_000_000_000 + rng.below(72) as i64 * HOUR;
        let count = 2 + rng.below(6) as usize;
        let mut last_at = t0;
        for j in 0..count {
            let kind = EventType::ALL[rng.below(6) as usize];
            // One in five events shares the previous instant: event_id decides.
            let at = if j > 0 && rng.below(5) == 0 {
                last_at
            } else {
                t0 + rng.below(6 * HOUR as u64) as i64 + rng.below(1000) as i64
            };
            last_at = at;
            let mut identity = Identity::default();
            for f in Field::ALL {
                if rng.below(10) < 3 {
                    identity.fields[f as usize] = Some(value(&mut rng, f, n, projects));
                }
            }
            if j == 0 {
                identity.fields[Field::SourceProjectId as usize] = Some(projects[home].clone());
            }
            if rng.below(10) < 3 {
                identity.auto_trigger = Some(rng.below(2) == 0);
            }
            let pick = |rng: &mut Rng, p: u64| rng.below(100) < p;
            out.push(Event {
                // Letters first, so a tie is not decided by creation order.
                event_id: format!("{}{j}", ["m", "b", "x", "e", "q"][rng.below(5) as usize]),
                kind,
                record_id: record_id.clone(),
                occurred_at: Micros(at),
                attempt: [1, 1, 1, 2, 2, 3][rng.below(6) as usize],
                identity,
                progress: pick(&mut rng, 60).then(|| rng.below(101) as u8),
                fail_code: (kind == EventType::Failed || pick(&mut rng, 20))
                    .then(|| format!("CBR.{}", rng.below(4))),
                fail_reason: pick(&mut rng, 50).then(|| format!("reason {}", rng.below(4))),
            });
        }
    }
    out
}

/// A value for `f` from a small pool, so writers conflict and filters match.
fn value(rng: &mut Rng, f: Field, record: usize, projects: &[String]) -> String {
    match f {
        Field::SourceProjectId | Field::DestinationProjectId => {
            projects[rng.below(projects.len() as u64) as usize].clone()
        }
        Field::SourceRegion | Field::DestinationRegion => format!("region-{}", rng.below(3)),
        Field::PlanId => format!("plan-{}", rng.below(3)),
        _ => format!("{}-{record}-{}", f.name(), rng.below(2)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_deterministic_and_decodable() {
        let projects = vec!["p1".to_owned(), "p2".to_owned()];
        let a = events(50, &projects, 9);
        assert_eq!(a, events(50, &projects, 9));
        for e in &a {
            let bytes = serde_json::to_vec(&e.to_json()).unwrap();
            assert_eq!(
                &crate::event::decode(Some(e.record_id.as_bytes()), Some(&bytes)).unwrap(),
                e
            );
        }
    }
}
