//! A failed or panicking flush: the batch it followed stays written and
//! reported as applied; the next batch fails unwritten until a flush
//! succeeds again.

use std::sync::atomic::Ordering;

use super::*;

fn batch(from: usize, n: usize) -> Vec<Message> {
    let events = crate::sample::events(&crate::sample::Shape {
        records: 400,
        projects: 2,
        regions: 3,
        seed: 11,
    });
    messages(&events).into_iter().skip(from).take(n).collect()
}

#[test]
fn a_failed_flush_fails_the_next_batch_unwritten_not_the_one_written() {
    let store = Store::temporary().unwrap();
    store.lsm.broken.store(1, Ordering::Relaxed);
    let mut at = 0;
    // Batches until one makes a flush due: that batch is written and
    // reported applied, whatever its flush did.
    loop {
        let out = store.apply_batch(&batch(at, 20)).unwrap();
        assert!(out.applied > 0);
        at += 20;
        if store.health.failure().is_some() {
            break;
        }
        assert!(at < 2000, "no flush came due");
    }
    let applied = store.totals().applied;
    let err = store.apply_batch(&batch(at, 20)).unwrap_err();
    assert!(matches!(err, StoreError::Engine(_)), "{err}");
    assert_eq!(store.totals().applied, applied, "nothing of it written");
    // A flush that works again: the batch goes through.
    store.lsm.broken.store(0, Ordering::Relaxed);
    assert!(store.apply_batch(&batch(at, 20)).unwrap().applied > 0);
    assert!(store.health.failure().is_none());
}

#[test]
fn a_panicking_flush_is_a_reported_failure_not_a_dead_engine() {
    let store = Store::temporary().unwrap();
    store.lsm.broken.store(2, Ordering::Relaxed);
    let mut at = 0;
    while store.health.failure().is_none() {
        assert!(at < 2000, "no flush came due");
        store.apply_batch(&batch(at, 20)).unwrap();
        at += 20;
    }
    let failed = store.health.failure().unwrap();
    assert!(failed.contains("panicked"), "{failed}");
    let err = store.apply_batch(&batch(at, 20)).unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    // The engine is usable after it: nothing it locked stays poisoned.
    store.lsm.broken.store(0, Ordering::Relaxed);
    assert!(store.apply_batch(&batch(at, 20)).unwrap().applied > 0);
    assert!(store.health.failure().is_none());
}
