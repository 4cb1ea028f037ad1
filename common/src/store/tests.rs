use proptest::prelude::*;

use super::*;
use crate::event::EventType;
use crate::instant::Micros;
use crate::record::{Identity, Status};
use crate::testkit;

fn msg(partition: i32, offset: i64, e: &Event) -> Message {
    Message {
        topic: "t".into(),
        partition,
        offset,
        key: Some(e.record_id.clone().into_bytes()),
        payload: Some(serde_json::to_vec(&e.to_json()).unwrap()),
    }
}

pub(super) fn messages(events: &[Event]) -> Vec<Message> {
    testkit::messages(events, 0)
}

fn spec_events() -> Vec<Event> {
    crate::record::tests::SPEC_EVENTS
        .iter()
        .map(|s| decode(None, Some(s.as_bytes())).unwrap())
        .collect()
}

#[test]
fn batch_is_applied_once_and_listed_under_both_projects() {
    let store = Store::temporary().unwrap();
    let ms = messages(&spec_events());
    let out = store.apply_batch(&ms[..2]).unwrap();
    assert_eq!(out.applied, 2);
    // Redelivery of an applied offset is ignored; the rest is applied.
    let out = store.apply_batch(&ms).unwrap();
    assert_eq!((out.already_applied, out.applied), (2, 2));
    assert_eq!(store.checkpoints().get(&("t".into(), 0)), Some(&4));
    let q = ListQuery {
        with_count: Some(true),
        ..Default::default()
    };
    for project in [
        "e0b97bac-532c-4c51-96fa-4b3a32253be4",
        "45899f0e-1c07-49db-8bb9-03e0de2981123",
    ] {
        let page = store.view().list(project, &q).unwrap();
        assert_eq!(page.count, Some(1));
        assert_eq!(page.records[0].status, Status::Success);
    }
    assert_eq!(store.view().list("other", &q).unwrap().count, Some(0));
    let log = store
        .view()
        .events("30b97bac-532c-4c51-96fa-4b3a32253c12")
        .unwrap();
    assert_eq!(
        log.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(log.iter().all(|e| e.effect == EventEffect::Changed));
    store.assert_internally_consistent();
}

#[test]
fn duplicates_are_logged_but_change_nothing_and_bad_input_is_quarantined() {
    let store = Store::temporary().unwrap();
    let e = &spec_events()[0];
    let mut ms = vec![msg(0, 0, e), msg(1, 0, e)];
    ms.push(Message {
        topic: "t".into(),
        partition: 0,
        offset: 1,
        key: None,
        payload: Some(b"{oops".to_vec()),
    });
    let out = store.apply_batch(&ms).unwrap();
    assert_eq!((out.applied, out.duplicates, out.quarantined), (1, 1, 1));
    let log = store.view().events(&e.record_id).unwrap();
    assert_eq!(
        log.iter().map(|e| e.effect).collect::<Vec<_>>(),
        vec![EventEffect::Changed, EventEffect::Duplicate]
    );
    let q = store.view().quarantine(0, 10).unwrap();
    assert_eq!(
        (q.len(), q[0].reason_code.as_str(), q[0].offset),
        (1, "not_json", 1)
    );
    assert_eq!(q[0].raw, b"{oops");
    assert_eq!(store.totals().quarantined, 1);
    assert_eq!(store.checkpoints().get(&("t".into(), 0)), Some(&2));
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let digest = {
        let store = Store::open(dir.path(), 16 << 20).unwrap();
        store.apply_batch(&messages(&spec_events())).unwrap();
        store.flush().unwrap();
        store.view().digest().unwrap()
    };
    let store = Store::open(dir.path(), 16 << 20).unwrap();
    assert_eq!(store.view().digest().unwrap(), digest);
    assert_eq!(store.totals().applied, 4);
    assert_eq!(store.checkpoints().get(&("t".into(), 0)), Some(&4));
}

// ---- generated worlds -------------------------------------------------------

/// sled in `dir`, once the store that had it lets go: sled's threads can
/// hold its lock a moment after the store is dropped.
fn open_sled(dir: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let segment = super::open::segment_size(dir);
        match sled::Config::new().path(dir).segment_size(segment).open() {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("could not acquire lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

mod engine;
mod golden;
mod listing;
mod lists;
mod maintenance;
mod ownership;
mod recovery;

pub(super) const PROJECTS: [&str; 3] = ["p1", "p2", "p\0x"];
const HOUR: i64 = 3_600_000_000;

/// Events with every optional field present or absent, identity values in
/// conflict across events (records move between projects), and times spread
/// over four days so deep offsets cross hour boundaries.
pub(super) fn arb_event() -> impl Strategy<Value = Event> {
    let opt = |vals: &'static [&'static str]| {
        proptest::option::of(proptest::sample::select(vals).prop_map(str::to_owned))
    };
    (
        (
            0u8..12,
            0u8..40,
            proptest::sample::select(EventType::ALL.to_vec()),
            1u32..3,
            // Half the events crowd into 12 instants: ties on created_at and
            // updated_at are common, and markers must place themselves among them.
            (prop_oneof![0i64..96, 0i64..4], 0i64..3),
            proptest::option::of(0u8..=100),
        ),
        [
            opt(&["r1", "r2"]),
            opt(&PROJECTS),
            opt(&["c1", "c2"]),
            opt(&["i1", "i2"]),
            opt(&["r1", "r3"]),
            opt(&PROJECTS),
            opt(&["c3", "c4"]),
            opt(&["i2", "i3"]),
            opt(&["plan1", "plan2"]),
        ],
        proptest::option::of(any::<bool>()),
        (opt(&["E1", "E2"]), opt(&["why", "because"])),
    )
        .prop_map(
            |((rec, id, kind, attempt, (hour, sec), progress), fields, auto, (code, reason))| {
                Event {
                    event_id: format!("e{id}"),
                    kind,
                    // `record-1`, `record-10` and `record-11` share the 8
                    // bytes the id order's entries hold: ties there too.
                    record_id: format!("record-{rec}"),
                    occurred_at: Micros(hour * HOUR + sec * 1_000_000),
                    attempt,
                    identity: Identity {
                        fields,
                        auto_trigger: auto,
                    },
                    progress,
                    fail_code: match kind {
                        EventType::Failed => Some(code.unwrap_or_else(|| "E0".into())),
                        _ => code,
                    },
                    fail_reason: reason,
                }
            },
        )
}

pub(super) fn arb_query() -> impl Strategy<Value = (String, ListQuery)> {
    let opt = |vals: &'static [&'static str]| {
        proptest::option::of(proptest::sample::select(vals).prop_map(str::to_owned))
    };
    let rare = |vals: &'static [&'static str]| {
        proptest::option::weighted(0.15, proptest::sample::select(vals).prop_map(str::to_owned))
    };
    let key = (
        proptest::sample::select(SortField::ALL.to_vec()),
        any::<bool>(),
    )
        .prop_map(|(field, asc)| SortKey {
            field,
            dir: if asc { Dir::Asc } else { Dir::Desc },
        });
    (
        proptest::sample::select(PROJECTS.to_vec()),
        (
            opt(&["r1", "r3"]),
            opt(&["r1", "r2"]),
            proptest::option::of(proptest::sample::select(Status::ALL.to_vec())),
        ),
        // Checkpoint filters match a record or two: rarely, so that most
        // queries exercise the planner's walks on non-empty lists.
        (
            rare(&["i1", "i2"]),
            rare(&["i2", "i3"]),
            rare(&["i1", "i2", "i3"]),
        ),
        proptest::option::of(proptest::collection::vec(key, 1..4)),
        proptest::option::of(0usize..12),
        proptest::option::of(0usize..6),
        proptest::option::of(any::<bool>()),
        (
            arb_window(),
            arb_window(),
            proptest::option::of(0u8..12),
            proptest::option::of(arb_stuck()),
        ),
        // Whether the region/checkpoint filters and the windows apply: each
        // only sometimes, so that most lists are long enough to page.
        any::<(bool, bool)>(),
    )
        .prop_map(
            |(
                p,
                (dr, sr, status),
                (si, di, ci),
                sort,
                offset,
                limit,
                with_count,
                (created, updated, marker, stuck),
                (filtered, windowed),
            )| {
                let (dr, sr, si, di, ci) = match filtered {
                    true => (dr, sr, si, di, ci),
                    false => (None, None, None, None, None),
                };
                let (created, updated) = match windowed {
                    true => (created, updated),
                    false => (Window::default(), Window::default()),
                };
                (
                    p.to_owned(),
                    ListQuery {
                        destination_region: dr,
                        source_region: sr,
                        status,
                        source_checkpoint_item_id: si,
                        destination_checkpoint_item_id: di,
                        checkpoint_item_id: ci,
                        created,
                        updated,
                        stuck,
                        sort,
                        // A marker excludes an offset.
                        offset: offset.filter(|_| marker.is_none()),
                        marker: marker.map(|m| format!("record-{m}")),
                        limit,
                        with_count,
                    },
                )
            },
        )
}

/// A window over the generated events' four days: either edge may be open,
/// edges fall on whole hours and in between, and may be crossed (empty).
pub(super) fn arb_window() -> impl Strategy<Value = Window> {
    let edge = proptest::option::of(
        (0i64..100, 0i64..3).prop_map(|(h, s)| Micros(h * HOUR + s * 1_000_000)),
    );
    (edge.clone(), edge).prop_map(|(after, before)| Window { after, before })
}

/// `stuck=true|false` with cutoffs across the generated events' hours.
pub(super) fn arb_stuck() -> impl Strategy<Value = Stuck> {
    let cutoff = (prop_oneof![0i64..100, 0i64..5], 0i64..3)
        .prop_map(|(h, s)| Micros(h * HOUR + s * 1_000_000));
    (any::<bool>(), cutoff.clone(), cutoff).prop_map(
        |(want, replicating_before, waiting_before)| Stuck {
            want,
            replicating_before,
            waiting_before,
        },
    )
}

/// Whether the query has no marker or one the reference lists under the
/// project (the store must refuse any other).
fn listed_marker(events: &[Event], project: &str, q: &ListQuery) -> bool {
    q.marker.as_ref().is_none_or(|m| {
        testkit::reference::fold_events(events)
            .get(m)
            .is_some_and(|r| testkit::reference::listed_under(r, project))
    })
}

/// The list as the independent reference computes it from the events.
fn reference(events: &[Event], project: &str, q: &ListQuery) -> Page {
    testkit::reference::list(&testkit::reference::fold_events(events), project, q)
}

/// Messages for `events` (duplicates at new offsets included), cut into
/// batches; every batch after the first starts by redelivering the last
/// `overlap` messages of the one before (same offsets, as after a restart).
fn batches(events: &[Event], cuts: &[usize], overlap: usize) -> Vec<Vec<Message>> {
    let ms = messages(events);
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (ms.len() + 1)).collect();
    cuts.push(0);
    cuts.push(ms.len());
    cuts.sort_unstable();
    cuts.dedup();
    cuts.windows(2)
        .map(|w| ms[w[0].saturating_sub(overlap)..w[1]].to_vec())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// After random batches, every index entry and count equals the one
    /// rebuilt from the records, and the store-wide counts per status equal
    /// the independent reference's records per status.
    #[test]
    fn indexes_equal_indexes_rebuilt_from_records(
        batches in proptest::collection::vec(proptest::collection::vec(arb_event(), 0..12), 1..6)
    ) {
        let store = Store::temporary().unwrap();
        let mut offset = 0;
        for (i, b) in batches.iter().enumerate() {
            let ms: Vec<Message> = b.iter().map(|e| { offset += 1; msg(0, offset - 1, e) }).collect();
            store.apply_batch(&ms).unwrap();
            if let Err(e) = store.check_consistency().unwrap() {
                prop_assert!(false, "{}", e);
            }
            let folded = testkit::reference::fold_events(batches[..=i].iter().flatten());
            let want: Vec<(Status, u64)> = Status::ALL
                .into_iter()
                .map(|s| (s, folded.values().filter(|r| r.status == s).count() as u64))
                .collect();
            prop_assert_eq!(store.view().records_by_status().unwrap(), want);
        }
    }

    /// List results equal the independent reference after every batch:
    /// events spread over batches, redeliveries of applied offsets,
    /// duplicates at new offsets, identity arriving late.
    #[test]
    fn list_equals_reference(
        events in proptest::collection::vec(arb_event(), 0..60),
        dups in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        cuts in proptest::collection::vec(0usize..80, 0..5),
        overlap in 0usize..4,
        queries in proptest::collection::vec(arb_query(), 1..12),
    ) {
        // One event per event_id per record (an event_id names one event).
        let mut seen = std::collections::HashSet::new();
        let mut events: Vec<Event> = events.into_iter().filter(|e| seen.insert((e.record_id.clone(), e.event_id.clone()))).collect();
        if !events.is_empty() {
            let again: Vec<Event> = dups.iter().map(|i| i.get(&events).clone()).collect();
            events.extend(again);
        }
        let store = Store::temporary().unwrap();
        let mut applied = 0;
        for batch in batches(&events, &cuts, overlap) {
            store.apply_batch(&batch).unwrap();
            applied = applied.max(batch.last().map_or(0, |m| m.offset as usize + 1));
            for (project, q) in &queries {
                if !listed_marker(&events[..applied], project, q) {
                    let refused = matches!(store.view().list(project, q), Err(StoreError::Query { param: "marker", .. }));
                    prop_assert!(refused, "marker not listed: {:?} in {}", q, project);
                    continue;
                }
                let want = reference(&events[..applied], project, q);
                let have = store.view().list(project, q).unwrap();
                prop_assert_eq!(have, want, "query {:?} in {} after {} events", q, project, applied);
            }
        }
        if let Err(e) = store.check_consistency().unwrap() {
            prop_assert!(false, "{}", e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Walking a list by `next_marker` visits exactly the records that pages
    /// by `offset` do, in the same order, for any filters, sort and window.
    #[test]
    fn marker_pages_equal_offset_pages(
        events in proptest::collection::vec(arb_event(), 0..80),
        queries in proptest::collection::vec(arb_query(), 1..6),
        page in 1usize..5,
    ) {
        let mut seen = std::collections::HashSet::new();
        let events: Vec<Event> = events.into_iter().filter(|e| seen.insert((e.record_id.clone(), e.event_id.clone()))).collect();
        let store = Store::temporary().unwrap();
        store.apply_batch(&messages(&events)).unwrap();
        for (project, q) in queries {
            let q = ListQuery { marker: None, offset: None, with_count: None, limit: Some(page), ..q };
            let ids = |p: &Page| p.records.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
            let mut by_offset = Vec::new();
            for n in 0.. {
                let p = store.view().list(&project, &ListQuery { offset: Some(n * page), ..q.clone() }).unwrap();
                by_offset.extend(ids(&p));
                if p.records.len() < page {
                    break;
                }
            }
            let mut by_marker = Vec::new();
            let mut marker = None;
            loop {
                let p = store.view().list(&project, &ListQuery { marker: marker.clone(), ..q.clone() }).unwrap();
                by_marker.extend(ids(&p));
                prop_assert!(by_marker.len() <= by_offset.len(), "marker walk runs past the list: {:?}", q);
                match p.next_marker {
                    None => break,
                    Some(next) => {
                        prop_assert_eq!(Some(&next), by_marker.last());
                        marker = Some(next);
                    }
                }
            }
            prop_assert_eq!(by_marker, by_offset, "{:?} in {}", q, project);
        }
    }
}

#[test]
fn compare_finds_planted_differences() {
    let a = Store::temporary().unwrap();
    let b = Store::temporary().unwrap();
    let ms = messages(&spec_events());
    a.apply_batch(&ms).unwrap();
    b.apply_batch(&ms[..3]).unwrap();
    let c = verify::compare(&a, &b, 10).unwrap();
    assert!(!c.equal());
    assert_eq!(
        c.differing,
        vec!["30b97bac-532c-4c51-96fa-4b3a32253c12".to_owned()]
    );
    b.apply_batch(&ms).unwrap();
    assert!(verify::compare(&a, &b, 10).unwrap().equal());
}
