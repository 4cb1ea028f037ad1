//! A record as of a moment `T` of event time (`occurred_at`): the state
//! folded from exactly its events that occurred before `T`, read from its
//! own audit trail — so the answer is the same whatever order or moment the
//! events arrived in, and costs one record's trail. An accepted retention
//! gap on the record's partition means events of any time may never have
//! been applied: such a record cannot be answered as of any time, and says
//! so rather than answer from part of its history.

use super::gaps::GapKind;
use super::{EventLogEntry, Store, StoreError};
use crate::event::decode;
use crate::instant::Micros;
use crate::record::{fold_all, RecordState};

/// A record's state as of a time, and the events it was folded from.
#[derive(Debug, Clone)]
pub struct AsOf {
    pub state: RecordState,
    /// The trail's events that occurred before the time, in arrival order.
    pub events: Vec<EventLogEntry>,
}

impl Store {
    /// Record `id` as of `t`: `None` when it has no event before `t`.
    pub fn as_of(&self, id: &str, t: Micros) -> Result<Option<AsOf>, StoreError> {
        let trail = self.view().events(id)?;
        let Some(first) = trail.first() else {
            return Ok(None);
        };
        if let Some(g) = self.accepted_gaps()?.into_iter().find(|g| {
            g.kind == GapKind::RetentionGap
                && g.topic == first.topic
                && g.partition == first.partition
        }) {
            return Err(StoreError::query(
                "as_of",
                format!(
                    "record {id} is in partition {} of topic {}, where offsets from {} were \
                     skipped (a retention gap accepted at {}): its events of any time may be \
                     missing, so no state of it as of a time can be answered",
                    g.partition,
                    g.topic,
                    g.from,
                    g.accepted_at.render()
                ),
            ));
        }
        let mut folded = Vec::new();
        let mut events = Vec::new();
        for e in trail {
            // Accepted events decode (they were decoded to be accepted).
            let event = decode(None, Some(&e.raw)).map_err(|r| {
                StoreError::corrupt(
                    id.as_bytes(),
                    format!("a logged event no longer decodes: {r}"),
                )
            })?;
            if event.occurred_at < t {
                folded.push(event);
                events.push(e);
            }
        }
        Ok(fold_all(&folded).map(|state| AsOf { state, events }))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::store::tests::{arb_event, messages};
    use crate::testkit::reference;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A record as of any time equals the independent reference fold of
        /// its events before that time — events applied in any batches,
        /// with duplicates — and its events are exactly those.
        #[test]
        fn as_of_equals_the_reference_fold_of_the_events_before(
            events in proptest::collection::vec(arb_event(), 1..60),
            cut in 1usize..60,
            times in proptest::collection::vec(0i64..100, 1..6),
        ) {
            let mut seen = std::collections::HashSet::new();
            let events: Vec<_> = events.into_iter().filter(|e| seen.insert((e.record_id.clone(), e.event_id.clone()))).collect();
            let store = Store::temporary().unwrap();
            // Later events first, in two batches: arrival order is not time order.
            let cut = cut.min(events.len());
            let ms = messages(&[&events[cut..], &events[..cut]].concat());
            let (a, b) = ms.split_at(events.len() - cut);
            store.apply_batch(a).unwrap();
            store.apply_batch(b).unwrap();
            for hour in times {
                let t = Micros(hour * 3_600_000_000 + 1_000_000);
                let before: Vec<_> = events.iter().filter(|e| e.occurred_at < t).cloned().collect();
                let want = reference::fold_events(&before);
                for id in events.iter().map(|e| e.record_id.clone()).collect::<std::collections::BTreeSet<_>>() {
                    let have = store.as_of(&id, t).unwrap();
                    let view = have.as_ref().map(|a| a.state.view(&id));
                    prop_assert_eq!(view.as_ref(), want.get(&id), "{} as of {:?}", id, t);
                    let n = before.iter().filter(|e| e.record_id == id).count();
                    prop_assert_eq!(have.map_or(0, |a| a.events.len()), n);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// A store made as of `t` (`replay --until`) holds the reference
        /// fold of exactly the events before `t`, whatever batches and
        /// order they arrive in: its digest is the reference's, its trails
        /// hold only those events, and the others are counted, not folded.
        #[test]
        fn a_store_until_t_is_the_reference_fold_of_the_events_before_t(
            events in proptest::collection::vec(arb_event(), 0..60),
            cut in 0usize..60,
            hour in 0i64..100,
        ) {
            let mut seen = std::collections::HashSet::new();
            let events: Vec<_> = events.into_iter().filter(|e| seen.insert((e.record_id.clone(), e.event_id.clone()))).collect();
            let t = Micros(hour * 3_600_000_000 + 1_000_000);
            let store = Store::temporary().unwrap();
            store.set_until(t).unwrap();
            let ms = messages(&events);
            let (a, b) = ms.split_at(cut.min(ms.len()));
            let mut after = 0;
            for batch in [a, b] {
                after += store.apply_batch(batch).unwrap().after_until;
            }
            let before: Vec<_> = events.iter().filter(|e| e.occurred_at < t).cloned().collect();
            prop_assert_eq!(after as usize, events.len() - before.len());
            let want = reference::fold_events(&before);
            prop_assert_eq!(store.view().digest().unwrap(), reference::digest(&want));
            let logged: usize = want.keys().map(|id| store.view().events(id).unwrap().len()).sum();
            prop_assert_eq!(logged, before.len());
            prop_assert_eq!(store.until(), Some(t));
        }
    }

    /// A record on a partition with an accepted retention gap is refused,
    /// naming the gap; one on another partition is answered.
    #[test]
    fn a_retention_gap_on_the_records_partition_is_refused() {
        let store = Store::temporary().unwrap();
        let events = crate::sample::events(&crate::sample::Shape {
            records: 2,
            projects: 1,
            regions: 1,
            seed: 1,
        });
        let (a, b) = (
            &events[0].record_id,
            events
                .iter()
                .find(|e| e.record_id != events[0].record_id)
                .unwrap()
                .record_id
                .clone(),
        );
        let mut ms = Vec::new();
        for (partition, id) in [(0, a), (1, &b)] {
            let mine: Vec<_> = events
                .iter()
                .filter(|e| &e.record_id == id)
                .cloned()
                .collect();
            ms.extend(crate::testkit::messages(&mine, 0).into_iter().map(|mut m| {
                m.partition = partition;
                m
            }));
        }
        store.apply_batch(&ms).unwrap();
        let next = ms.iter().filter(|m| m.partition == 0).count() as i64;
        let gap = crate::store::gaps::Gap::classify(next, Some((next + 10, next + 20))).unwrap();
        store.accept_gap("t", 0, &gap, Micros(0)).unwrap();
        let far = Micros(i64::MAX);
        let err = store.as_of(a, far).unwrap_err().to_string();
        assert!(
            err.starts_with("as_of: ") && err.contains("retention gap"),
            "{err}"
        );
        assert!(store.as_of(&b, far).unwrap().is_some());
    }
}
