//! Which stores a tracker opens: its layout (refused, upgraded in place,
//! stamped) and the one topic it is bound to.

use super::*;

#[test]
fn a_store_of_another_layout_is_refused_with_the_rebuild_command() {
    let dir = tempfile::tempdir().unwrap();
    // A v1 store: data, no layout stamp.
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("projection").unwrap();
        tree.insert(b"rsome-record\0\x01", b"old".to_vec()).unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path(), 16 << 20).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("layout v1"), "{text}");
    assert!(text.contains("tracker replay --out"), "{text}");
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    // Left as it was: never wiped.
    {
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let tree = db.open_tree("projection").unwrap();
        assert_eq!(tree.len(), 1);
        // A store from a future layout is refused too.
        tree.insert(keys::META_LAYOUT, &(LAYOUT + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(dir.path(), 16 << 20).err().expect("refused");
    assert!(err.to_string().contains(&format!("layout v{}", LAYOUT + 1)));
    // A new store is stamped and opens again.
    let fresh = tempfile::tempdir().unwrap();
    drop(Store::open(fresh.path(), 16 << 20).unwrap());
    Store::open(fresh.path(), 16 << 20).unwrap();
    // A v6-v10 store is refused opened to read, and becomes the current
    // layout at its first writable open (its engine derived again from its
    // event log: `recovery`), so an older build refuses it from then on.
    let stamp = |v: u32| {
        let db = open_sled(fresh.path());
        let tree = db.open_tree("projection").unwrap();
        if v > 0 {
            tree.insert(keys::META_LAYOUT, &v.to_be_bytes()).unwrap();
        }
        db.flush().unwrap();
        let got = tree.get(keys::META_LAYOUT).unwrap().unwrap();
        u32::from_be_bytes(got.as_ref().try_into().unwrap())
    };
    for old in UPGRADES_IN_PLACE {
        stamp(old);
        let err = Store::open_read_only(fresh.path(), 16 << 20)
            .err()
            .expect("refused");
        assert!(
            matches!(err, StoreError::Upgrade { found, .. } if found == old),
            "{err}"
        );
        assert_eq!(stamp(0), old, "a read-only open stamps nothing");
        drop(Store::open(fresh.path(), 16 << 20).unwrap());
        assert_eq!(stamp(0), LAYOUT);
    }
}

#[test]
fn a_store_is_bound_to_one_topic() {
    let s = Store::temporary().unwrap();
    assert_eq!(s.bind_topic("a").unwrap(), None);
    assert_eq!(s.bind_topic("a").unwrap(), None);
    // Recorded, not inferred: it holds even without a checkpoint of "a".
    assert!(s.checkpoints().is_empty());
    assert_eq!(s.bind_topic("b").unwrap(), Some("a".to_owned()));
    // A store from before the record is bound by its checkpoints.
    let old = Store::temporary().unwrap();
    let mut m = crate::testkit::messages(
        &crate::sample::events(&crate::sample::Shape {
            records: 1,
            projects: 1,
            regions: 1,
            seed: 1,
        }),
        0,
    );
    m.truncate(1);
    old.apply_batch(&m).unwrap();
    assert_eq!(old.bind_topic("b").unwrap(), Some("t".to_owned()));
}

/// A new store gets sled's default segments (512 KiB); a store created
/// with another size keeps it, since sled refuses to open it with another.
#[test]
fn a_store_keeps_the_segment_size_it_was_created_with() {
    let segment = |dir: &std::path::Path| {
        let conf = std::fs::read(dir.join("conf")).unwrap();
        String::from_utf8_lossy(&conf)
            .lines()
            .find_map(|l| {
                l.strip_prefix("segment_size: ")?
                    .trim()
                    .parse::<usize>()
                    .ok()
            })
            .unwrap()
    };
    let fresh = tempfile::tempdir().unwrap();
    drop(Store::open(fresh.path(), 16 << 20).unwrap());
    assert_eq!(segment(fresh.path()), 512 << 10);
    let other = tempfile::tempdir().unwrap();
    drop(
        sled::Config::new()
            .path(other.path())
            .segment_size(2 << 20)
            .open()
            .unwrap(),
    );
    let store = Store::open(other.path(), 16 << 20).unwrap();
    store.apply_batch(&messages(&super::spec_events())).unwrap();
    drop(store);
    Store::open(other.path(), 16 << 20).unwrap();
    assert_eq!(segment(other.path()), 2 << 20);
    // A store that lost its `conf` is read with sled's default.
    std::fs::remove_file(other.path().join("conf")).unwrap();
    assert_eq!(super::open::segment_size(other.path()), 512 << 10);
}

/// A store already open in this process is said to be so at once (it was
/// waited for 5 s, then blamed on "another process (a running tracker?)");
/// once closed, it opens again.
#[test]
fn a_store_open_twice_in_one_process_is_said_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let first = Store::open(&path, 1 << 20).unwrap();
    let started = std::time::Instant::now();
    match Store::open(&path, 1 << 20) {
        Err(StoreError::OpenHere { path: p }) => assert_eq!(p, path.display().to_string()),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("opened twice"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    drop(first);
    Store::open(&path, 1 << 20).unwrap();
}
