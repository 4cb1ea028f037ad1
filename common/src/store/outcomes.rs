//! What the write path did since the store was opened, for `/metrics` and
//! the alerts over it: each batch's apply time, and the records whose status
//! changed, by new status and region pair. Per region pair, never per record
//! or project: the series stay as few as the routes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::histogram::Histogram;
use crate::record::{Field, RecordState, Status};

/// Upper bounds of a batch's apply time, in seconds: a small batch takes
/// well under a millisecond, a full one with a flush up to seconds.
pub const APPLY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// (new status, source region, destination region); a region a record does
/// not have yet is "".
pub type Route = (Status, String, String);

/// A batch's tally of status changes per route, its regions borrowed from
/// the records: nothing allocated per record on the writer's path, only per
/// route a batch met (a few dozen) when it is added to the totals.
pub(super) type Tally<'a> = BTreeMap<(Status, &'a str, &'a str), u64>;

pub struct Outcomes {
    inner: Mutex<Snapshot>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub apply: Histogram,
    pub status_changes: BTreeMap<Route, u64>,
}

impl Default for Outcomes {
    fn default() -> Outcomes {
        Outcomes {
            inner: Mutex::new(Snapshot {
                apply: Histogram::new(&APPLY_BUCKETS),
                status_changes: BTreeMap::new(),
            }),
        }
    }
}

impl Outcomes {
    pub fn snapshot(&self) -> Snapshot {
        self.inner.lock().expect("outcomes lock").clone()
    }

    /// A batch written: its time, and the tally of the records whose status
    /// it changed (a new record counts as changed). One lock per batch.
    pub(super) fn batch(&self, secs: f64, changed: Tally<'_>) {
        let mut g = self.inner.lock().expect("outcomes lock");
        g.apply.observe(secs);
        for ((status, source, destination), n) in changed {
            let route = (status, source.to_owned(), destination.to_owned());
            *g.status_changes.entry(route).or_default() += n;
        }
    }
}

/// Counts a record's status change in the batch's tally under its route,
/// unless the batch left its status as it was.
pub(super) fn tally<'a>(
    tally: &mut Tally<'a>,
    before: Option<&RecordState>,
    after: &'a RecordState,
) {
    if before.is_some_and(|b| b.status() == after.status()) {
        return;
    }
    let region = |f| after.get(f).unwrap_or_default();
    let route = (
        after.status(),
        region(Field::SourceRegion),
        region(Field::DestinationRegion),
    );
    *tally.entry(route).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// queued, started, progress, succeeded: one record, source region-1.
    fn spec() -> Vec<crate::store::Message> {
        let events: Vec<_> = crate::record::tests::SPEC_EVENTS
            .iter()
            .map(|s| crate::decode(None, Some(s.as_bytes())).unwrap())
            .collect();
        crate::testkit::messages(&events, 0)
    }

    #[test]
    fn a_batch_counts_the_status_it_leaves_each_record_in_by_region_pair() {
        let store = Store::temporary().unwrap();
        let ms = spec();
        // queued then started in one batch: the record is new, counted once,
        // as replicating; the progress event leaves it replicating.
        store.apply_batch(&ms[..2]).unwrap();
        store.apply_batch(&ms[2..3]).unwrap();
        store.apply_batch(&ms[3..]).unwrap();
        // Redelivered: already applied, nothing changes.
        store.apply_batch(&ms).unwrap();
        let o = store.outcomes();
        let route = |s| (s, "region-1".to_owned(), "region-2".to_owned());
        assert_eq!(
            o.status_changes,
            BTreeMap::from([(route(Status::Replicating), 1), (route(Status::Success), 1)])
        );
        assert_eq!(o.apply.count(), 4);
    }

    /// A batch's tally adds to what earlier batches counted, per route: two
    /// records on one route in one batch count twice, a new route (a region
    /// pair first met) is added beside the old.
    #[test]
    fn routes_add_up_across_records_and_batches() {
        let store = Store::temporary().unwrap();
        // Each record queued: a new record, counted as waiting.
        let queued = |id: &str, to: &str| {
            let j = crate::record::tests::SPEC_EVENTS[0]
                .replace("30b97bac-532c-4c51-96fa-4b3a32253c12", id)
                .replace("\"e-1\"", &format!("\"q-{id}\""))
                .replace("\"region-2\"", &format!("\"{to}\""));
            crate::decode(None, Some(j.as_bytes())).unwrap()
        };
        let batch = |events: &[crate::Event], from| {
            let ms = crate::testkit::messages(events, from);
            store.apply_batch(&ms).unwrap();
        };
        batch(&[queued("a", "region-2"), queued("b", "region-2")], 0);
        batch(&[queued("c", "region-2"), queued("d", "region-3")], 2);
        let route = |to: &str| {
            (
                Status::WaitingReplicate,
                "region-1".to_owned(),
                to.to_owned(),
            )
        };
        assert_eq!(
            store.outcomes().status_changes,
            BTreeMap::from([(route("region-2"), 3), (route("region-3"), 1)])
        );
    }
}
