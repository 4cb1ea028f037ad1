//! The engine against a model (a `BTreeMap` with counts summed) after any
//! sequence of batches, flushes, merges, flushes and merges killed before
//! they install, and reopens that recover from the caller's log: every
//! point read and every range, forwards and backwards, equals the model,
//! and a snapshot taken earlier still reads what it read then.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8),
    Add(u8, i8),
}

#[derive(Debug, Clone)]
enum Action {
    Batch(Vec<Op>),
    Flush,
    Merge,
    /// The flush thread merges neighbouring memtable slices.
    MergeSlices,
    /// The run is written, the process dies before the manifest is.
    FlushKilled,
    MergeKilled,
    /// Killed between two groups of a run's blocks: no metadata.
    BlocksKilled,
    Reopen,
    /// Keep a snapshot (and the model as it is) to check at the end.
    Hold,
}

fn value_key(n: u8) -> Vec<u8> {
    vec![b'v', n]
}

fn count_key(n: u8) -> Vec<u8> {
    vec![b'c', n]
}

type Model = BTreeMap<Vec<u8>, Value>;

fn apply_model(model: &mut Model, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put(k, v) => {
                model.insert(value_key(*k), Value::Bytes(vec![*v; 1 + *v as usize % 5]));
            }
            Op::Delete(k) => {
                model.remove(&value_key(*k));
            }
            Op::Add(k, d) => {
                let key = count_key(*k);
                let now = match model.get(&key) {
                    Some(Value::Count(c)) => *c,
                    _ => 0,
                } + *d as i64;
                if now == 0 {
                    model.remove(&key);
                } else {
                    model.insert(key, Value::Count(now));
                }
            }
        }
    }
}

fn ops_of(ops: &[Op]) -> Ops {
    let mut out = Ops::default();
    for op in ops {
        match op {
            Op::Put(k, v) => out.put(value_key(*k), vec![*v; 1 + *v as usize % 5]),
            Op::Delete(k) => out.delete(value_key(*k)),
            Op::Add(k, d) => out.add(count_key(*k), *d as i64),
        }
    }
    out
}

/// A fresh engine tree in memory (its db kept alive beside it).
fn fresh() -> (sled::Db, sled::Tree) {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let tree = db.open_tree("lsm").unwrap();
    (db, tree)
}

fn config() -> Config {
    Config {
        // Tiny blocks and merges of two: small worlds still span blocks,
        // cut them and merge them.
        block_bytes: 40,
        frame_bytes: 16,
        cache_bytes: 256,
        memtable_bytes: 1 << 20,
        merge_width: 2,
        bloomed: |k| k.first() == Some(&b'v'),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..24, 0u8..9).prop_map(|(k, v)| Op::Put(k, v)),
        (0u8..24).prop_map(Op::Delete),
        (0u8..8, -2i8..3).prop_map(|(k, d)| Op::Add(k, d)),
    ]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => proptest::collection::vec(op(), 0..12).prop_map(Action::Batch),
        2 => Just(Action::Flush),
        2 => Just(Action::Merge),
        2 => Just(Action::MergeSlices),
        1 => Just(Action::FlushKilled),
        1 => Just(Action::MergeKilled),
        1 => Just(Action::BlocksKilled),
        1 => Just(Action::Reopen),
        1 => Just(Action::Hold),
    ]
}

/// The caller's log, as the store keeps its events: `w` position → the
/// batch's operations, three bytes each.
const LOG: u8 = b'w';

fn log_key(position: u64) -> Vec<u8> {
    [&[LOG][..], &position.to_be_bytes()].concat()
}

fn encode_ops(ops: &[Op]) -> Vec<u8> {
    ops.iter()
        .flat_map(|op| match *op {
            Op::Put(k, v) => [0, k, v],
            Op::Delete(k) => [1, k, 0],
            Op::Add(k, d) => [2, k, d as u8],
        })
        .collect()
}

fn decode_ops(v: &[u8]) -> Vec<Op> {
    v.chunks(3)
        .map(|c| match c[0] {
            0 => Op::Put(c[1], c[2]),
            1 => Op::Delete(c[1]),
            _ => Op::Add(c[1], c[2] as i8),
        })
        .collect()
}

/// A batch: logged by the caller in its own atomic write, then committed
/// at the next position of its log.
fn write(lsm: &Lsm, tree: &sled::Tree, ops: &[Op]) {
    let last = tree.scan_prefix([LOG]).keys().next_back();
    let position = last.map_or(1, |k| layout::read_seq(&k.unwrap()).unwrap() + 1);
    let mut batch = sled::Batch::default();
    batch.insert(log_key(position), encode_ops(ops));
    tree.apply_batch(batch).unwrap();
    lsm.commit(position, position, ops_of(ops));
}

/// Opens the engine and recovers, as the store does: what the caller's log
/// holds after the last flush is committed again.
fn reopen(tree: &sled::Tree) -> Lsm {
    let lsm = Lsm::open(tree.clone(), config()).unwrap();
    recover(&lsm, tree);
    lsm
}

fn recover(lsm: &Lsm, tree: &sled::Tree) {
    let from = log_key(lsm.flushed_through() + 1);
    for kv in tree.range(from..vec![LOG + 1]) {
        let (k, v) = kv.unwrap();
        let position = layout::read_seq(&k).unwrap();
        lsm.commit(position, position, ops_of(&decode_ops(&v)));
    }
}

fn check(snap: &Snapshot, model: &Model) -> Result<(), TestCaseError> {
    for n in 0..24u8 {
        for key in [value_key(n), count_key(n)] {
            prop_assert_eq!(
                snap.get(&key).unwrap(),
                model.get(&key).cloned(),
                "get {:?}",
                key
            );
        }
    }
    // Many keys at once, ascending (each run's last frame reused), in
    // another order, and around the cache: each as `get` answers it.
    let mut keys: Vec<Vec<u8>> = (0..24u8)
        .flat_map(|n| [value_key(n), count_key(n)])
        .collect();
    keys.sort();
    let mut shuffled = keys.clone();
    shuffled.rotate_left(7);
    for keys in [&keys, &shuffled] {
        let want: Vec<Option<Value>> = keys.iter().map(|k| model.get(k).cloned()).collect();
        for fill in [true, false] {
            prop_assert_eq!(
                &snap.get_many(keys, fill).unwrap(),
                &want,
                "get_many, fill {}",
                fill
            );
        }
    }
    let all: Vec<(Vec<u8>, Value)> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let fwd: Vec<_> = snap
        .range(Bound::Unbounded, Bound::Unbounded, false)
        .collect::<Result<_, _>>()
        .unwrap();
    prop_assert_eq!(&fwd, &all);
    let mut back: Vec<_> = snap
        .range(Bound::Unbounded, Bound::Unbounded, true)
        .collect::<Result<_, _>>()
        .unwrap();
    back.reverse();
    prop_assert_eq!(&back, &all);
    // Every bound kind, from keys inside and outside the store.
    for (lo, hi) in [(3u8, 17u8), (0, 5), (10, 10), (20, 2)] {
        let (l, h) = (value_key(lo), value_key(hi));
        for (lb, hb) in [
            (Bound::Included(l.clone()), Bound::Excluded(h.clone())),
            (Bound::Excluded(l.clone()), Bound::Included(h.clone())),
        ] {
            let want: Vec<_> = all
                .iter()
                .filter(|(k, _)| RangeBounds::<Vec<u8>>::contains(&(lb.clone(), hb.clone()), k))
                .cloned()
                .collect();
            for reverse in [false, true] {
                let mut got: Vec<_> = snap
                    .range(lb.clone(), hb.clone(), reverse)
                    .collect::<Result<_, _>>()
                    .unwrap();
                if reverse {
                    got.reverse();
                }
                prop_assert_eq!(&got, &want, "{:?}..{:?} reverse {}", lb, hb, reverse);
            }
        }
    }
    let counts: Vec<_> = snap.prefix(b"c").collect::<Result<_, _>>().unwrap();
    let want: Vec<_> = all.iter().filter(|(k, _)| k[0] == b'c').cloned().collect();
    prop_assert_eq!(counts, want);
    Ok(())
}

/// A flush and merges down to one run, then a reopen: the model holds
/// throughout.
fn settle_and_reopen(lsm: Lsm, tree: &sled::Tree, model: &Model) -> Result<Lsm, TestCaseError> {
    lsm.flush().unwrap();
    while lsm.merge().unwrap() {}
    check(&lsm.snapshot(), model)?;
    drop(lsm);
    let lsm = reopen(tree);
    check(&lsm.snapshot(), model)?;
    Ok(lsm)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn the_engine_equals_the_model(actions in proptest::collection::vec(action(), 1..40)) {
        let (_db, tree) = fresh();
        let mut lsm = Lsm::open(tree.clone(), config()).unwrap();
        let mut model = Model::new();
        let mut held = Vec::new();
        for a in &actions {
            match a {
                Action::Batch(ops) => {
                    write(&lsm, &tree, ops);
                    apply_model(&mut model, ops);
                }
                Action::Flush => {
                    lsm.flush().unwrap();
                }
                Action::Merge => {
                    lsm.merge().unwrap();
                }
                Action::MergeSlices => {
                    let before = lsm.snapshot().shape().1;
                    let merged = lsm.merge_slices();
                    prop_assert_eq!(lsm.snapshot().shape().1, before - merged as usize);
                }
                Action::FlushKilled | Action::MergeKilled | Action::BlocksKilled => {
                    let merge = matches!(a, Action::MergeKilled);
                    lsm.write_without_install(merge, matches!(a, Action::BlocksKilled))
                        .unwrap();
                    // A snapshot does not outlive its process.
                    for (snap, then) in held.drain(..) {
                        check(&snap, &then)?;
                    }
                    drop(lsm);
                    lsm = reopen(&tree);
                }
                Action::Reopen => {
                    for (snap, then) in held.drain(..) {
                        check(&snap, &then)?;
                    }
                    drop(lsm);
                    lsm = reopen(&tree);
                }
                Action::Hold => held.push((lsm.snapshot(), model.clone())),
            }
            check(&lsm.snapshot(), &model)?;
        }
        // Earlier snapshots still read what they read, whatever was merged
        // and deleted since.
        for (snap, then) in &held {
            check(snap, then)?;
        }
        drop(held);
        // A flush and merges down to one run leave nothing else behind: no
        // run that no manifest lists, and nothing to recover.
        let lsm = settle_and_reopen(lsm, &tree, &model)?;
        let logged = tree.scan_prefix([LOG]).count() as u64;
        prop_assert_eq!(lsm.flushed_through(), logged);
        let (runs, slices) = lsm.snapshot().shape();
        prop_assert_eq!(slices, 0);
        let version = lsm.snapshot().version;
        prop_assert_eq!(chunked::scan(&tree, layout::RUN_META).count(), runs);
        // No block of a killed flush or merge is left behind.
        let blocks: usize = version.runs.iter().map(|r| r.meta.fences.len()).sum();
        prop_assert_eq!(tree.scan_prefix([layout::RUN_BLOCK]).count(), blocks);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// A writer beside a thread that flushes and merges without pause (as
    /// the store's maintenance thread does): after every batch the writer's
    /// snapshot equals the model, so no count delta is applied twice (a
    /// slice being flushed must not absorb newer batches) and no entry is
    /// lost between the memtable and the runs; at the end, reopened, too.
    #[test]
    fn a_writer_beside_flushes_and_merges_equals_the_model(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..12), 1..60)
    ) {
        let (_db, tree) = fresh();
        let lsm = Arc::new(Lsm::open(tree.clone(), Config { memtable_bytes: 64, ..config() }).unwrap());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        // A flush thread and a merge thread, as the store runs them: a
        // flush may install while a merge is writing, and the other way.
        let worker = |merge: bool| {
            let (lsm, stop) = (lsm.clone(), stop.clone());
            let rounds = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let r = rounds.clone();
            let t = std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    if merge {
                        lsm.merge().unwrap();
                    } else {
                        lsm.flush().unwrap();
                    }
                    r.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
                }
            });
            (t, rounds)
        };
        let workers = [worker(false), worker(true)];
        // However the case ends (a failed check returns early), the
        // threads stop with it.
        struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);
        impl Drop for StopOnDrop {
            fn drop(&mut self) {
                self.0.store(true, std::sync::atomic::Ordering::Release);
            }
        }
        let _stop = StopOnDrop(stop.clone());
        let mut model = Model::new();
        for (i, ops) in batches.iter().enumerate() {
            write(&lsm, &tree, ops);
            apply_model(&mut model, ops);
            check(&lsm.snapshot(), &model)?;
            // Keep the three in step (a loaded machine may not schedule the
            // others at all): a round of each every other batch at least.
            for (t, rounds) in &workers {
                while rounds.load(std::sync::atomic::Ordering::Acquire) < i / 2 {
                    prop_assert!(!t.is_finished(), "a flush or merge failed");
                    std::thread::yield_now();
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Release);
        for (t, _) in workers {
            t.join().unwrap();
        }
        let lsm = Arc::try_unwrap(lsm).ok().expect("the workers are joined");
        settle_and_reopen(lsm, &tree, &model)?;
    }
}

mod cases;
