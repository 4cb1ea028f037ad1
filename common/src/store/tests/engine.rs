//! The store on its engine: reopens, flushes and merges against the
//! reference, and one version per pinned read.

use proptest::prelude::*;

use super::*;

/// A pinned store reads the version it was pinned to, whatever batches
/// (and, with the unit tests' tiny memtable, flushes and merges) land after
/// it: what one request reads is one version.
#[test]
fn a_pinned_store_reads_one_version_whatever_lands_meanwhile() {
    let events = crate::sample::events(&crate::sample::Shape {
        records: 200,
        projects: 2,
        regions: 3,
        seed: 5,
    });
    let store = Store::temporary().unwrap();
    let (first, rest) = events.split_at(events.len() / 2);
    store.apply_batch(&messages(first)).unwrap();
    let project = crate::sample::project_id(0);
    let q = ListQuery {
        with_count: Some(true),
        limit: Some(20),
        ..Default::default()
    };
    let summary = SummaryQuery::default();
    let before = (
        store.view().list(&project, &q).unwrap(),
        store.view().summaries(&project, &summary).unwrap(),
    );
    let pinned = store.view();
    let all: Vec<Message> = messages(&events).into_iter().skip(first.len()).collect();
    for chunk in all.chunks(10) {
        store.apply_batch(chunk).unwrap();
    }
    assert!(!rest.is_empty());
    assert_eq!(
        (
            pinned.list(&project, &q).unwrap(),
            pinned.summaries(&project, &summary).unwrap()
        ),
        before
    );
    let after = store.view().list(&project, &q).unwrap();
    assert_ne!(after.count, before.0.count, "the latest version moved on");
    assert_eq!(
        store.view().digest().unwrap(),
        crate::testkit::reference::digest(&crate::testkit::reference::fold_events(&events))
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The store equals the independent reference after any sequence of
    /// batches, kills and clean stops, with the engine's flushes and merges
    /// between them (unit tests' engine settings flush every few batches):
    /// what a reopen recovers from the event log after the last flush
    /// (`recover`), over the runs, is the projection — after a kill (the
    /// memtable lost), a flush or a merge killed before it installed, or a
    /// clean stop (nothing left to recover). Redeliveries apply nothing twice.
    #[test]
    fn the_store_equals_the_reference_across_flushes_merges_kills_and_reopens(
        events in proptest::collection::vec(arb_event(), 0..80),
        cuts in proptest::collection::vec(0usize..100, 0..8),
        reopen in proptest::collection::vec(0u8..6, 8),
    ) {
        let mut seen = std::collections::HashSet::new();
        let events: Vec<Event> = events.into_iter().filter(|e| seen.insert((e.record_id.clone(), e.event_id.clone()))).collect();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), 1 << 20).unwrap();
        for (i, batch) in batches(&events, &cuts, 2).iter().enumerate() {
            store.apply_batch(batch).unwrap();
            let how = reopen[i % reopen.len()];
            match how {
                // Killed: the memtable is lost.
                1 => {}
                // Killed in a flush, its run written and not installed.
                2 => store.lsm.write_without_install(false, false).unwrap(),
                // Killed in a merge, likewise.
                4 => store.lsm.write_without_install(true, false).unwrap(),
                // A clean stop: nothing is left to recover.
                3 => {
                    store.close().unwrap();
                    let logged = recover::position_after(store.totals().next_log_chunk);
                    prop_assert_eq!(store.lsm.flushed_through(), logged);
                }
                _ => continue,
            }
            drop(store);
            store = Store::open(dir.path(), 1 << 20).unwrap();
        }
        let want = crate::testkit::reference::fold_events(&events);
        prop_assert_eq!(store.view().digest().unwrap(), crate::testkit::reference::digest(&want));
        prop_assert_eq!(store.totals().applied as usize, events.len());
        if let Err(e) = store.check_consistency().unwrap() {
            prop_assert!(false, "{}", e);
        }
        // Records are numbered in the order their first events were
        // logged, whatever the batches, kills and recoveries.
        let mut first_seen = Vec::new();
        let mut ids = std::collections::HashSet::new();
        for e in &events {
            if ids.insert(&e.record_id) {
                first_seen.push(e.record_id.clone());
            }
        }
        let numbered: Vec<String> = store.view().numbered_records().map(|r| r.unwrap().1.id).collect();
        prop_assert_eq!(numbered, first_seen);
    }
}

/// No value the store writes to sled is past its blob threshold (~128
/// KiB: a larger value is a file of its own, never fsynced), even for a
/// batch of the default size changing thousands of records: the change log
/// and the event log are written in pieces.
#[test]
fn a_default_sized_batch_writes_no_value_past_sleds_blob_threshold() {
    let events = crate::sample::events(&crate::sample::Shape {
        records: 5000,
        projects: 3,
        regions: 4,
        seed: 3,
    });
    // Ids as long as the UUIDs real platforms use, and then some.
    let events: Vec<Event> = events
        .into_iter()
        .map(|mut e| {
            e.record_id = format!("{:0>48}", e.record_id);
            e
        })
        .collect();
    // One event of each record: 5,000 changes in the one batch.
    let mut seen = std::collections::HashSet::new();
    let firsts: Vec<Event> = events
        .into_iter()
        .filter(|e| seen.insert(e.record_id.clone()))
        .collect();
    let store = Store::temporary().unwrap();
    let all = messages(&firsts);
    assert_eq!(all.len(), 5000);
    store.apply_batch(&all).unwrap();
    let biggest = store
        .tree
        .iter()
        .map(|kv| kv.unwrap())
        .map(|(k, v)| (v.len(), String::from_utf8_lossy(&k[..1]).into_owned()))
        .max()
        .unwrap();
    assert!(
        biggest.0 <= 100 << 10,
        "a value of {} bytes under {:?}",
        biggest.0,
        biggest.1
    );
    store.assert_internally_consistent();
    // The change log in pieces still reads back as one sequence.
    match store.view().changes_since(0).unwrap() {
        changes::Since::Changes(c) => {
            assert_eq!(c.len(), 5000);
            assert_eq!(c.len() as u64, store.feed().head());
            assert!(c.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        }
        changes::Since::Reset | changes::Since::Ahead => panic!("a reset"),
    }
}
