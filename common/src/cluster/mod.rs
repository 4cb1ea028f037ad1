//! The cluster (issue 26): fold workers that fold a subset of the events
//! topic's partitions and publish each changed record to a *record
//! changelog* topic keyed by project, and listing shards that keep the
//! listings of the projects in a subset of the changelog's partitions. What
//! every node agrees on is here: Kafka's default partitioner ([`partition`]),
//! the cluster map with its checks ([`ClusterMap`]), and the changelog's
//! message ([`changelog`]). No Kafka, no HTTP: the ingest adapter publishes
//! and consumes, the query service routes.

pub mod changelog;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Kafka's murmur2 (the Java client's `Utils.murmur2`), as its default
/// partitioner hashes a message's key.
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (i, b) in rest.iter().enumerate().rev() {
            h ^= u32::from(*b) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner (Java's, and librdkafka's
/// `murmur2_random`) gives a keyed message: `toPositive(murmur2(key)) % n`.
pub fn partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// What a node of the cluster does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Folds events into records and publishes their changes.
    Fold,
    /// Keeps projects' listings from the changelog and answers for them.
    Shard,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Fold => "fold",
            Role::Shard => "shard",
        }
    }
}

/// One node in the map: its name, where its query service answers, and
/// the partitions it owns (of the events topic for a fold worker, of the
/// changelog for a listing shard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// `http://host:port`, as the other nodes reach it.
    pub url: String,
    pub partitions: Vec<u32>,
}

/// The cluster map (`[cluster]` in the config file, the same on every
/// node): the topics' partition counts and who owns which partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterMap {
    /// Partitions of the events topic (the fold workers cover each once).
    pub events_partitions: u32,
    /// The record changelog's topic.
    #[serde(default = "default_changelog_topic")]
    pub changelog_topic: String,
    /// Its partitions (the listing shards cover each once; shards with
    /// the same partitions are replicas of each other).
    pub changelog_partitions: u32,
    pub folds: Vec<Node>,
    pub shards: Vec<Node>,
}

fn default_changelog_topic() -> String {
    "replication-changelog".into()
}

/// The most partitions a map may give a topic (Kafka's own practical
/// bound is far lower).
const MAX_PARTITIONS: u32 = 100_000;

/// Why a cluster map is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("cluster.{0} must be from 1 to {MAX_PARTITIONS}")]
    Count(&'static str),
    #[error("cluster: node name `{0}` is given twice (every fold worker and shard needs its own)")]
    DuplicateName(String),
    #[error("cluster: node `{name}`: url `{url}` is not http://host:port")]
    Url { name: String, url: String },
    #[error("cluster: {what} `{name}` lists partition {partition}, but the topic has {of} (0 to {})", of - 1)]
    OutOfRange {
        what: &'static str,
        name: String,
        partition: u32,
        of: u32,
    },
    #[error("cluster: {what} partition {partition} is owned by no {role}")]
    Missing {
        what: &'static str,
        role: &'static str,
        partition: u32,
    },
    #[error("cluster: {what} partition {partition} is owned twice: by `{first}` and `{second}` (replicas must list the same partitions)")]
    Twice {
        what: &'static str,
        partition: u32,
        first: String,
        second: String,
    },
    #[error("cluster: `{0}` owns no partition")]
    Empty(String),
    #[error("cluster: no node named `{0}` in the map (its names: {1})")]
    UnknownNode(String, String),
    #[error("cluster: `{name}` is a {is} in the map, not a {asked}")]
    WrongRole {
        name: String,
        is: &'static str,
        asked: &'static str,
    },
}

impl ClusterMap {
    /// Every check a node makes at start: counts in range, names unique,
    /// urls usable, and every partition of each topic owned exactly once
    /// (listing shards with the same partitions count once: replicas).
    pub fn check(&self) -> Result<(), MapError> {
        for (count, name) in [
            (self.events_partitions, "events_partitions"),
            (self.changelog_partitions, "changelog_partitions"),
        ] {
            if !(1..=MAX_PARTITIONS).contains(&count) {
                return Err(MapError::Count(name));
            }
        }
        let mut names = BTreeSet::new();
        for n in self.folds.iter().chain(&self.shards) {
            if !names.insert(n.name.as_str()) {
                return Err(MapError::DuplicateName(n.name.clone()));
            }
            if !valid_url(&n.url) {
                return Err(MapError::Url {
                    name: n.name.clone(),
                    url: n.url.clone(),
                });
            }
        }
        cover("events", "fold worker", self.events_partitions, &self.folds)?;
        cover(
            "changelog",
            "listing shard",
            self.changelog_partitions,
            &self.shards,
        )
    }

    /// The role and entry of the node named `name`.
    pub fn node(&self, name: &str) -> Result<(Role, &Node), MapError> {
        let fold = self.folds.iter().find(|n| n.name == name);
        let shard = self.shards.iter().find(|n| n.name == name);
        match (fold, shard) {
            (Some(n), _) => Ok((Role::Fold, n)),
            (None, Some(n)) => Ok((Role::Shard, n)),
            (None, None) => Err(MapError::UnknownNode(
                name.to_owned(),
                self.folds
                    .iter()
                    .chain(&self.shards)
                    .map(|n| n.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
        }
    }

    /// The changelog partition a project's listings are in.
    pub fn project_partition(&self, project: &str) -> u32 {
        partition(project.as_bytes(), self.changelog_partitions)
    }

    /// The events partition a record's events are in (its producers key
    /// by record id with Kafka's default partitioner).
    pub fn record_partition(&self, id: &str) -> u32 {
        partition(id.as_bytes(), self.events_partitions)
    }

    /// The listing shards (replicas, in the map's order) that own a
    /// project.
    pub fn shards_for(&self, project: &str) -> Vec<&Node> {
        let p = self.project_partition(project);
        self.shards
            .iter()
            .filter(|n| n.partitions.contains(&p))
            .collect()
    }

    /// The listing shards grouped as replicas (the same partitions, in any
    /// order), each group in the map's order.
    pub fn shard_sets(&self) -> Vec<Vec<&Node>> {
        let mut sets: Vec<(BTreeSet<u32>, Vec<&Node>)> = Vec::new();
        for n in &self.shards {
            let mine: BTreeSet<u32> = n.partitions.iter().copied().collect();
            match sets.iter_mut().find(|(ps, _)| *ps == mine) {
                Some((_, g)) => g.push(n),
                None => sets.push((mine, vec![n])),
            }
        }
        sets.into_iter().map(|(_, g)| g).collect()
    }

    /// The fold worker that folds a record's events.
    pub fn fold_for(&self, id: &str) -> Option<&Node> {
        let p = self.record_partition(id);
        self.folds.iter().find(|n| n.partitions.contains(&p))
    }
}

/// `http://host:port` with nothing after it but an optional `/`.
fn valid_url(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    match rest.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty()
                && !host.contains(['/', '?', '#', '@'])
                && port.parse::<u16>().is_ok_and(|p| p > 0)
        }
        None => false,
    }
}

/// Checks that `nodes` own each of `0..count` exactly once, nodes with the
/// same partitions counting as one (replicas).
fn cover(
    what: &'static str,
    role: &'static str,
    count: u32,
    nodes: &[Node],
) -> Result<(), MapError> {
    let mut owner: BTreeMap<u32, &Node> = BTreeMap::new();
    for n in nodes {
        if n.partitions.is_empty() {
            return Err(MapError::Empty(n.name.clone()));
        }
        let mine: BTreeSet<u32> = n.partitions.iter().copied().collect();
        for &p in &n.partitions {
            if p >= count {
                return Err(MapError::OutOfRange {
                    what,
                    name: n.name.clone(),
                    partition: p,
                    of: count,
                });
            }
            match owner.get(&p) {
                None => {
                    owner.insert(p, n);
                }
                // A replica: the same partitions, all of them.
                Some(o)
                    if role == "listing shard"
                        && o.partitions.iter().copied().collect::<BTreeSet<u32>>() == mine => {}
                Some(o) => {
                    return Err(MapError::Twice {
                        what,
                        partition: p,
                        first: o.name.clone(),
                        second: n.name.clone(),
                    })
                }
            }
        }
        if mine.len() != n.partitions.len() {
            let p = first_repeat(&n.partitions);
            return Err(MapError::Twice {
                what,
                partition: p,
                first: n.name.clone(),
                second: n.name.clone(),
            });
        }
    }
    match (0..count).find(|p| !owner.contains_key(p)) {
        Some(partition) => Err(MapError::Missing {
            what,
            role,
            partition,
        }),
        None => Ok(()),
    }
}

fn first_repeat(ps: &[u32]) -> u32 {
    let mut seen = BTreeSet::new();
    *ps.iter()
        .find(|p| !seen.insert(**p))
        .expect("a list longer than its set repeats")
}

#[cfg(test)]
mod tests;
