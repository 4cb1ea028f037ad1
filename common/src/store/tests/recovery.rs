//! Recovery at open from the event log (`recover`): refused for events a
//! tracker that derives differently wrote, and for an entry that no longer
//! folds as it did.

use super::*;

fn sample(records: usize) -> Vec<Event> {
    crate::sample::events(&crate::sample::Shape {
        records,
        projects: 2,
        regions: 3,
        seed: 9,
    })
}

/// Edits the closed store in `dir` through sled itself.
fn edit(dir: &std::path::Path, f: impl FnOnce(&sled::Tree)) {
    let db = open_sled(dir);
    f(&db.open_tree("projection").unwrap());
    db.flush().unwrap();
}

/// The store's digest is the reference fold's of `events`.
fn assert_digest_of_reference(store: &Store, events: &[Event]) {
    let want = crate::testkit::reference::fold_events(events);
    assert_eq!(
        store.view().digest().unwrap(),
        crate::testkit::reference::digest(&want)
    );
}

fn set_fold(tree: &sled::Tree, v: u32) {
    tree.insert(keys::META_FOLD, &v.to_be_bytes()).unwrap();
}

#[test]
fn events_another_fold_derived_are_not_recovered_until_a_clean_stop_flushes_them() {
    let dir = tempfile::tempdir().unwrap();
    let events = sample(2);
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.apply_batch(&messages(&events)).unwrap();
    let logged = recover::position_after(store.totals().next_log_chunk);
    assert!(store.lsm.flushed_through() < logged, "all flushed already");
    drop(store);
    edit(dir.path(), |t| set_fold(t, FOLD_VERSION + 1));
    let err = Store::open(dir.path(), 1 << 20).err().expect("refused");
    let text = err.to_string();
    assert!(matches!(err, StoreError::Fold { .. }), "{text}");
    assert!(
        text.contains(&format!("fold v{}", FOLD_VERSION + 1)),
        "{text}"
    );
    assert!(text.contains("tracker replay --out"), "{text}");
    assert!(Store::open_read_only(dir.path(), 1 << 20).is_err());
    // The tracker that wrote them recovers them, and a clean stop flushes.
    edit(dir.path(), |t| set_fold(t, FOLD_VERSION));
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.close().unwrap();
    drop(store);
    edit(dir.path(), |t| set_fold(t, FOLD_VERSION + 1));
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert_digest_of_reference(&store, &events);
    assert_eq!(
        store.tree.get(keys::META_FOLD).unwrap().unwrap().as_ref(),
        FOLD_VERSION.to_be_bytes(),
        "restamped with the fold that derives from now on"
    );
}

#[test]
fn an_event_log_entry_that_no_longer_folds_as_it_did_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.apply_batch(&messages(&sample(2))).unwrap();
    let chunk = store.lsm.flushed_through();
    drop(store);
    edit(dir.path(), |t| {
        let key = keys::event_log(chunk);
        let v = t.get(&key).unwrap().expect("an unflushed chunk");
        let mut entries = read::log_chunk(&key, &v).unwrap();
        assert_eq!(entries[0].effect, EventEffect::Changed);
        entries[0].effect = EventEffect::Unchanged;
        let raw = postcard::to_allocvec(&entries).unwrap();
        t.insert(&key, zstd::bulk::compress(&raw, 1).unwrap())
            .unwrap();
    });
    let err = Store::open(dir.path(), 1 << 20).err().expect("refused");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(
        err.to_string().contains("entry 0 was folded as Unchanged"),
        "{err}"
    );
}

/// A store of a layout this binary reads unchanged (v17: its run blocks
/// in format 1) opens to read as it is, and its first writable open stamps
/// it and derives nothing again: the same records, read from the old
/// blocks, and ingest carries on.
#[test]
fn a_store_of_a_layout_read_as_is_is_stamped_not_derived_again() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample(40);
    let (events, rest) = all.split_at(all.len() * 3 / 4);
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.apply_batch(&messages(events)).unwrap();
    store.close().unwrap();
    drop(store);
    for old in READS_AS_IS {
        let mut rewritten = 0;
        edit(dir.path(), |t| {
            t.insert(keys::META_LAYOUT, &old.to_be_bytes()).unwrap();
            for kv in t.scan_prefix([crate::lsm::layout::RUN_BLOCK]) {
                let (k, v) = kv.unwrap();
                let v1 = crate::lsm::as_format_1(&k, &v).unwrap();
                t.insert(k, v1).unwrap();
                rewritten += 1;
            }
        });
        assert!(rewritten > 0, "no run block written");
        let read = Store::open_read_only(dir.path(), 1 << 20).unwrap();
        assert_digest_of_reference(&read, events);
        drop(read);
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.recovered_at_open(), 0, "nothing derived again");
        assert_digest_of_reference(&store, events);
        store.assert_internally_consistent();
        assert_eq!(
            store.tree.get(keys::META_LAYOUT).unwrap().unwrap().as_ref(),
            LAYOUT.to_be_bytes()
        );
        store
            .apply_batch(&crate::testkit::messages(rest, events.len()))
            .unwrap();
        assert_digest_of_reference(&store, &all);
        store.close().unwrap();
    }
}

/// A store of an older layout (v6-v10: records keyed by id, or index
/// entries without numbers) is refused opened to read, and upgraded at its
/// first writable open: its engine —
/// runs of keys that meant something else, layout 7's batch logs — is
/// discarded and derived again from its whole event log, so the open
/// recovers every event, and the projection, its indexes and the numbers
/// are what ingest would have written (not the old runs' counts again).
#[test]
fn a_store_of_an_older_layout_is_derived_again_from_its_event_log() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample(40);
    let (events, rest) = all.split_at(all.len() * 3 / 4);
    let (early, late) = events.split_at(events.len() / 2);
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    store.apply_batch(&messages(early)).unwrap();
    store
        .apply_batch(&crate::testkit::messages(late, early.len()))
        .unwrap();
    store.close().unwrap();
    assert!(store.lsm.snapshot().shape().0 > 0, "no run written");
    drop(store);
    edit(dir.path(), |t| {
        t.insert(keys::META_LAYOUT, &9u32.to_be_bytes()).unwrap();
        t.insert(crate::lsm::layout::batch_log(1), b"ops".to_vec())
            .unwrap();
        // Layouts 6 and 7 recorded no fold version.
        t.remove(keys::META_FOLD).unwrap();
    });
    let err = Store::open_read_only(dir.path(), 1 << 20)
        .err()
        .expect("refused");
    assert!(matches!(err, StoreError::Upgrade { found: 9, .. }), "{err}");
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(store.recovered_at_open(), events.len() as u64);
    assert_digest_of_reference(&store, events);
    store.assert_internally_consistent();
    assert_eq!(
        store.tree.get(keys::META_LAYOUT).unwrap().unwrap().as_ref(),
        LAYOUT.to_be_bytes()
    );
    let batch_logs = store.tree.scan_prefix([crate::lsm::layout::BATCH_LOG]);
    assert_eq!(batch_logs.count(), 0);
    // Ingest carries on from the numbers the upgrade gave.
    store
        .apply_batch(&crate::testkit::messages(rest, events.len()))
        .unwrap();
    assert_digest_of_reference(&store, &all);
    store.assert_internally_consistent();
}

/// The event log's encoding is the one layout 7 wrote (raw bytes as a
/// postcard sequence), whatever the Rust type says: older stores' chunks
/// read back, and recovery reads both.
#[test]
fn event_log_entries_encode_as_layout_7_wrote_them() {
    #[derive(serde::Serialize)]
    struct Layout7 {
        seq: u64,
        topic: String,
        partition: i32,
        offset: i64,
        effect: EventEffect,
        raw: Vec<u8>,
    }
    let raw = br#"{"schema_version":1,"event_id":"e\u0000"}"#.to_vec();
    let now = EventLogEntry {
        seq: 300,
        topic: "t".into(),
        partition: 2,
        offset: 70_000,
        effect: EventEffect::Duplicate,
        raw: raw.clone(),
    };
    let then = Layout7 {
        seq: 300,
        topic: "t".into(),
        partition: 2,
        offset: 70_000,
        effect: EventEffect::Duplicate,
        raw,
    };
    let bytes = postcard::to_allocvec(&then).unwrap();
    assert_eq!(postcard::to_allocvec(&now).unwrap(), bytes);
    assert_eq!(postcard::from_bytes::<EventLogEntry>(&bytes).unwrap(), now);
}
