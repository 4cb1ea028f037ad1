//! The engine in single scenarios: concurrent cache misses, a flush beside
//! a merge, read-only opens, failed deletions, Bloom sizing, and an
//! engine discarded whole.

use super::*;

/// Readers missing the same blocks at once insert them twice: the cache
/// still counts exactly the bytes its blocks hold (each block's own
/// allocation, no more), and so stays within its bound.
#[test]
fn the_block_cache_counts_the_bytes_it_holds_under_concurrent_misses() {
    let (_db, tree) = fresh();
    let config = Config {
        block_bytes: 256,
        cache_bytes: 16 << 10,
        ..config()
    };
    let lsm = Arc::new(Lsm::open(tree.clone(), config.clone()).unwrap());
    let mut ops = Ops::default();
    for n in 0..4000u32 {
        ops.put([b"v".as_slice(), &n.to_be_bytes()].concat(), vec![7; 40]);
    }
    lsm.commit(1, 1, ops);
    lsm.flush().unwrap();
    let readers: Vec<_> = (0..8)
        .map(|t| {
            let lsm = lsm.clone();
            std::thread::spawn(move || {
                for round in 0..20u32 {
                    let snap = lsm.snapshot();
                    // Every reader walks the same keys: the same misses.
                    for n in (0..4000u32).step_by(7) {
                        let k = [
                            b"v".as_slice(),
                            &((n + round * 13 + t) % 4000).to_be_bytes(),
                        ]
                        .concat();
                        assert!(snap.get(&k).unwrap().is_some());
                    }
                }
            })
        })
        .collect();
    for r in readers {
        r.join().unwrap();
    }
    let (counted, held) = lsm.cache_usage();
    assert_eq!(counted, held, "bytes counted, bytes held");
    assert!(counted <= config.cache_bytes, "{counted} over the bound");
    assert!(counted > 0, "the cache holds blocks");
}

/// A flush runs while a merge holds its turn: ingest's flushes never wait
/// for a merge (a single lock for both stalled the writer for the whole
/// merge once the memtable passed twice its bound).
#[test]
fn a_flush_does_not_wait_for_a_merge_under_way() {
    let (_db, tree) = fresh();
    let lsm = Arc::new(Lsm::open(tree.clone(), config()).unwrap());
    write(&lsm, &tree, &[Op::Put(1, 1), Op::Add(2, 1)]);
    let merge_under_way = lsm.merging.lock().unwrap();
    let (done, flushed) = std::sync::mpsc::channel();
    let flusher = {
        let lsm = lsm.clone();
        std::thread::spawn(move || done.send(lsm.flush().unwrap()).unwrap())
    };
    let got = flushed.recv_timeout(std::time::Duration::from_secs(10));
    drop(merge_under_way);
    flusher.join().unwrap();
    assert_eq!(got, Ok(true), "the flush waited for the merge");
}

/// Read-only opens leave what a killed flush wrote in place (an operator
/// examining a store changes nothing); the next writable open deletes it.
#[test]
fn a_read_only_open_deletes_nothing() {
    let (_db, tree) = fresh();
    let lsm = Lsm::open(tree.clone(), config()).unwrap();
    let ops: Vec<Op> = (0..24).map(|k| Op::Put(k, k % 9)).collect();
    write(&lsm, &tree, &ops);
    lsm.write_without_install(false, true).unwrap();
    drop(lsm);
    let orphans = tree.scan_prefix([layout::RUN_BLOCK]).count();
    assert!(orphans > 0);
    let before: Vec<_> = tree.iter().map(Result::unwrap).collect();
    let ro = Lsm::open_read_only(tree.clone(), config()).unwrap();
    recover(&ro, &tree);
    let mut model = Model::new();
    apply_model(&mut model, &ops);
    check(&ro.snapshot(), &model).unwrap();
    drop(ro);
    let after: Vec<_> = tree.iter().map(Result::unwrap).collect();
    assert_eq!(before, after, "a read-only open wrote");
    Lsm::open(tree.clone(), config()).unwrap();
    assert_eq!(tree.scan_prefix([layout::RUN_BLOCK]).count(), 0);
}

/// Once a merge's manifest is written, a failure to delete the runs it
/// replaced fails nothing: the merged run stays, reads and reopens right,
/// and the next writable open deletes what was left.
#[test]
fn a_failed_deletion_after_an_install_keeps_the_installed_run() {
    let (_db, tree) = fresh();
    let lsm = Lsm::open(tree.clone(), config()).unwrap();
    let mut model = Model::new();
    for n in 0..2u8 {
        let ops = [Op::Put(n, n), Op::Add(1, 1)];
        write(&lsm, &tree, &ops);
        apply_model(&mut model, &ops);
        lsm.flush().unwrap();
    }
    assert_eq!(lsm.snapshot().shape(), (2, 0));
    lsm.broken.store(3, std::sync::atomic::Ordering::Relaxed);
    assert!(lsm.merge().unwrap());
    assert_eq!(lsm.snapshot().shape(), (1, 0));
    check(&lsm.snapshot(), &model).unwrap();
    drop(lsm);
    let lsm = reopen(&tree);
    check(&lsm.snapshot(), &model).unwrap();
    assert_eq!(
        tree.scan_prefix([layout::RUN_BLOCK]).count(),
        blocks_in_force(&lsm)
    );
}

/// The blocks of the runs in force.
fn blocks_in_force(lsm: &Lsm) -> usize {
    let version = lsm.snapshot().version;
    version.runs.iter().map(|r| r.meta.fences.len()).sum()
}

/// A run's Bloom filter holds the keys point reads ask for, and is sized
/// on them alone: 20 bits each, whatever else the run holds.
#[test]
fn a_runs_bloom_filter_is_sized_on_its_point_read_keys() {
    let (_db, tree) = fresh();
    let lsm = Lsm::open(tree.clone(), config()).unwrap();
    let mut ops = Ops::default();
    for n in 0..2000u32 {
        // One point-read key (`v`) for every 20 others.
        let space = if n % 20 == 0 { b'v' } else { b'i' };
        ops.put([&[space][..], &n.to_be_bytes()].concat(), vec![1]);
    }
    lsm.commit(1, 1, ops);
    lsm.flush().unwrap();
    let version = lsm.snapshot().version;
    let bloom = &version.runs[0].meta.bloom;
    assert_eq!(bloom.bytes(), (100 * 20usize).div_ceil(64) * 8);
    for n in (0..2000u32).step_by(20) {
        assert!(bloom.may_contain(&[&[b'v'][..], &n.to_be_bytes()].concat()));
    }
}

/// `discard` forgets everything — runs, their blocks, the memtable, the
/// batch logs of layouts 6 and 7, the flushed position — in a way that a
/// reopen and a second try leave right; what is committed after it reads
/// alone.
#[test]
fn discard_forgets_every_run_block_slice_and_batch_log() {
    let (_db, tree) = fresh();
    let lsm = Lsm::open(tree.clone(), config()).unwrap();
    for batch in 0..3u32 {
        let mut ops = Ops::default();
        for n in 0..200u32 {
            ops.put(
                [b"v".as_slice(), &n.to_be_bytes()].concat(),
                [batch as u8; 30],
            );
        }
        lsm.commit(batch as u64 + 1, batch as u64 + 1, ops);
        if batch < 2 {
            lsm.flush().unwrap();
        }
    }
    // A batch log as layout 7 left it.
    tree.insert(layout::batch_log(1), b"ops".to_vec()).unwrap();
    assert!(lsm.snapshot().shape().0 > 0 && lsm.flushed_through() == 2);
    lsm.discard().unwrap();
    let empty = |lsm: &Lsm| {
        assert_eq!(lsm.snapshot().shape(), (0, 0));
        assert_eq!(lsm.snapshot().prefix(b"v").count(), 0);
        assert_eq!(lsm.flushed_through(), 0);
        assert_eq!(lsm.memtable_bytes(), 0);
        for space in [layout::RUN_BLOCK, layout::RUN_META, layout::BATCH_LOG] {
            assert_eq!(tree.scan_prefix([space]).count(), 0, "{}", space as char);
        }
    };
    empty(&lsm);
    drop(lsm);
    let lsm = Lsm::open(tree.clone(), config()).unwrap();
    empty(&lsm);
    lsm.discard().unwrap();
    empty(&lsm);
    let mut ops = Ops::default();
    ops.put(b"v-new", [1]);
    lsm.commit(1, 1, ops);
    lsm.flush().unwrap();
    assert_eq!(lsm.snapshot().prefix(b"v").count(), 1);
    assert_eq!(lsm.flushed_through(), 1);
}

/// The blocks of the runs a merge replaced are deleted, all of them (in
/// groups, not one batch holding sled's write lock), at the first install
/// after no reader holds them — not left to the next open.
#[test]
fn a_merge_deletes_every_block_of_the_runs_it_replaced() {
    let (_db, tree) = fresh();
    let lsm = Lsm::open(tree.clone(), config()).unwrap();
    for batch in 0..2u32 {
        let mut ops = Ops::default();
        for n in 0..300u32 {
            ops.put(
                [b"v".as_slice(), &(n * 2 + batch).to_be_bytes()].concat(),
                [7; 30],
            );
        }
        lsm.commit(batch as u64 + 1, batch as u64 + 1, ops);
        lsm.flush().unwrap();
    }
    assert!(
        blocks_in_force(&lsm) > 2 * 64,
        "runs of more blocks than a group"
    );
    assert!(lsm.merge().unwrap());
    assert_eq!(lsm.snapshot().shape(), (1, 0));
    // The merge held its inputs through its own install: the next one
    // buries them.
    let mut ops = Ops::default();
    ops.put(b"v-late", [1]);
    lsm.commit(3, 3, ops);
    lsm.flush().unwrap();
    assert_eq!(
        tree.scan_prefix([layout::RUN_BLOCK]).count(),
        blocks_in_force(&lsm)
    );
}
