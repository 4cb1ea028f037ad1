//! Starting a cluster node, with no broker: what the map and the store
//! refuse at start, and what a node that has not caught up answers.

use crate::harness::*;
use crate::support::*;
use common::sample;

#[test]
fn a_node_not_caught_up_answers_for_nothing_it_owns_and_says_so() {
    // No broker (a dead address), a long start-up grace: s2 never catches
    // up, and it has no replica to hand its projects to.
    let dir = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = NODES.iter().map(|_| free_port()).collect();
    let config = write_cluster_config(dir.path(), "cl", &ports);
    let data = dir.path().join("s2");
    let args = [
        "--config",
        &config.display().to_string(),
        "run",
        "--role",
        "shard",
        "--node",
        "s2",
        "--brokers",
        "127.0.0.1:9",
        "--data-dir",
        &data.display().to_string(),
        "--listen",
        &format!("127.0.0.1:{}", ports[3]),
        "--startup-grace-secs",
        "600",
    ]
    .map(str::to_owned)
    .to_vec();
    let s2 = Tracker::start_args(ports[3], &data, args);
    let project = (0..4)
        .map(sample::project_id)
        .find(|p| Cluster::shard_of(p) == "s2")
        .unwrap();
    let path = format!("/v1/{project}/replication_records");
    let (s, retry, body) = get_with_header(s2.port, &path, OPERATOR_TOKEN, "retry-after");
    assert_eq!((s, retry.is_some()), (503, true), "{body}");
    assert_eq!(body["error_code"], "TRK.NODE_UNAVAILABLE");
    let said = body["error_msg"].as_str().unwrap();
    assert!(
        said.contains("`s2`") && said.contains("not caught up"),
        "{said}"
    );
}

#[test]
fn a_cluster_map_that_misses_or_repeats_a_partition_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let ports = [1, 2, 3, 4, 5, 6];
    let good = std::fs::read_to_string(write_cluster_config(dir.path(), "cl", &ports)).unwrap();
    for (broken, says) in [
        (
            good.replace("partitions = [2, 3]", "partitions = [1, 2, 3]"),
            "changelog partition 1 is owned twice: by `s1` and `s2`",
        ),
        (
            good.replace("partitions = [3, 4, 5]", "partitions = [3, 4]"),
            "events partition 5 is owned by no fold worker",
        ),
    ] {
        let cfg = dir.path().join("broken.toml");
        std::fs::write(&cfg, broken).unwrap();
        let (code, err) = refused(&cfg, "shard", "s1", &data);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(says), "{err}");
        assert!(!data.exists(), "a store was made");
    }
    // A node the map does not name, or names with another role.
    let cfg = dir.path().join("good.toml");
    std::fs::write(&cfg, good).unwrap();
    for (node, role, says) in [
        ("s9", "shard", "no node named `s9`"),
        ("f1", "shard", "`f1` is a fold in the map, not a shard"),
    ] {
        let (code, err) = refused(&cfg, role, node, &data);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains(says), "{err}");
    }
    // A listing shard's store is no fold worker's (its log is changelog
    // messages: read as events, every one would be quarantined).
    let shard_store = dir.path().join("shard-store");
    {
        let s = common::Store::open(&shard_store, 16 << 20).unwrap();
        let listing = common::store::listing::Listing {
            partitions: CHANGELOG_PARTITIONS,
            owned: [0, 1].into(),
        };
        s.bind_listing(&listing).unwrap();
        s.close().unwrap();
    }
    let (code, err) = refused(&cfg, "fold", "f1", &shard_store);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is a listing shard's"), "{err}");
}
