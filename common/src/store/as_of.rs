//! A record as of a moment `T` of event time (`occurred_at`): the state
//! folded from exactly its events that occurred before `T`, read from its
//! own audit trail — so the answer is the same whatever order or moment the
//! events arrived in, and costs one record's trail. An accepted gap on the
//! record's partition (retention ran ahead, or the topic was recreated)
//! means events of any time may never have been applied, and a store that
//! is itself the projection as of `U` (`replay --until`) holds nothing
//! after `U`: those cannot be answered, and say so rather than answer from
//! part of a history.

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
    /// Record `id` as listed under `project` as of `t`: `None` when it had
    /// no event before `t`, or was not listed under `project` then. A
    /// record listed under `project` neither then nor now is `None` before
    /// any refusal, so a refusal never tells another project's reader that
    /// it exists.
    pub fn as_of(&self, project: &str, id: &str, t: Micros) -> Result<Option<AsOf>, StoreError> {
        if let Some(u) = self.until() {
            if t > u {
                return Err(StoreError::query(
                    "as_of",
                    format!(
                        "this store is the projection as of {} (made by `tracker replay \
                         --until`): it holds no event after that, so it cannot answer as of a \
                         later time",
                        u.render()
                    ),
                ));
            }
        }
        let view = self.view();
        let trail = view.events(id)?;
        let Some(first) = trail.first() else {
            return Ok(None);
        };
        let (topic, partition) = (first.topic.clone(), first.partition);
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
        let Some(state) = fold_all(&folded) else {
            return Ok(None);
        };
        let listed_then = state.projects().contains(&project);
        if !listed_then && view.get(project, id)?.is_none() {
            return Ok(None);
        }
        if let Some(g) = self
            .accepted_gaps()?
            .into_iter()
            .find(|g| g.topic == topic && g.partition == partition)
        {
            let what = match g.kind {
                GapKind::RetentionGap => "a retention gap",
                GapKind::TopicReset => "a topic reset",
            };
            return Err(StoreError::query(
                "as_of",
                format!(
                    "record {id} is in partition {partition} of topic {topic}, where offsets \
                     from {} were skipped ({what} accepted at {}): its events of any time may \
                     be missing, so no state of it as of a time can be answered",
                    g.from,
                    g.accepted_at.render()
                ),
            ));
        }
        Ok(listed_then.then_some(AsOf { state, events }))
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
                    for project in crate::store::tests::PROJECTS {
                        // Listed under the project then: as the reference folds it.
                        let then = want.get(&id).filter(|r| {
                            [&r.source_project_id, &r.destination_project_id]
                                .iter()
                                .any(|p| p.as_deref() == Some(project))
                        });
                        let have = store.as_of(project, &id, t).unwrap();
                        let view = have.as_ref().map(|a| a.state.view(&id));
                        prop_assert_eq!(view.as_ref(), then, "{} in {:?} as of {:?}", id, project, t);
                        if have.is_some() {
                            let n = before.iter().filter(|e| e.record_id == id).count();
                            prop_assert_eq!(have.map_or(0, |a| a.events.len()), n);
                        }
                    }
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
            // Nothing after `t` is in it: asked as of a later time, it says so.
            if let Some(e) = events.first() {
                let later = store.as_of("p1", &e.record_id, Micros(t.0 + 1));
                prop_assert!(matches!(later, Err(StoreError::Query { param: "as_of", .. })), "{:?}", later);
            }
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
        let err = store
            .as_of(&crate::sample::project_id(0), a, far)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("as_of: ") && err.contains("retention gap"),
            "{err}"
        );
        // Asked under a project it was never listed in: not found, the gap
        // not named (that would say the record exists).
        assert!(store.as_of("another", a, far).unwrap().is_none());
        assert!(store
            .as_of(&crate::sample::project_id(0), &b, far)
            .unwrap()
            .is_some());
    }
}
