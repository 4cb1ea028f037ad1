//! A deterministic, realistic event stream: records in several projects and
//! regions going queued → started → progress → a terminal state, some retried,
//! some without a plan or with a destination region that arrives late (so
//! sorts meet nulls), with out-of-order and duplicate deliveries. The embedded
//! demo publishes it; tests and benchmarks use it as input.

use crate::event::{Event, EventType};
use crate::instant::Micros;
use crate::record::{Field, Identity};

/// splitmix64: tiny, seedable, good enough for test data.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Zipf-like pick in 0..n: index i with weight 1/(i+1).
    pub fn skewed(&mut self, n: usize) -> usize {
        let h: f64 = (1..=n).map(|i| 1.0 / i as f64).sum();
        let mut x = (self.next_u64() as f64 / u64::MAX as f64) * h;
        for i in 0..n {
            x -= 1.0 / (i + 1) as f64;
            if x <= 0.0 {
                return i;
            }
        }
        n - 1
    }
}

pub struct Shape {
    pub records: usize,
    pub projects: usize,
    pub regions: usize,
    pub seed: u64,
}

/// Project id `i` of a generated stream.
pub fn project_id(i: usize) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        0x7a3b_0000u32 + i as u32,
        i
    )
}

fn uuid(rng: &mut Rng) -> String {
    let a = rng.next_u64();
    let b = rng.next_u64();
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

/// The events of every record, in the order a producer would emit them
/// (records interleaved in time), without duplicates. Records start 2 s
/// apart from 2023-11-14.
pub fn events(shape: &Shape) -> Vec<Event> {
    events_from(shape, Micros(1_700_000_000_000_000), 2_000_000)
}

/// [`events`], with the records starting `step_us` apart from `start`.
pub fn events_from(shape: &Shape, start: Micros, step_us: i64) -> Vec<Event> {
    let mut rng = Rng::new(shape.seed);
    let base = start.0;
    let mut out = Vec::with_capacity(shape.records * 4);
    for n in 0..shape.records {
        let record_id = uuid(&mut rng);
        let src_region = rng.below(shape.regions as u64) as usize;
        let dst_region = (src_region + 1 + rng.below(shape.regions.max(2) as u64 - 1) as usize)
            % shape.regions.max(1);
        let src_project = rng.skewed(shape.projects);
        let dst_project = if rng.below(4) == 0 {
            rng.skewed(shape.projects)
        } else {
            src_project
        };
        let mut identity = Identity::default();
        let set = |id: &mut Identity, f: Field, v: String| id.fields[f as usize] = Some(v);
        set(
            &mut identity,
            Field::SourceRegion,
            format!("region-{src_region}"),
        );
        set(
            &mut identity,
            Field::DestinationRegion,
            format!("region-{dst_region}"),
        );
        set(
            &mut identity,
            Field::SourceProjectId,
            project_id(src_project),
        );
        set(
            &mut identity,
            Field::DestinationProjectId,
            project_id(dst_project),
        );
        set(&mut identity, Field::SourceCheckpointId, uuid(&mut rng));
        set(&mut identity, Field::SourceCheckpointItemId, uuid(&mut rng));
        // Manual replications (a third) belong to no plan: plan_id stays null.
        let auto = rng.below(3) != 0;
        identity.auto_trigger = Some(auto);
        if auto {
            set(
                &mut identity,
                Field::PlanId,
                format!("plan-{}", rng.below(50)),
            );
        }
        // One in twenty learns its destination region only when it starts:
        // null while it waits.
        let late_destination = rng.below(20) == 0;
        let destination = identity.fields[Field::DestinationRegion as usize].clone();
        if late_destination {
            identity.fields[Field::DestinationRegion as usize] = None;
        }
        let t0 = base + (n as i64) * step_us + rng.below(1_000_000) as i64;
        // Outcome mix: 85 % success, 5 % fail, 3 % skip, 4 % replicating, 3 % waiting.
        let roll = rng.below(100);
        let retried = roll < 85 && rng.below(20) == 0;
        let ev = |seq: u32, kind, at: i64, attempt| Event {
            event_id: format!("{record_id}-{seq}"),
            kind,
            record_id: record_id.clone(),
            occurred_at: Micros(at),
            attempt,
            identity: Identity::default(),
            progress: None,
            fail_code: None,
            fail_reason: None,
        };
        let mut queued = ev(0, EventType::Queued, t0, 1);
        queued.identity = identity.clone();
        out.push(queued);
        if roll >= 97 {
            continue; // still waiting
        }
        let mut attempt = 1;
        let mut t = t0 + 5_000_000;
        let mut seq = 1;
        if retried {
            let mut failed = ev(seq, EventType::Failed, t, 1);
            failed.fail_code = Some("CBR.9001".into());
            failed.fail_reason = Some("network interrupted".into());
            out.push(failed);
            seq += 1;
            attempt = 2;
            t += 30_000_000;
        }
        let mut started = ev(seq, EventType::Started, t, attempt);
        started.progress = Some(0);
        if late_destination {
            started.identity.fields[Field::DestinationRegion as usize] = destination;
        }
        out.push(started);
        let mut progress = ev(seq + 1, EventType::Progress, t + 60_000_000, attempt);
        progress.progress = Some(20 + rng.below(70) as u8);
        out.push(progress);
        let end = t + 120_000_000 + rng.below(600_000_000) as i64;
        let mut last = ev(seq + 2, EventType::Succeeded, end, attempt);
        match roll {
            0..=84 => {
                let mut id = Identity::default();
                set(&mut id, Field::DestinationCheckpointId, uuid(&mut rng));
                set(&mut id, Field::DestinationCheckpointItemId, uuid(&mut rng));
                last.identity = id;
            }
            85..=89 => {
                last.kind = EventType::Failed;
                last.fail_code = Some(format!("CBR.{}", 1000 + rng.below(8)));
                last.fail_reason = Some("destination vault capacity exceeded".into());
            }
            90..=92 => {
                last.kind = EventType::Skipped;
                last.fail_reason = Some("an identical replica already exists".into());
            }
            _ => continue, // still replicating
        }
        out.push(last);
    }
    out
}

/// Perturbs a stream as a real transport would: swaps some neighbours (out
/// of order) and repeats some events (producer retries).
pub fn deliver(events: &[Event], seed: u64) -> Vec<Event> {
    let mut rng = Rng::new(seed);
    let mut out: Vec<Event> = Vec::with_capacity(events.len() + events.len() / 20);
    for e in events {
        out.push(e.clone());
        if rng.below(25) == 0 {
            out.push(e.clone());
        }
    }
    for i in 1..out.len() {
        if rng.below(10) == 0 {
            out.swap(i - 1, i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_deterministic_and_decodable() {
        let shape = Shape {
            records: 200,
            projects: 4,
            regions: 5,
            seed: 7,
        };
        let a = events(&shape);
        assert_eq!(a, events(&shape));
        for e in deliver(&a, 1) {
            let bytes = serde_json::to_vec(&e.to_json()).unwrap();
            assert_eq!(
                crate::event::decode(Some(e.record_id.as_bytes()), Some(&bytes)).unwrap(),
                e
            );
        }
    }
}
