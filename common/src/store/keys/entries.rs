//! The index's keys: list names and their interned prefixes, counts, and
//! every entry of a posting, order or checkpoint list — each built and
//! read here, so an entry's layout is written in one place.

use super::{push_opt, push_str, read_number, read_str, skip_opt, space};
use crate::record::Status;

/// The tail of an integer entry (a posting, a `Live` or `updated_at`
/// order entry), and the value of an `id` or `plan_id` entry: an instant
/// and a record number, each big-endian.
pub fn instant_number(instant: [u8; 8], number: u32) -> [u8; 12] {
    let mut t = [0; 12];
    t[..8].copy_from_slice(&instant);
    t[8..].copy_from_slice(&number.to_be_bytes());
    t
}

/// Splits an integer entry's tail, written by [`instant_number`].
pub fn read_instant_number(tail: &[u8]) -> Option<([u8; 8], u32)> {
    let tail: &[u8; 12] = tail.try_into().ok()?;
    let (at, n) = tail.split_at(8);
    Some((at.try_into().ok()?, u32::from_be_bytes(n.try_into().ok()?)))
}

// ---- index lists: every key of a list is built here ----

/// Posting-list families. The byte is part of the key: never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum IndexField {
    Status = 1,
    SourceRegion = 2,
    DestinationRegion = 3,
    /// (source_region, destination_region, status) together, absent regions
    /// included: the dashboards' "this route, this state" filter is one range
    /// scan instead of an intersection of three long lists, and the route
    /// counts partition the project for summaries.
    Route = 4,
}

/// Which side's checkpoint item a global checkpoint entry indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum CheckpointSide {
    Source = 0,
    Destination = 1,
}

/// Secondary sort orders. The byte is part of the key: never reorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum OrderField {
    UpdatedAt = 0,
    Id = 1,
    PlanId = 2,
    /// Records still under way (`replicating`, `waiting_replicate`), a list
    /// per status in `created_at` order like a posting, each entry carrying
    /// `updated_at`: `stuck=true` in the default order walks them newest
    /// first and stops when its page is full.
    Live = 3,
}

/// The byte that stands for a status in keys: written out, not derived
/// from the declaration order (pinned by `store::tests::golden`).
pub fn status_byte(s: Status) -> u8 {
    match s {
        Status::Replicating => 0,
        Status::Success => 1,
        Status::Fail => 2,
        Status::Skip => 3,
        Status::WaitingReplicate => 4,
    }
}

/// The dictionary entry of the list `name` ([`space::LIST_NAME`]).
pub fn list_name(name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(name.len() + 1);
    k.push(space::LIST_NAME);
    k.extend_from_slice(name);
    k
}

/// The prefix of every entry of the interned list `id` in `space`.
pub fn interned(space: u8, id: u32) -> [u8; 5] {
    let n = id.to_be_bytes();
    [space, n[0], n[1], n[2], n[3]]
}

/// The prefix of every entry of the posting list interned as `id`.
pub fn posting(id: u32) -> [u8; 5] {
    interned(space::POSTING, id)
}

/// The prefix of the per-hour counts of the posting list interned as `id`.
pub fn hour_count(id: u32) -> [u8; 5] {
    interned(space::HOUR_COUNT, id)
}

/// The prefix of every entry of the order list interned as `id`.
pub fn order(id: u32) -> [u8; 5] {
    interned(space::ORDER, id)
}

/// The prefix of the per-hour counts of the posting list whose entries are
/// under `posting` ([`interned`] in [`space::POSTING`]): the same id in
/// [`space::HOUR_COUNT`], each count's key ending with its hour.
pub fn hour_counts(posting: &[u8]) -> Vec<u8> {
    let mut k = posting.to_vec();
    k[0] = space::HOUR_COUNT;
    k
}

/// What follows a list's keyspace byte: project, field, value.
pub fn push_list_tail(k: &mut Vec<u8>, project: &str, field: IndexField, value: Option<&str>) {
    push_str(k, project.as_bytes());
    k.push(field as u8);
    push_opt(k, value);
}

/// A list of `field = value` in `project`, in `space`: a posting list's
/// name ([`space::POSTING`]; its entries and hour counts are under its
/// interned id) or its count ([`space::COUNT`]).
pub fn list(space: u8, project: &str, field: IndexField, value: Option<&str>) -> Vec<u8> {
    let mut k = vec![space];
    push_list_tail(&mut k, project, field, value);
    k
}

/// The prefix of every count of `field` in `project` (one per value).
pub fn field_counts(project: &str, field: IndexField) -> Vec<u8> {
    let mut k = project_counts(project);
    k.push(field as u8);
    k
}

/// The prefix of every count of `project`.
pub fn project_counts(project: &str) -> Vec<u8> {
    let mut k = vec![space::COUNT];
    push_str(&mut k, project.as_bytes());
    k
}

pub fn push_order_list(k: &mut Vec<u8>, project: &str, order: OrderField) {
    k.push(space::ORDER);
    push_str(k, project.as_bytes());
    k.push(order as u8);
}

/// The name of one sort order's list in `project`.
pub fn order_list(project: &str, order: OrderField) -> Vec<u8> {
    let mut k = Vec::new();
    push_order_list(&mut k, project, order);
    k
}

/// The name of the list of one status's records still under way in a
/// project: entries `created_at number → updated_at`, like a posting.
pub fn live_list(project: &str, status: Status) -> Vec<u8> {
    let mut k = order_list(project, OrderField::Live);
    k.push(status_byte(status));
    k
}

/// The store-wide count of records in `status` ([`space::STATUS_COUNT`]).
pub fn status_count(status: Status) -> [u8; 2] {
    [space::STATUS_COUNT, status_byte(status)]
}

/// The global checkpoint entries of one value (and of the values that
/// share its hash, which the reader tells apart on the records).
pub fn checkpoint_items(side: CheckpointSide, value: &str) -> [u8; 10] {
    let mut k = [0; 10];
    k[0] = space::CHECKPOINT_ITEM;
    k[1] = side as u8;
    k[2..].copy_from_slice(&checkpoint_hash(value).to_be_bytes());
    k
}

/// A checkpoint-item entry: the value's entries ([`checkpoint_items`]),
/// then the record's number.
pub fn checkpoint_item(side: CheckpointSide, value: &str, number: u32) -> [u8; 14] {
    let mut k = [0; 14];
    k[..10].copy_from_slice(&checkpoint_items(side, value));
    k[10..].copy_from_slice(&number.to_be_bytes());
    k
}

/// A checkpoint item's place in its index: 64-bit FNV-1a of its bytes.
/// Written out here, not taken from a library whose hash may change: it
/// is part of the keys on disk (pinned by `store::tests::golden`).
pub fn checkpoint_hash(value: &str) -> u64 {
    value.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

// ---- building an entry's key into a reused buffer (the batch's hot path) ----

/// Writes the name of the posting list `field = value` in `project` into
/// `k` (cleared first).
pub fn write_posting_name(k: &mut Vec<u8>, project: &str, field: IndexField, value: Option<&str>) {
    k.clear();
    k.push(space::POSTING);
    push_list_tail(k, project, field, value);
}

/// Pushes the count key of the posting list named `posting` (written by
/// [`write_posting_name`]): the same name in [`space::COUNT`].
pub fn push_count_of(k: &mut Vec<u8>, posting: &[u8]) {
    k.push(space::COUNT);
    k.extend_from_slice(&posting[1..]);
}

/// Writes the name of `order` in `project` into `k` (cleared first); a
/// `Live` list names its status.
pub fn write_order_name(k: &mut Vec<u8>, project: &str, order: OrderField, status: Option<Status>) {
    k.clear();
    push_order_list(k, project, order);
    k.extend(status.map(status_byte));
}

/// Pushes an `id` order entry's key after its list prefix: the id, whole
/// (its value: `created_at number`).
pub fn push_id_order(k: &mut Vec<u8>, id: &[u8]) {
    push_str(k, id);
}

/// Pushes a `plan_id` order's sort value: the plan, absent first.
pub fn push_plan_order(k: &mut Vec<u8>, plan: Option<&str>) {
    push_opt(k, plan);
}

/// Pushes a `plan_id` order entry's key after its list prefix: the plan,
/// then `created_at` and the id, so a plan's entries follow creation (its
/// value: `created_at number`).
pub fn push_plan_order_entry(k: &mut Vec<u8>, plan: Option<&str>, created: [u8; 8], id: &[u8]) {
    push_plan_order(k, plan);
    k.extend_from_slice(&created);
    push_str(k, id);
}

// ---- reading entries and counts ----

/// A count's value: u64, big-endian.
pub fn read_count(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}

/// The hour a per-hour count's key ends with, after its prefix
/// ([`hour_counts`]).
pub fn read_hour(tail: &[u8]) -> Option<[u8; 8]> {
    tail.try_into().ok()
}

/// The value a count key names after its field's prefix ([`field_counts`]):
/// `None` for the absent value.
pub fn read_count_value(tail: &[u8]) -> Option<Option<String>> {
    match tail.first()? {
        0 if tail.len() == 1 => Some(None),
        1 => read_str(&tail[1..])
            .filter(|(_, rest)| rest.is_empty())
            .and_then(|(v, _)| String::from_utf8(v).ok())
            .map(Some),
        _ => None,
    }
}

/// The project a count key (any of [`project_counts`]) is under.
pub fn read_count_project(k: &[u8]) -> Option<String> {
    let (project, _) = read_str(k.strip_prefix(&[space::COUNT])?)?;
    String::from_utf8(project).ok()
}

/// The list name a dictionary entry ([`list_name`]) holds.
pub fn read_list_name(k: &[u8]) -> Option<&[u8]> {
    k.strip_prefix(&[space::LIST_NAME])
}

/// The record number a checkpoint-item entry names, after its prefix
/// ([`checkpoint_items`]).
pub fn read_checkpoint_item(tail: &[u8]) -> Option<u32> {
    read_number(tail)
}

/// One entry of a sort order, as its key and value give it.
pub struct OrderEntry {
    /// The sort value, as bytes that sort like it.
    pub value: Vec<u8>,
    pub created: [u8; 8],
    pub number: u32,
    /// The record's id, when the entry holds it (`id` and `plan_id`: their
    /// sort values are strings); the `updated_at` order holds integers.
    pub id: Option<String>,
}

/// Reads an order entry from its key after the list prefix and its value:
/// `updated_at number → created_at`, `id → created_at number`, or `plan
/// created_at id → created_at number`. `None` for a malformed entry, and
/// for a `Live` list's (postings in form: [`read_instant_number`]).
pub fn read_order_entry(order: OrderField, tail: &[u8], v: &[u8]) -> Option<OrderEntry> {
    match order {
        OrderField::UpdatedAt => {
            let (updated, number) = read_instant_number(tail)?;
            Some(OrderEntry {
                value: updated.to_vec(),
                created: v.try_into().ok()?,
                number,
                id: None,
            })
        }
        OrderField::Live => None,
        OrderField::Id | OrderField::PlanId => {
            let (value_len, id_at) = match order {
                OrderField::Id => (0, 0),
                _ => {
                    let value_len = tail.len() - skip_opt(tail)?.len();
                    (value_len, value_len + 8)
                }
            };
            let id = read_whole_str(tail.get(id_at..)?)?;
            let (at, n) = v.split_at_checked(8)?;
            let value = match order {
                OrderField::Id => id.as_bytes().to_vec(),
                _ => tail[..value_len].to_vec(),
            };
            Some(OrderEntry {
                value,
                created: at.try_into().ok()?,
                number: read_number(n)?,
                id: Some(id),
            })
        }
    }
}

/// The `plan_id` order's sort value an entry's key starts with (after its
/// list prefix), and the rest.
pub fn split_plan_order(tail: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = skip_opt(tail)?;
    Some(tail.split_at(tail.len() - rest.len()))
}

/// A string that is the whole of `tail`, as UTF-8.
fn read_whole_str(tail: &[u8]) -> Option<String> {
    read_str(tail)
        .filter(|(_, rest)| rest.is_empty())
        .and_then(|(s, _)| String::from_utf8(s).ok())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Every order entry reads back as it was built: sort value,
        /// created_at, number and id (ids and plans with NUL bytes).
        #[test]
        fn order_entries_read_back_as_built(
            id in "[a-c\\x00]{0,4}",
            plan in proptest::option::of("[a-c\\x00]{0,4}"),
            created in any::<[u8; 8]>(),
            number in any::<u32>(),
        ) {
            let value = instant_number(created, number);
            let mut k = Vec::new();
            push_id_order(&mut k, id.as_bytes());
            let e = read_order_entry(OrderField::Id, &k, &value).unwrap();
            prop_assert_eq!((&e.value[..], e.created, e.number), (id.as_bytes(), created, number));
            prop_assert_eq!(e.id.as_deref(), Some(id.as_str()));

            let mut k = Vec::new();
            push_plan_order_entry(&mut k, plan.as_deref(), created, id.as_bytes());
            let e = read_order_entry(OrderField::PlanId, &k, &value).unwrap();
            let mut sort_value = Vec::new();
            push_plan_order(&mut sort_value, plan.as_deref());
            prop_assert_eq!(&e.value, &sort_value);
            prop_assert_eq!(split_plan_order(&k).unwrap().0, &sort_value[..]);
            prop_assert_eq!((e.created, e.number), (created, number));
            prop_assert_eq!(e.id.as_deref(), Some(id.as_str()));

            let k = instant_number(created, number);
            let e = read_order_entry(OrderField::UpdatedAt, &k, &created).unwrap();
            prop_assert_eq!((&e.value[..], e.created, e.number), (&created[..], created, number));
            prop_assert!(read_order_entry(OrderField::Live, &k, &created).is_none());
        }
    }
}
