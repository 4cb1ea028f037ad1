//! Long lists from the sample generator (thousands of records over hours,
//! lists over many blocks, long ties) and hand-built edge cases: deep
//! offsets and markers, every two-key sort, window edges on every path, a
//! marker outside the filters, the stuck totals — each against the reference.

use super::*;

/// Markers deep into long lists, for every sort and with windows, against
/// the reference.
#[test]
fn deep_markers_and_windows_match_the_reference() {
    let (events, store) = sample_store();
    let records = testkit::reference::fold_events(&events);
    let project = crate::sample::project_id(0);
    let start = events.iter().map(|e| e.occurred_at).min().unwrap();
    let windows = [
        Window::default(),
        Window {
            after: Some(Micros(start.0 + HOUR)),
            before: Some(Micros(start.0 + 2 * HOUR + 1)),
        },
    ];
    for field in SortField::ALL {
        for dir in [Dir::Asc, Dir::Desc] {
            for status in [None, Some(Status::Success)] {
                for (created, updated) in [
                    (windows[0], windows[0]),
                    (windows[1], windows[0]),
                    (windows[0], windows[1]),
                ] {
                    let q = ListQuery {
                        status,
                        created,
                        updated,
                        sort: Some(vec![SortKey { field, dir }]),
                        limit: Some(40),
                        with_count: Some(true),
                        ..Default::default()
                    };
                    let all = testkit::reference::list(
                        &records,
                        &project,
                        &ListQuery {
                            limit: Some(1000),
                            ..q.clone()
                        },
                    );
                    for at in [0, 700, all.records.len().saturating_sub(1)] {
                        let Some(m) = all.records.get(at) else {
                            continue;
                        };
                        let q = ListQuery {
                            marker: Some(m.id.clone()),
                            ..q.clone()
                        };
                        assert_eq!(
                            store.view().list(&project, &q).unwrap(),
                            testkit::reference::list(&records, &project, &q),
                            "{q:?}"
                        );
                    }
                    let q = ListQuery {
                        offset: Some(300),
                        ..q
                    };
                    assert_eq!(
                        store.view().list(&project, &q).unwrap(),
                        testkit::reference::list(&records, &project, &q),
                        "{q:?}"
                    );
                }
            }
        }
    }
}

/// ~3 hours of sample records (one every 2 s) in two projects: deep offsets
/// cross hour boundaries, lists span many blocks, plans and regions tie.
fn sample_store() -> (Vec<Event>, Store) {
    let events = crate::sample::events(&crate::sample::Shape {
        records: 5000,
        projects: 2,
        regions: 3,
        seed: 3,
    });
    let store = Store::temporary().unwrap();
    for chunk in messages(&events).chunks(4000) {
        store.apply_batch(chunk).unwrap();
    }
    store.assert_internally_consistent();
    (events, store)
}

#[test]
fn every_two_key_sort_matches_the_reference_on_long_ties() {
    let (events, store) = sample_store();
    let records = testkit::reference::fold_events(&events);
    let project = crate::sample::project_id(0);
    for first in SortField::ALL {
        for second in SortField::ALL.into_iter().filter(|f| *f != first) {
            for (d1, d2) in [(Dir::Asc, Dir::Desc), (Dir::Desc, Dir::Asc)] {
                for offset in [0, 1500] {
                    let q = ListQuery {
                        sort: Some(vec![
                            SortKey {
                                field: first,
                                dir: d1,
                            },
                            SortKey {
                                field: second,
                                dir: d2,
                            },
                        ]),
                        offset: Some(offset),
                        limit: Some(60),
                        ..Default::default()
                    };
                    assert_eq!(
                        store.view().list(&project, &q).unwrap(),
                        testkit::reference::list(&records, &project, &q),
                        "{q:?}"
                    );
                }
            }
        }
    }
}

/// A `plan_id` sort then `created_at` walks each plan's entries in the
/// `created_at` direction (`walk.rs`, no tie run gathered): every page by
/// marker, from the first to the last, equals the reference's, and a
/// walk by markers visits every record once — in all four directions,
/// with plans a third of which are null (one long group).
#[test]
fn plan_then_created_pages_by_marker_match_the_reference() {
    let (events, store) = sample_store();
    let records = testkit::reference::fold_events(&events);
    let project = crate::sample::project_id(0);
    let all = testkit::reference::list(
        &records,
        &project,
        &ListQuery {
            with_count: Some(true),
            limit: Some(0),
            ..Default::default()
        },
    )
    .count
    .unwrap();
    for d1 in [Dir::Asc, Dir::Desc] {
        for d2 in [Dir::Asc, Dir::Desc] {
            let q = ListQuery {
                sort: Some(vec![
                    SortKey {
                        field: SortField::PlanId,
                        dir: d1,
                    },
                    SortKey {
                        field: SortField::CreatedAt,
                        dir: d2,
                    },
                ]),
                limit: Some(97),
                ..Default::default()
            };
            let (mut marker, mut seen) = (None, 0);
            loop {
                let q = ListQuery {
                    marker: marker.clone(),
                    ..q.clone()
                };
                let page = store.view().list(&project, &q).unwrap();
                assert_eq!(
                    page,
                    testkit::reference::list(&records, &project, &q),
                    "{q:?}"
                );
                seen += page.records.len() as u64;
                match page.next_marker {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
            assert_eq!(seen, all, "{d1:?} {d2:?}");
        }
    }
}

#[test]
fn deep_offsets_skip_whole_hours_exactly() {
    let (events, store) = sample_store();
    let project = crate::sample::project_id(0);
    for dir in [Dir::Asc, Dir::Desc] {
        for status in [None, Some(Status::Success)] {
            for offset in [1999, 2000, 2345, 3001, 3999, 9000] {
                let q = ListQuery {
                    status,
                    sort: Some(vec![SortKey {
                        field: SortField::CreatedAt,
                        dir,
                    }]),
                    offset: Some(offset),
                    limit: Some(37),
                    with_count: Some(true),
                    ..Default::default()
                };
                assert_eq!(
                    store.view().list(&project, &q).unwrap(),
                    reference(&events, &project, &q),
                    "{q:?}"
                );
            }
        }
    }
}

/// Windows are half-open on both timestamps, on every path: walks of the
/// postings and of each order, filtered walks, and the checkpoint lookup.
#[test]
fn windows_include_after_and_exclude_before_on_every_path() {
    let first = spec_events()[0].clone();
    let t0 = first.occurred_at;
    // r0, r1, r2 created one second apart; each updated a minute later.
    let mut events = Vec::new();
    for i in 0..3i64 {
        let mut e = first.clone();
        e.record_id = format!("r{i}");
        e.occurred_at = Micros(t0.0 + i * 1_000_000);
        let mut later = spec_events()[1].clone();
        later.record_id = e.record_id.clone();
        later.occurred_at = Micros(e.occurred_at.0 + 60_000_000);
        events.extend([e, later]);
    }
    let store = Store::temporary().unwrap();
    store.apply_batch(&messages(&events)).unwrap();
    let project = "e0b97bac-532c-4c51-96fa-4b3a32253be4";
    let at = |i: i64| Some(Micros(t0.0 + i * 1_000_000));
    let windows = [
        (
            Window {
                after: at(1),
                before: at(2),
            },
            Window::default(),
        ),
        (
            Window::default(),
            Window {
                after: at(61),
                before: at(62),
            },
        ),
    ];
    let sorts = [
        None,
        Some(SortField::UpdatedAt),
        Some(SortField::Id),
        Some(SortField::PlanId),
        Some(SortField::Status),
    ];
    for (created, updated) in windows {
        for sort in sorts {
            for dir in [Dir::Asc, Dir::Desc] {
                for status in [None, Some(Status::Replicating)] {
                    for checkpoint in [
                        None,
                        Some(
                            first
                                .identity
                                .get(crate::record::Field::SourceCheckpointItemId)
                                .unwrap()
                                .to_owned(),
                        ),
                    ] {
                        let q = ListQuery {
                            created,
                            updated,
                            status,
                            checkpoint_item_id: checkpoint,
                            sort: sort.map(|field| vec![SortKey { field, dir }]),
                            with_count: Some(true),
                            ..Default::default()
                        };
                        let page = store.view().list(project, &q).unwrap();
                        let ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
                        assert_eq!((ids, page.count), (vec!["r1"], Some(1)), "{q:?}");
                    }
                }
            }
        }
    }
}

/// A marker need not match the filters: one in another status than
/// `status=` asks for is placed by its own status in a status sort (found by
/// the property test in CI).
#[test]
fn a_marker_outside_the_filter_is_placed_by_its_own_values() {
    let queued = spec_events()[0].clone();
    let mut waiting = queued.clone();
    waiting.record_id = "waiting".into();
    let mut started = spec_events()[1].clone();
    started.record_id = "started".into();
    let mut started_identity = queued.clone();
    started_identity.record_id = "started".into();
    let events = vec![waiting, started_identity, started];
    let store = Store::temporary().unwrap();
    store.apply_batch(&messages(&events)).unwrap();
    let records = testkit::reference::fold_events(&events);
    let project = "e0b97bac-532c-4c51-96fa-4b3a32253be4";
    for sort in [
        vec![(SortField::Status, Dir::Desc)],
        vec![(SortField::Status, Dir::Asc)],
        vec![
            (SortField::Status, Dir::Desc),
            (SortField::CreatedAt, Dir::Asc),
        ],
        vec![
            (SortField::CreatedAt, Dir::Desc),
            (SortField::Status, Dir::Asc),
        ],
    ] {
        let q = ListQuery {
            status: Some(Status::Replicating),
            sort: Some(
                sort.iter()
                    .map(|&(field, dir)| SortKey { field, dir })
                    .collect(),
            ),
            marker: Some("waiting".into()),
            ..Default::default()
        };
        assert_eq!(
            store.view().list(project, &q).unwrap(),
            testkit::reference::list(&records, project, &q),
            "{q:?}"
        );
    }
}

/// The stuck metric counts each stuck record once, whatever the projects
/// it is listed under.
#[test]
fn stuck_totals_count_each_stuck_record_once() {
    let (events, store) = sample_store();
    let records = testkit::reference::fold_events(&events);
    let start = events.iter().map(|e| e.occurred_at).min().unwrap();
    let mut seen = 0;
    for hours in [0, 1, 2, 4] {
        let at = Micros(start.0 + hours * HOUR);
        let k = Stuck {
            want: true,
            replicating_before: at,
            waiting_before: Micros(at.0 - HOUR / 2),
        };
        let want: Vec<(Status, u64)> = Stuck::STATUSES
            .into_iter()
            .map(|s| {
                let n = records
                    .values()
                    .filter(|r| r.status == s && testkit::reference::is_stuck(r, &k))
                    .count();
                (s, n as u64)
            })
            .collect();
        assert_eq!(store.view().stuck_totals(&k).unwrap(), want, "{hours}h");
        seen += want.iter().map(|(_, n)| n).sum::<u64>();
    }
    assert!(seen > 0, "the sample has stuck records at these cutoffs");
}

/// Index entries name records by number: records whose entries tie (one
/// `created_at`, one `updated_at`, one id prefix) are ordered by id read
/// from the records, on every path — the posting walk, the orders,
/// `stuck=true` by `created_at` and gathered, an `updated_*` window
/// gathered — with a marker at each of them. Numbered in another order
/// than their ids, which share their first 8 bytes (the id order's entries).
#[test]
fn records_tied_on_their_entries_are_ordered_by_id_on_every_path() {
    let queued = spec_events()[0].clone();
    let mut events: Vec<Event> = ["tied-id-2", "tied-id-1", "tied-id-0"]
        .into_iter()
        .map(|id| Event {
            record_id: id.into(),
            ..queued.clone()
        })
        .collect();
    // Records either side of the tied ones, in every walk's way.
    for (id, by) in [("tied-id-3", 1), ("tied-id-4", -1)] {
        events.push(Event {
            record_id: id.into(),
            occurred_at: Micros(queued.occurred_at.0 + by),
            ..queued.clone()
        });
    }
    let store = Store::temporary().unwrap();
    store.apply_batch(&messages(&events)).unwrap();
    let records = testkit::reference::fold_events(&events);
    let project = "e0b97bac-532c-4c51-96fa-4b3a32253be4";
    let at = queued.occurred_at;
    let stuck = Stuck {
        want: true,
        replicating_before: Micros(at.0 + HOUR),
        waiting_before: Micros(at.0 + HOUR),
    };
    // Holds the three tied ones: gathered (more than `GATHER_MAX` is
    // walked).
    let window = Window {
        after: Some(at),
        before: Some(Micros(at.0 + 1)),
    };
    let mut checked = 0;
    let fields = [
        SortField::CreatedAt,
        SortField::UpdatedAt,
        SortField::Id,
        SortField::Status,
    ];
    // Single keys both ways, and `id` before a key of the other direction:
    // nothing orders past `id`, whose ties follow its own direction, not
    // the last key's.
    let sorts = fields
        .into_iter()
        .flat_map(|field| [Dir::Asc, Dir::Desc].map(|dir| vec![SortKey { field, dir }]))
        .chain([Dir::Asc, Dir::Desc].map(|dir| {
            let other = if dir == Dir::Asc { Dir::Desc } else { Dir::Asc };
            vec![
                SortKey {
                    field: SortField::Id,
                    dir,
                },
                SortKey {
                    field: SortField::CreatedAt,
                    dir: other,
                },
            ]
        }));
    for sort in sorts {
        for (stuck, updated) in [
            (None, Window::default()),
            (Some(stuck), Window::default()),
            (None, window),
        ] {
            let markers = [0, 1, 2, 3].map(|i| Some(format!("tied-id-{i}")));
            let markers = [None].into_iter().chain(markers);
            for (marker, limit) in markers.flat_map(|m| [(m.clone(), 1), (m, 2)]) {
                let q = ListQuery {
                    sort: Some(sort.clone()),
                    stuck,
                    updated,
                    marker,
                    limit: Some(limit),
                    ..Default::default()
                };
                let want = testkit::reference::list(&records, project, &q);
                assert_eq!(store.view().list(project, &q).unwrap(), want, "{q:?}");
                checked += want.records.len();
            }
        }
    }
    assert!(checked > 0);
}
