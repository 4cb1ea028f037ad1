use super::*;

/// Kafka's own test vectors (`UtilsTest.testMurmur2`).
#[test]
fn murmur2_is_kafkas() {
    let cases: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];
    for (key, want) in cases {
        assert_eq!(
            murmur2(key) as i32,
            want,
            "{}",
            String::from_utf8_lossy(key)
        );
    }
    // toPositive, then modulo.
    assert_eq!(
        partition(b"foobar", 6),
        ((-790_332_482i32 as u32) & 0x7fff_ffff) % 6
    );
}

fn node(name: &str, port: u16, partitions: &[u32]) -> Node {
    Node {
        name: name.into(),
        url: format!("http://127.0.0.1:{port}"),
        partitions: partitions.to_vec(),
    }
}

fn map() -> ClusterMap {
    ClusterMap {
        events_partitions: 6,
        changelog_topic: "cl".into(),
        changelog_partitions: 6,
        folds: vec![node("f1", 1, &[0, 1, 2]), node("f2", 2, &[3, 4, 5])],
        shards: vec![
            node("s1", 3, &[0, 1]),
            node("s2", 4, &[2, 3]),
            node("s3", 5, &[4, 5]),
        ],
    }
}

#[test]
fn a_map_that_covers_every_partition_once_is_accepted_with_replicas() {
    let mut m = map();
    m.check().unwrap();
    m.shards.push(node("s1b", 6, &[1, 0]));
    m.check().unwrap();
    let sets: Vec<Vec<&str>> = m
        .shard_sets()
        .iter()
        .map(|g| g.iter().map(|n| n.name.as_str()).collect())
        .collect();
    assert_eq!(sets, [vec!["s1", "s1b"], vec!["s2"], vec!["s3"]]);
    assert_eq!(m.node("s2").unwrap().0, Role::Shard);
    assert_eq!(m.node("f1").unwrap().0, Role::Fold);
    let p = m.project_partition("p");
    assert!(m.shards_for("p").iter().all(|n| n.partitions.contains(&p)));
    assert_eq!(m.shards_for("p").len(), if p < 2 { 2 } else { 1 });
}

#[test]
fn a_map_that_misses_or_repeats_a_partition_is_refused_naming_it() {
    let mut m = map();
    m.shards[1].partitions = vec![2];
    assert_eq!(
        m.check().unwrap_err().to_string(),
        "cluster: changelog partition 3 is owned by no listing shard"
    );
    let mut m = map();
    m.shards[1].partitions = vec![2, 3, 4];
    assert_eq!(
        m.check().unwrap_err(),
        MapError::Twice {
            what: "changelog",
            partition: 4,
            first: "s2".into(),
            second: "s3".into()
        }
    );
    let mut m = map();
    m.folds[0].partitions = vec![0, 1, 2, 3];
    assert!(matches!(
        m.check(),
        Err(MapError::Twice { partition: 3, .. })
    ));
    let mut m = map();
    m.folds[1].partitions = vec![3, 4, 4, 5];
    assert!(matches!(
        m.check(),
        Err(MapError::Twice { partition: 4, .. })
    ));
    let mut m = map();
    m.shards[2].partitions = vec![4, 5, 6];
    assert!(matches!(
        m.check(),
        Err(MapError::OutOfRange { partition: 6, .. })
    ));
    let mut m = map();
    m.shards[2].name = "f1".into();
    assert_eq!(m.check(), Err(MapError::DuplicateName("f1".into())));
    let mut m = map();
    m.shards[2].url = "127.0.0.1:80".into();
    assert!(matches!(m.check(), Err(MapError::Url { .. })));
    assert!(matches!(m.node("nope"), Err(MapError::UnknownNode(..))));
}

#[test]
fn changes_round_trip_and_are_checked() {
    use crate::event::decode;
    use changelog::{Change, Reject};
    let e = |json: &str| decode(None, Some(json.as_bytes())).unwrap();
    let first = e(
        r#"{"schema_version":1,"event_id":"a","type":"queued","record_id":"r","occurred_at":"2024-05-01T00:00:00Z","record":{"source_project_id":"p1","destination_project_id":"p2"}}"#,
    );
    let moved = e(
        r#"{"schema_version":1,"event_id":"b","type":"started","record_id":"r","occurred_at":"2024-05-01T00:01:00Z","record":{"destination_project_id":"p3"}}"#,
    );
    let before = crate::RecordState::new(&first);
    let mut after = before.clone();
    after.apply(&moved);
    let sent = changelog::messages("r", Some(&before), &after);
    let changes: Vec<Change> = sent
        .iter()
        .map(|o| Change::decode(Some(o.project.as_bytes()), Some(&o.value)).unwrap())
        .collect();
    // Built from the state encoded once: each what its Change encodes.
    for (o, c) in sent.iter().zip(&changes) {
        assert_eq!(o.value, c.encode());
        assert_eq!(c.state, after);
    }
    let summary: Vec<(&str, bool, u64)> = changes
        .iter()
        .map(|c| {
            let upsert = c.state.projects().contains(&c.project.as_str());
            (c.project.as_str(), upsert, c.version)
        })
        .collect();
    assert_eq!(
        summary,
        [("p1", true, 2), ("p3", true, 2), ("p2", false, 2)]
    );
    let c = &changes[2];
    let bytes = c.encode();
    assert_eq!(Change::decode(Some(b"p2"), Some(&bytes)).as_ref(), Ok(c));
    assert_eq!(
        Change::decode(Some(b"p1"), Some(&bytes)),
        Err(Reject::KeyMismatch("p2".into()))
    );
    assert_eq!(Change::decode(None, Some(&[])), Err(Reject::Empty));
    assert_eq!(Change::decode(None, Some(&[9, 1])), Err(Reject::Format(9)));
    let mut wrong = c.clone();
    wrong.version = 5;
    assert_eq!(
        Change::decode(None, Some(&wrong.encode()))
            .unwrap_err()
            .code(),
        "version_mismatch"
    );
    assert_eq!(
        Change::decode(None, Some(&bytes[..bytes.len() - 1]))
            .unwrap_err()
            .code(),
        "undecodable"
    );
}
