//! The change log against what live subscribers saw: numbering, resumes,
//! retention and reopens.

use super::*;

fn event(n: usize, record: &str, ty: &str) -> Message {
    Message {
        topic: "t".into(),
        partition: 0,
        offset: n as i64,
        key: Some(record.as_bytes().to_vec()),
        payload: Some(format!(
            r#"{{"schema_version":1,"event_id":"e{n}","type":"{ty}","record_id":"{record}","occurred_at":"2024-05-01T00:00:{:02}Z","record":{{"source_project_id":"p","source_region":"r1","destination_region":"r2"}}}}"#,
            n % 60
        )
        .into_bytes()),
    }
}

fn seqs(s: Since) -> Vec<(u64, String)> {
    match s {
        Since::Changes(c) => c.into_iter().map(|c| (c.seq, c.record.id)).collect(),
        Since::Reset | Since::Ahead => panic!("unexpected reset"),
    }
}

#[test]
fn changes_are_numbered_in_apply_order_and_resume_exactly() {
    let store = Store::temporary().unwrap();
    let mut rx = store.feed().subscribe();
    store
        .apply_batch(&[event(0, "a", "queued"), event(1, "b", "queued")])
        .unwrap();
    // A duplicate changes nothing, so it is no change.
    store
        .apply_batch(&[event(0, "a", "queued"), event(2, "a", "started")])
        .unwrap();
    assert_eq!(store.feed().head(), 3);
    assert_eq!(
        seqs(store.view().changes_since(0).unwrap()),
        [(1, "a".into()), (2, "b".into()), (3, "a".into())]
    );
    assert_eq!(
        seqs(store.view().changes_since(2).unwrap()),
        [(3, "a".into())]
    );
    assert_eq!(seqs(store.view().changes_since(3).unwrap()), []);
    assert_eq!(store.view().changes_since(4).unwrap(), Since::Ahead);
    let live = rx.try_recv().unwrap();
    assert_eq!((live.first, live.last), (1, 2));
    assert_eq!(
        live.changes
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.seq)
            .collect::<Vec<_>>(),
        [1, 2],
        "the first batch, live"
    );
    let live = rx.try_recv().unwrap();
    assert_eq!(
        live.changes.as_ref().unwrap()[0].record.status,
        crate::Status::Replicating
    );
}

#[test]
fn resume_points_older_than_the_retention_reset() {
    let store = Store::temporary().unwrap();
    store.feed().set_change_retention(3);
    for n in 0..6 {
        store
            .apply_batch(&[event(2 * n, &format!("r{n}"), "queued")])
            .unwrap();
    }
    // Six changes, three retained.
    assert_eq!(store.view().changes_since(2).unwrap(), Since::Reset);
    assert_eq!(
        seqs(store.view().changes_since(3).unwrap()),
        [(4, "r3".into()), (5, "r4".into()), (6, "r5".into())]
    );
    let logged = store.tree.scan_prefix([space::CHANGE]).count();
    assert_eq!(logged, 3, "older batches are dropped in the same write");
}

/// A reopened store numbers its changes above everything the last run
/// may have handed out, so a number a client saw is never reused for
/// another change — even one a crash lost.
#[test]
fn a_reopened_store_never_reuses_a_number() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        store.apply_batch(&[event(0, "a", "queued")]).unwrap();
        assert_eq!(store.feed().head(), 1);
    }
    let store = Store::open(dir.path(), 1 << 20).unwrap();
    assert!(store.feed().head() >= RESERVE, "skips the last reservation");
    store.apply_batch(&[event(1, "b", "queued")]).unwrap();
    let b = store.feed().head();
    assert!(b > RESERVE);
    // From the last change of the last run, and from a number that run
    // may have sent but lost: everything since.
    assert_eq!(
        seqs(store.view().changes_since(1).unwrap()),
        [(b, "b".into())]
    );
    assert_eq!(
        seqs(store.view().changes_since(7).unwrap()),
        [(b, "b".into())]
    );
    assert_eq!(
        seqs(store.view().changes_since(0).unwrap()),
        [(1, "a".into()), (b, "b".into())]
    );
    assert_eq!(store.view().changes_since(b + 1).unwrap(), Since::Ahead);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Resuming from any point gives exactly what a live subscriber saw
    /// after it (same sequence numbers, same records), or a reset when —
    /// and only when — part of that is out of the retention.
    #[test]
    fn resumed_changes_equal_the_live_ones(
        batches in proptest::collection::vec(proptest::collection::vec((0usize..6, 0usize..3), 1..6), 1..8),
        retention in 1u64..12,
    ) {
        let store = Store::temporary().unwrap();
        store.feed().set_change_retention(retention);
        let mut rx = store.feed().subscribe();
        let mut n = 0;
        let mut seen: Vec<(u64, String)> = Vec::new();
        for b in &batches {
            let msgs: Vec<Message> = b.iter().map(|(r, t)| {
                n += 1;
                event(n, &format!("r{r}"), ["queued", "started", "succeeded"][*t])
            }).collect();
            store.apply_batch(&msgs).unwrap();
            while let Ok(live) = rx.try_recv() {
                let changes = live.changes.as_ref().expect("collected: someone listened");
                seen.extend(changes.iter().map(|c| (c.seq, c.record.id.clone())));
            }
        }
        let head = store.feed().head();
        proptest::prop_assert_eq!(seen.len() as u64, head);
        for since in 0..=head + 1 {
            match store.view().changes_since(since).unwrap() {
                Since::Changes(c) => {
                    let got: Vec<(u64, String)> = c.into_iter().map(|c| (c.seq, c.record.id)).collect();
                    let want: Vec<(u64, String)> = seen.iter().filter(|(s, _)| *s > since).cloned().collect();
                    proptest::prop_assert_eq!(got, want);
                }
                Since::Reset => proptest::prop_assert!(
                    since <= head && head - since > retention,
                    "reset at {} with head {} and retention {}", since, head, retention
                ),
                Since::Ahead => proptest::prop_assert!(since > head, "ahead at {} with head {}", since, head),
            }
        }
    }
}

/// (seq, id, status) of each change.
fn states(s: Since) -> Vec<(u64, String, String)> {
    match s {
        Since::Changes(c) => c
            .into_iter()
            .map(|c| (c.seq, c.record.id, c.record.status.as_str().to_string()))
            .collect(),
        Since::Reset | Since::Ahead => panic!("unexpected reset"),
    }
}

/// A read of the log while a batch is between its write (its change log is
/// in sled) and its engine commit (its records are not yet readable): the
/// read stops at the head it saw first, so it sends neither the batch's
/// records in their old states nor skips its new ones; the batch's numbers
/// come live, and a read after it has them with their new states.
#[test]
fn a_log_read_during_a_batch_sends_nothing_of_it_stale_and_skips_none_of_it() {
    let store = Arc::new(Store::temporary().unwrap());
    store.apply_batch(&[event(0, "a", "queued")]).unwrap();
    let held = store.feed().hold_next_batch_at(HoldAt::Commit);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            store
                .apply_batch(&[event(1, "a", "started"), event(2, "c", "queued")])
                .unwrap();
        })
    };
    held.reached.recv().unwrap();
    let seen = states(store.view().changes_since(0).unwrap());
    assert_eq!(
        seen,
        [(1, "a".to_string(), "waiting_replicate".to_string())]
    );
    held.release.send(()).unwrap();
    writer.join().unwrap();
    let seen = states(store.view().changes_since(1).unwrap());
    assert_eq!(
        seen,
        [
            (2, "a".to_string(), "replicating".to_string()),
            (3, "c".to_string(), "waiting_replicate".to_string())
        ]
    );
}
