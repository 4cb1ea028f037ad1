//! Secondary index entries of one record. Index maintenance is a diff of the
//! entries before and after a batch, written in the same atomic batch as the
//! record itself.
//!
//! Entries live in lists ([`super::lists`]), one engine key per entry, each
//! list under the interned id of its name (`store/names.rs`: `list` below),
//! and name the record by its number (`n`, a big-endian u32), never its id:
//! most entries are fixed-width integers (issue 37, item 3). Per project the
//! record is listed under:
//! - a posting `i list created_at n → ∅`, the list named `project field
//!   value`, for `status`, `source_region`, `destination_region` and the
//!   three together (the "route"), so a filtered page is a range scan in the
//!   default sort order and a filter test is one point lookup (the status
//!   postings partition the project: their union is "all records"); records
//!   of one `created_at` are ordered by id from the records themselves;
//! - a count `n project field value`, the length of that posting list, so
//!   `with_count` on one filter is one read, and for status and route
//!   postings counts per hour of `created_at` (`h list hour`, under the
//!   posting list's id), so a deep `offset` skips whole hours instead of
//!   walking every entry and summaries by hour or day read counts, not
//!   records;
//! - order entries, the list named `project order`: `o list updated_at n →
//!   created_at`; `o list id → created_at n` and `o list plan created_at id
//!   → created_at n` (the ids kept whole: an order-preserving prefix of the
//!   id makes every record of a project whose ids share it — `rep-2026-…` —
//!   one tie run, read whole for every `sort=id` page; a plan's records,
//!   often thousands, are ordered by the ids in their entries); and for
//!   records still under way `o list created_at n → updated_at`, the list
//!   named `project live status`, where stuck ones are found.
//!
//! Whatever its projects, a record adds one to the store-wide count of its
//! status (`s status`), which `/metrics` reads.
//!
//! Checkpoint items are near-unique, so they are indexed once, globally, by
//! a hash of the value: `k side hash n → ∅`; a checkpoint filter reads those
//! few records and keeps the ones that carry the value.

use super::keys::{self, space};
pub use super::keys::{status_byte, CheckpointSide, IndexField, OrderField};
use super::listing::Listing;
use super::names::Naming;
use super::query::Stuck;
use crate::instant::Micros;
use crate::record::{Field, RecordState, Status};

/// One filter: the posting list of (field, value) in a project.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Posting {
    pub field: IndexField,
    /// `None` only for the region fields, whose nulls form a sort group.
    pub value: Option<String>,
}

impl Posting {
    pub fn new(field: IndexField, value: Option<&str>) -> Posting {
        Posting {
            field,
            value: value.map(str::to_owned),
        }
    }

    /// The name of this posting list in `project` (its entries are under
    /// the name's interned id: `Store::list_prefix`).
    pub fn name(&self, project: &str) -> Vec<u8> {
        keys::list(space::POSTING, project, self.field, self.value.as_deref())
    }

    pub fn count_key(&self, project: &str) -> Vec<u8> {
        keys::list(space::COUNT, project, self.field, self.value.as_deref())
    }

    /// Whether a record in `state` is in this list (of a project it is
    /// listed under): what [`postings`] puts it in, tested without building
    /// them (a plan tests candidates by it).
    pub fn holds(&self, state: &RecordState) -> bool {
        let v = self.value.as_deref();
        let (src, dst) = (
            state.get(Field::SourceRegion),
            state.get(Field::DestinationRegion),
        );
        match self.field {
            IndexField::Status => v == Some(state.status().as_str()),
            IndexField::SourceRegion => v == src,
            IndexField::DestinationRegion => v == dst,
            IndexField::Route => v == Some(route(src, dst, state.status().as_str()).as_str()),
        }
    }

    /// An entry's place in a posting list: `(created_at, number)`.
    pub fn suffix(created: [u8; 8], number: u32) -> [u8; 12] {
        keys::instant_number(created, number)
    }
}

pub const HOUR: i64 = 3_600_000_000;

/// The start of the hour an instant falls in.
pub fn hour_start(t: Micros) -> Micros {
    Micros(t.0.div_euclid(HOUR) * HOUR)
}

/// The value of a route posting: each region as `-` when absent or
/// `len:value`, then the status — unambiguous whatever the regions hold.
pub fn route(
    source_region: Option<&str>,
    destination_region: Option<&str>,
    status: &str,
) -> String {
    let mut v = String::new();
    for r in [source_region, destination_region] {
        match r {
            None => v.push('-'),
            Some(r) => v.push_str(&format!("{}:{r}", r.len())),
        }
    }
    v.push_str(status);
    v
}

/// A route posting's source region, destination region and status.
pub fn parse_route(v: &str) -> Option<(Option<String>, Option<String>, Status)> {
    let mut rest = v;
    let mut region = || -> Option<Option<String>> {
        if let Some(r) = rest.strip_prefix('-') {
            rest = r;
            return Some(None);
        }
        let (len, r) = rest.split_once(':')?;
        let len: usize = len.parse().ok()?;
        let value = r.get(..len)?.to_owned();
        rest = &r[len..];
        Some(Some(value))
    };
    let src = region()?;
    let dst = region()?;
    Some((src, dst, Status::parse(rest)?))
}

/// The postings a record belongs to in one project. Every record has one
/// route posting (absent regions included), so route counts partition the
/// project by (source region, destination region, status): summaries and
/// capabilities read them instead of records.
pub fn postings(state: &RecordState) -> Vec<Posting> {
    let status = state.status().as_str();
    let (src, dst) = (
        state.get(Field::SourceRegion),
        state.get(Field::DestinationRegion),
    );
    vec![
        Posting::new(IndexField::Status, Some(status)),
        Posting::new(IndexField::SourceRegion, src),
        Posting::new(IndexField::DestinationRegion, dst),
        Posting {
            field: IndexField::Route,
            value: Some(route(src, dst, status)),
        },
    ]
}

/// Every index entry of a record — full key (list prefix and suffix) →
/// value, for its postings, orders and checkpoint items, sorted by key —
/// and the count keys its postings contribute to: built into one buffer
/// (a batch derives them for every record it changes, twice).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Entries {
    bytes: Vec<u8>,
    /// Each entry's key start, key end (its value's start) and value end.
    keys: Vec<(u32, u32, u32)>,
    /// Each count key's start and end.
    counts: Vec<(u32, u32)>,
}

impl Entries {
    /// A record's entries; on a listing shard's store (`listing`), only
    /// under the projects it lists, and none at all — no checkpoint item,
    /// no status count — for a record none of them lists.
    pub(super) fn of(
        id: &str,
        number: u32,
        state: &RecordState,
        naming: &mut Naming,
        listing: Option<&Listing>,
    ) -> Entries {
        let mut e = Entries {
            bytes: Vec::with_capacity(512),
            keys: Vec::with_capacity(16),
            counts: Vec::with_capacity(16),
        };
        let projects: Vec<&str> = state
            .projects()
            .into_iter()
            .filter(|p| listing.is_none_or(|l| l.lists(p)))
            .collect();
        if projects.is_empty() && listing.is_some() {
            return e;
        }
        let id = id.as_bytes();
        for (side, f) in [
            (CheckpointSide::Source, Field::SourceCheckpointItemId),
            (
                CheckpointSide::Destination,
                Field::DestinationCheckpointItemId,
            ),
        ] {
            if let Some(v) = state.get(f) {
                let at = e.bytes.len();
                e.bytes
                    .extend_from_slice(&keys::checkpoint_item(side, v, number));
                e.end_key(at, &[]);
            }
        }
        let created = state.created_at().key_bytes();
        let updated = state.updated_at().key_bytes();
        let hour = hour_start(state.created_at()).key_bytes();
        let status = state.status();
        // What an `id` or `plan_id` entry holds: its created_at and number.
        let named = keys::instant_number(created, number);
        // Once per record, outside its projects: the store-wide count.
        let at = e.bytes.len();
        e.bytes.extend_from_slice(&keys::status_count(status));
        e.end_count(at);
        let (src, dst) = (
            state.get(Field::SourceRegion),
            state.get(Field::DestinationRegion),
        );
        let route = route(src, dst, status.as_str());
        let postings = [
            (IndexField::Status, Some(status.as_str())),
            (IndexField::SourceRegion, src),
            (IndexField::DestinationRegion, dst),
            (IndexField::Route, Some(route.as_str())),
        ];
        // A list's name, then its entry under the name's id.
        let mut name = Vec::with_capacity(128);
        for project in projects {
            for (field, value) in postings {
                keys::write_posting_name(&mut name, project, field, value);
                let list = naming.id(&name);
                let at = e.bytes.len();
                e.bytes.extend_from_slice(&keys::posting(list));
                e.bytes
                    .extend_from_slice(&keys::instant_number(created, number));
                e.end_key(at, &[]);
                // Counts are keyed by the name: summaries scan a field's.
                let at = e.bytes.len();
                keys::push_count_of(&mut e.bytes, &name);
                e.end_count(at);
                if matches!(field, IndexField::Status | IndexField::Route) {
                    let at = e.bytes.len();
                    e.bytes.extend_from_slice(&keys::hour_count(list));
                    e.bytes.extend_from_slice(&hour);
                    e.end_count(at);
                }
            }
            let mut start_order = |e: &mut Entries, order: OrderField, status: Option<Status>| {
                keys::write_order_name(&mut name, project, order, status);
                e.bytes.extend_from_slice(&keys::order(naming.id(&name)));
            };
            let at = e.bytes.len();
            start_order(&mut e, OrderField::UpdatedAt, None);
            e.bytes
                .extend_from_slice(&keys::instant_number(updated, number));
            e.end_key(at, &[&created]);
            let at = e.bytes.len();
            start_order(&mut e, OrderField::Id, None);
            keys::push_id_order(&mut e.bytes, id);
            e.end_key(at, &[&named]);
            if Stuck::STATUSES.contains(&status) {
                let at = e.bytes.len();
                start_order(&mut e, OrderField::Live, Some(status));
                e.bytes
                    .extend_from_slice(&keys::instant_number(created, number));
                e.end_key(at, &[&updated]);
            }
            // Within a plan, entries follow created_at, so new ones land at
            // the plan's recent end (blocks stay cheap); runs of one plan are
            // sorted by the planner anyway.
            let at = e.bytes.len();
            start_order(&mut e, OrderField::PlanId, None);
            keys::push_plan_order_entry(&mut e.bytes, state.get(Field::PlanId), created, id);
            e.end_key(at, &[&named]);
        }
        // By key; of two entries with one key (none today), the later wins.
        let bytes = &e.bytes;
        let key = |&(at, end, _): &(u32, u32, u32)| &bytes[at as usize..end as usize];
        e.keys.sort_by(|a, b| key(a).cmp(key(b)));
        let mut keys = std::mem::take(&mut e.keys);
        keys.dedup_by(|later, earlier| {
            let same = key(later) == key(earlier);
            if same {
                *earlier = *later;
            }
            same
        });
        e.keys = keys;
        // Counts by key too: a batch adds only where old and new differ.
        let bytes = &e.bytes;
        e.counts.sort_unstable_by(|&(a, ae), &(b, be)| {
            bytes[a as usize..ae as usize].cmp(&bytes[b as usize..be as usize])
        });
        e
    }

    fn end_key(&mut self, at: usize, value: &[&[u8]]) {
        let key_end = self.bytes.len();
        for part in value {
            self.bytes.extend_from_slice(part);
        }
        self.keys
            .push((at as u32, key_end as u32, self.bytes.len() as u32));
    }

    fn end_count(&mut self, at: usize) {
        self.counts.push((at as u32, self.bytes.len() as u32));
    }

    /// The entries, `(key, value)`, by key.
    pub fn keys(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.keys.iter().map(|&(at, key_end, end)| {
            (
                &self.bytes[at as usize..key_end as usize],
                &self.bytes[key_end as usize..end as usize],
            )
        })
    }

    /// The count keys, once for each posting that adds to it, by key.
    pub fn counts(&self) -> impl Iterator<Item = &[u8]> {
        self.counts
            .iter()
            .map(|&(at, end)| &self.bytes[at as usize..end as usize])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::store::keys::{push_opt, push_str};
    use crate::store::names::{Names, NO_LIST};

    /// Entries by key, and count keys.
    type Reference = (BTreeMap<Vec<u8>, Vec<u8>>, Vec<Vec<u8>>);

    /// The entries as layout 7 built them, one allocation per part, with
    /// each list's name replaced by its interned prefix as `names` has it:
    /// the reference the one-buffer build must equal.
    fn reference(id: &str, number: u32, state: &RecordState, names: &Names) -> Reference {
        let list = |name: Vec<u8>| {
            let prefix = names.prefix(&name);
            assert_ne!(
                prefix,
                keys::interned(name[0], NO_LIST),
                "{name:?} not named"
            );
            prefix
        };
        let n = number.to_be_bytes().to_vec();
        let with_n = |v: &[u8]| [v, &n[..]].concat();
        let mut keys = BTreeMap::new();
        let mut counts = Vec::new();
        for (side, f) in [
            (CheckpointSide::Source, Field::SourceCheckpointItemId),
            (
                CheckpointSide::Destination,
                Field::DestinationCheckpointItemId,
            ),
        ] {
            if let Some(v) = state.get(f) {
                keys.insert(
                    [&keys::checkpoint_items(side, v)[..], &n].concat(),
                    Vec::new(),
                );
            }
        }
        let created = state.created_at().key_bytes();
        counts.push(keys::status_count(state.status()).to_vec());
        for project in state.projects() {
            let status = state.status().as_str();
            let (src, dst) = (
                state.get(Field::SourceRegion),
                state.get(Field::DestinationRegion),
            );
            for p in [
                Posting::new(IndexField::Status, Some(status)),
                Posting::new(IndexField::SourceRegion, src),
                Posting::new(IndexField::DestinationRegion, dst),
                Posting::new(IndexField::Route, Some(&route(src, dst, status))),
            ] {
                keys.insert(
                    [
                        list(p.name(project)),
                        Posting::suffix(created, number).to_vec(),
                    ]
                    .concat(),
                    Vec::new(),
                );
                counts.push(p.count_key(project));
                if matches!(p.field, IndexField::Status | IndexField::Route) {
                    let mut k = keys::hour_counts(&list(p.name(project)));
                    k.extend_from_slice(&hour_start(state.created_at()).key_bytes());
                    counts.push(k);
                }
            }
            let mut k = list(keys::order_list(project, OrderField::UpdatedAt));
            k.extend_from_slice(&state.updated_at().key_bytes());
            k.extend_from_slice(&n);
            keys.insert(k, created.to_vec());
            let mut k = list(keys::order_list(project, OrderField::Id));
            push_str(&mut k, id.as_bytes());
            keys.insert(k, with_n(&created));
            if Stuck::STATUSES.contains(&state.status()) {
                keys.insert(
                    [
                        list(keys::live_list(project, state.status())),
                        Posting::suffix(created, number).to_vec(),
                    ]
                    .concat(),
                    state.updated_at().key_bytes().to_vec(),
                );
            }
            let mut k = list(keys::order_list(project, OrderField::PlanId));
            push_opt(&mut k, state.get(Field::PlanId));
            k.extend_from_slice(&created);
            push_str(&mut k, id.as_bytes());
            keys.insert(k, with_n(&created));
        }
        (keys, counts)
    }

    proptest! {
        /// The one-buffer entries equal the reference's, for records
        /// folded from any events (absent fields, ids with NUL bytes).
        #[test]
        fn entries_equal_the_reference(
            events in proptest::collection::vec(crate::store::tests::arb_event(), 1..6),
            id in "[a-c\\x00]{0,4}",
            number in any::<u32>(),
        ) {
            let mut state = RecordState::new(&events[0]);
            for e in &events[1..] {
                state.apply(e);
            }
            // Lists named before (by another record) and named now.
            let names = Names::default();
            let mut naming = names.naming();
            naming.id(&keys::order_list("p", OrderField::Id));
            let e = Entries::of(&id, number, &state, &mut naming, None);
            let new = naming.finish(&mut crate::lsm::Ops::default()).unwrap();
            names.commit(new);
            let (keys, counts) = reference(&id, number, &state, &names);
            let got: BTreeMap<Vec<u8>, Vec<u8>> =
                e.keys().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            prop_assert_eq!(got.len(), e.keys().count(), "keys twice");
            prop_assert_eq!(got, keys);
            let got: Vec<Vec<u8>> = e.counts().map(<[u8]>::to_vec).collect();
            let mut counts = counts;
            counts.sort();
            prop_assert_eq!(got, counts);
            let sorted: Vec<&[u8]> = e.keys().map(|(k, _)| k).collect();
            prop_assert!(sorted.windows(2).all(|w| w[0] < w[1]), "not sorted");
            // `holds` says what `postings` says, for its own lists and the
            // first event's (a record's state moves out of some of them).
            let first = RecordState::new(&events[0]);
            for p in postings(&state).iter().chain(&postings(&first)) {
                prop_assert_eq!(p.holds(&state), postings(&state).contains(p), "{:?}", p);
            }
        }
    }

    #[test]
    fn route_values_roundtrip_whatever_the_regions_hold() {
        let cases = [
            (None, None),
            (Some(""), Some("-")),
            (Some("3:x"), None),
            (None, Some("a\0b")),
            (Some("région-1"), Some("1:")),
        ];
        let mut seen = std::collections::HashSet::new();
        for (src, dst) in cases {
            for st in Status::ALL {
                let v = route(src, dst, st.as_str());
                assert!(seen.insert(v.clone()), "{v:?} is ambiguous");
                let back = parse_route(&v).unwrap();
                assert_eq!(
                    (back.0.as_deref(), back.1.as_deref(), back.2),
                    (src, dst, st)
                );
            }
        }
        assert_eq!(parse_route("9:x-success"), None);
    }
}
