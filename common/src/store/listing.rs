//! The store's side of a cluster (issue 26). A listing shard's store is
//! the same store, fed by the record changelog instead of the events topic.
//! Each changelog message carries a record's whole fold state and its
//! version; the store keeps the highest version it has seen (idempotent,
//! order-proof), and lists a record only under the projects whose changelog
//! partitions it owns ([`Listing`]) — the record's other projects are
//! another shard's. Everything else — the numbering, the derivation of index
//! entries, the change log and feed, the engine with the log as its
//! write-ahead log — is the single node's. A fold worker's store is a single
//! node's that also checks each event is in its record's partition
//! ([`placed`]) and counts the changelog messages it published.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::*;
use crate::cluster::changelog::Change;

/// What a shard's store lists: the projects whose changelog partition
/// (of `partitions`) is in `owned`. Recorded in the store at its first
/// use, so recovery at open derives as ingest did, and a store is never
/// served for other partitions than it was built for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    pub partitions: u32,
    pub owned: BTreeSet<u32>,
}

impl Listing {
    /// Whether a record listed under `project` is listed here.
    pub fn lists(&self, project: &str) -> bool {
        self.owned.contains(&crate::cluster::partition(
            project.as_bytes(),
            self.partitions,
        ))
    }

    /// The partitions, as `0,1 of 6`.
    pub fn describe(&self) -> String {
        let owned: Vec<String> = self.owned.iter().map(u32::to_string).collect();
        format!("{} of {}", owned.join(","), self.partitions)
    }
}

/// The listing a store was bound to, if it is a shard's.
pub(super) fn read(tree: &sled::Tree) -> Result<Option<Listing>, StoreError> {
    tree.get(keys::META_LISTING)?
        .map(|v| postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(keys::META_LISTING, e)))
        .transpose()
}

/// One accepted message of a batch: an event (a single node or a fold
/// worker) or a changelog message (a listing shard).
pub(super) enum Input {
    Event(Event),
    Change(Change),
}

impl Input {
    /// Decodes a message as the store takes them: the quarantine's reason
    /// code and message when it does not.
    pub(super) fn decode(
        listing: Option<&Listing>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Result<Input, (&'static str, String)> {
        match listing {
            None => decode(key, value)
                .map(Input::Event)
                .map_err(|r| (r.code(), r.to_string())),
            Some(_) => Change::decode(key, value)
                .map(Input::Change)
                .map_err(|r| (r.code(), r.to_string())),
        }
    }

    pub(super) fn record_id(&self) -> &str {
        match self {
            Input::Event(e) => &e.record_id,
            Input::Change(c) => &c.id,
        }
    }
}

/// A fold worker's event must be in the partition Kafka's default
/// partitioner gives its record id (of `partitions`): in another, its record
/// would be folded in part by two workers, whose versions do not compare.
/// Quarantined instead, naming where it belongs (its producer does not key
/// by record id with murmur2).
pub(super) fn placed(
    input: Input,
    m: &Message,
    partitions: Option<u32>,
) -> Result<Input, (&'static str, String)> {
    let (Input::Event(e), Some(n)) = (&input, partitions) else {
        return Ok(input);
    };
    let want = crate::cluster::partition(e.record_id.as_bytes(), n) as i32;
    if want == m.partition {
        return Ok(input);
    }
    Err((
        "wrong_partition",
        format!(
            "record `{}` belongs to partition {want} of {n} (Kafka's default partitioner: murmur2 of the record id), not {}: \
             its producer must key by record_id with murmur2, or the cluster's fold workers would each fold part of it",
            e.record_id, m.partition
        ),
    ))
}

/// Takes `incoming` in place of `current` if its version is higher: a
/// change applied twice, or after a later one, changes nothing.
pub(super) fn newer(current: &mut RecordState, incoming: &RecordState) -> EventEffect {
    if incoming.events() > current.events() {
        *current = incoming.clone();
        EventEffect::Changed
    } else {
        EventEffect::Duplicate
    }
}

impl Store {
    /// Makes this store a listing shard's for `listing`: recorded durably
    /// at first use (a fresh store); an existing store must have been built
    /// for the same partitions — one built for others would serve a
    /// different set of projects.
    pub fn bind_listing(&self, listing: &Listing) -> Result<(), StoreError> {
        let w = self.writer.lock().expect("writer lock");
        match self.listing() {
            Some(have) if have == listing => return Ok(()),
            Some(have) => {
                return Err(StoreError::Listing {
                    path: self.location(),
                    found: have.describe(),
                    asked: listing.describe(),
                })
            }
            None if w.totals != Totals::default() => {
                return Err(StoreError::Listing {
                    path: self.location(),
                    found: "the events topic (a single node's or a fold worker's store)".into(),
                    asked: listing.describe(),
                })
            }
            None => {}
        }
        self.tree.insert(keys::META_LISTING, encode(listing))?;
        self.tree.flush()?;
        let _ = self.listing.set(listing.clone());
        Ok(())
    }

    /// Makes this a fold worker's store: from now on an event must be in
    /// the partition of `partitions` its record id hashes to, or it is
    /// quarantined (`wrong_partition`).
    pub fn fold_partitions(&self, partitions: u32) {
        self.writer.lock().expect("writer lock").events_partitions = Some(partitions);
    }

    /// Changelog messages a fold worker's store has published, written
    /// with the checkpoints of the batches they came from.
    pub fn published(&self) -> u64 {
        self.writer.lock().expect("writer lock").published
    }

    /// The changelog partitions this store lists, if it is a shard's.
    pub fn listing(&self) -> Option<&Listing> {
        self.listing.get()
    }
}

impl ReadView {
    /// SHA-256 per project over its records as the API renders them, one
    /// JSON document and a newline each, in id order — of the projects
    /// this store lists (all of them on a single node). A cluster's
    /// listing shards together hold every project once: the union of their
    /// maps equals a single node's of the same topic.
    pub fn project_digests(&self) -> Result<BTreeMap<String, String>, StoreError> {
        Ok(self.digests()?.1)
    }

    /// [`ReadView::digest`] and [`ReadView::project_digests`] in one pass
    /// over the records.
    pub fn digests(&self) -> Result<(String, BTreeMap<String, String>), StoreError> {
        let listing = self.listing.get();
        let mut all = Sha256::new();
        let mut hashers: BTreeMap<String, Sha256> = BTreeMap::new();
        for r in self.records() {
            let (id, state) = r?;
            let mut json = serde_json::to_vec(&state.view(&id)).expect("record serializes");
            json.push(b'\n');
            all.update(&json);
            for p in state.projects() {
                if listing.is_none_or(|l| l.lists(p)) {
                    hashers.entry(p.to_owned()).or_default().update(&json);
                }
            }
        }
        let projects = hashers
            .into_iter()
            .map(|(p, h)| (p, hex::encode(h.finalize())))
            .collect();
        Ok((hex::encode(all.finalize()), projects))
    }
}

/// One digest of a projection's listings: SHA-256 over `project digest`
/// lines in project order. Equal for a cluster (its shards' maps joined)
/// and a single node of the same topic.
pub fn listings_digest(projects: &BTreeMap<String, String>) -> String {
    let mut h = Sha256::new();
    for (p, d) in projects {
        h.update(p.as_bytes());
        h.update(b" ");
        h.update(d.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}
