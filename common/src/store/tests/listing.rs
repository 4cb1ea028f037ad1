//! A cluster in one process (issue 26): fold workers' stores publishing
//! their batches' changelog messages, listing shards' stores applying them
//! in any interleaving of partitions, with stale versions republished
//! late, must list every project exactly as a single node does.

use proptest::prelude::*;

use super::*;
use crate::cluster::{changelog::Outgoing, partition};
use crate::store::listing::{listings_digest, Listing};
use crate::testkit::{adversarial, messages};

const CHANGELOG_PARTITIONS: u32 = 3;

/// The changelog as Kafka would hold it: each message at the next offset
/// of the partition its project hashes to.
#[derive(Default)]
struct Changelog {
    partitions: BTreeMap<i32, Vec<Message>>,
}

impl Changelog {
    fn publish(&mut self, c: &Outgoing) {
        let p = partition(c.project.as_bytes(), CHANGELOG_PARTITIONS) as i32;
        let log = self.partitions.entry(p).or_default();
        log.push(Message {
            topic: "changelog".into(),
            partition: p,
            offset: log.len() as i64,
            key: Some(c.project.clone().into_bytes()),
            payload: Some(c.value.clone()),
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn shards_fed_by_fold_workers_list_every_project_as_one_node(
        seed in 0u64..1_000,
        batch in 1usize..40,
        republish in 0usize..30,
        order in proptest::collection::vec(0u32..CHANGELOG_PARTITIONS, 0..400),
    ) {
        let projects: Vec<String> = (0..5).map(crate::sample::project_id).collect();
        let events = adversarial::events(60, &projects, seed);
        let single = Store::temporary().unwrap();
        for chunk in messages(&events, 0).chunks(batch) {
            single.apply_batch(chunk).unwrap();
        }
        // Two fold workers, each with the events of its records.
        let mut changelog = Changelog::default();
        let mut sent: Vec<Outgoing> = Vec::new();
        for worker in 0..2u32 {
            let fold = Store::temporary().unwrap();
            let mine: Vec<Event> = events
                .iter()
                .filter(|e| partition(e.record_id.as_bytes(), 2) == worker)
                .cloned()
                .collect();
            for chunk in messages(&mine, 0).chunks(batch) {
                let mut publish = |cs: &[Outgoing]| {
                    for c in cs {
                        changelog.publish(c);
                        sent.push(c.clone());
                    }
                    Ok(())
                };
                fold.apply_batch_publishing(chunk, Some(&mut publish)).unwrap();
            }
        }
        // At least once: some early (stale) messages published again, after
        // the newer versions of their records.
        for c in sent.iter().take(republish) {
            changelog.publish(c);
        }
        let shards: Vec<Store> = (0..CHANGELOG_PARTITIONS)
            .map(|p| {
                let s = Store::temporary().unwrap();
                s.bind_listing(&Listing { partitions: CHANGELOG_PARTITIONS, owned: [p].into() }).unwrap();
                s
            })
            .collect();
        // Each shard consumes its partition in batches, partitions
        // interleaved as `order` says, then the rest.
        let mut at = [0usize; CHANGELOG_PARTITIONS as usize];
        let schedule = order.iter().copied().chain((0..CHANGELOG_PARTITIONS).flat_map(|p| std::iter::repeat_n(p, 1000)));
        for p in schedule {
            let log = changelog.partitions.get(&(p as i32)).map(Vec::as_slice).unwrap_or_default();
            let from = at[p as usize];
            if from >= log.len() {
                continue;
            }
            let to = (from + batch).min(log.len());
            shards[p as usize].apply_batch(&log[from..to]).unwrap();
            at[p as usize] = to;
        }
        let want = single.view().project_digests().unwrap();
        let mut union = BTreeMap::new();
        for s in &shards {
            s.assert_internally_consistent();
            union.extend(s.view().project_digests().unwrap());
        }
        prop_assert_eq!(&union, &want);
        prop_assert_eq!(listings_digest(&union), listings_digest(&want));
        for project in &projects {
            let owner = &shards[partition(project.as_bytes(), CHANGELOG_PARTITIONS) as usize];
            let q = ListQuery { with_count: Some(true), limit: Some(1000), ..ListQuery::default() };
            prop_assert_eq!(owner.view().list(project, &q).unwrap(), single.view().list(project, &q).unwrap());
        }
    }
}

#[test]
fn a_shard_store_recovers_as_a_shard_and_is_refused_for_other_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let l = |owned: &[u32]| Listing {
        partitions: 6,
        owned: owned.iter().copied().collect(),
    };
    let projects: Vec<String> = (0..4).map(crate::sample::project_id).collect();
    let mut changelog = Changelog::default();
    let fold = Store::temporary().unwrap();
    let mut publish = |cs: &[Outgoing]| {
        cs.iter().for_each(|c| changelog.publish(c));
        Ok(())
    };
    let events = messages(&adversarial::events(40, &projects, 7), 0);
    fold.apply_batch_publishing(&events, Some(&mut publish))
        .unwrap();
    let digests = {
        // Not closed: the reopen recovers the memtable from the log, as
        // the shard's listing (read from the store) has it.
        let s = Store::open(dir.path(), 16 << 20).unwrap();
        s.bind_listing(&l(&[0, 1])).unwrap();
        s.set_memtable_bytes(64 << 20);
        for log in changelog.partitions.values() {
            s.apply_batch(log).unwrap();
        }
        s.flush().unwrap();
        s.view().project_digests().unwrap()
    };
    assert!(!digests.is_empty());
    let s = Store::open(dir.path(), 16 << 20).unwrap();
    assert!(
        s.recovered_at_open() > 0,
        "{:?} {:?}",
        s.totals(),
        s.checkpoints()
    );
    assert_eq!(s.listing(), Some(&l(&[0, 1])));
    assert_eq!(s.view().project_digests().unwrap(), digests);
    s.assert_internally_consistent();
    s.bind_listing(&l(&[0, 1])).unwrap();
    let e = s.bind_listing(&l(&[2])).unwrap_err().to_string();
    assert!(
        e.contains("lists 0,1 of 6") && e.contains("partitions 2 of 6"),
        "{e}"
    );
    // A single node's store (events folded) is no shard's.
    assert!(fold.bind_listing(&l(&[0])).is_err());
}

#[test]
fn a_fold_workers_event_in_another_partition_than_its_records_is_quarantined() {
    let fold = Store::temporary().unwrap();
    fold.fold_partitions(2);
    let projects = vec!["p".to_owned()];
    let mut ms = messages(&adversarial::events(20, &projects, 3), 0);
    for m in &mut ms {
        m.partition = partition(m.key.as_deref().unwrap(), 2) as i32;
    }
    // One event put last, in the other partition than its record's.
    let mut stray = ms.remove(5);
    stray.partition = 1 - stray.partition;
    stray.offset = 1_000;
    ms.push(stray);
    let out = fold.apply_batch(&ms).unwrap();
    assert_eq!(out.quarantined, 1);
    assert_eq!(out.applied + out.duplicates, ms.len() as u64 - 1);
    let q = fold.view().quarantine(0, 10).unwrap();
    assert_eq!(q[0].reason_code, "wrong_partition");
    assert!(q[0].reason.contains("murmur2"), "{}", q[0].reason);
}
