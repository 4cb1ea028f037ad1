//! A second implementation of the fold and of the list, written to be obviously
//! right rather than fast, and sharing no code with [`crate::record::RecordState`]
//! or the store's planner: sort a record's distinct events by the contract's
//! order key and walk them. The property tests, the end-to-end tests and the
//! benchmark's PostgreSQL rows compare the real thing against it, so the two
//! implementations check each other on random streams.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use time::macros::format_description;
use time::OffsetDateTime;

use crate::event::{decode, Event, EventType};
use crate::instant::Micros;
use crate::record::{ExtraInfo, Field, Record, Status};
use crate::store::{Dir, ListQuery, Page, SortField, DEFAULT_LIMIT};

/// The record that one record's events fold to; `None` without events.
/// Events may come in any order and repeat.
pub fn fold(id: &str, events: &[&Event]) -> Option<Record> {
    // The set of distinct events (an event_id names one event) in K order.
    let mut set: Vec<&Event> = Vec::new();
    for e in events {
        if !set.iter().any(|s| s.event_id == e.event_id) {
            set.push(e);
        }
    }
    set.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    let status_event = *set
        .iter()
        .max_by(|a, b| status_key(a).cmp(&status_key(b)))?;

    let mut r = Record {
        id: id.to_owned(),
        source_region: None,
        source_project_id: None,
        source_checkpoint_id: None,
        source_checkpoint_item_id: None,
        destination_region: None,
        destination_project_id: None,
        destination_checkpoint_id: None,
        destination_checkpoint_item_id: None,
        status: status_of(status_event.kind),
        plan_id: None,
        created_at: render(set.iter().map(|e| e.occurred_at).min()?),
        updated_at: render(set.iter().map(|e| e.occurred_at).max()?),
        extra_info: ExtraInfo {
            auto_trigger: false,
            progress: 0,
            fail_reason: String::new(),
            fail_code: String::new(),
        },
    };
    // Walking in K order, every carried value overwrites: the last writer wins.
    for e in &set {
        let carried = |f: Field| e.identity.fields[f as usize].clone();
        let take = |slot: &mut Option<String>, f: Field| {
            if let Some(v) = carried(f) {
                *slot = Some(v);
            }
        };
        take(&mut r.source_region, Field::SourceRegion);
        take(&mut r.source_project_id, Field::SourceProjectId);
        take(&mut r.source_checkpoint_id, Field::SourceCheckpointId);
        take(
            &mut r.source_checkpoint_item_id,
            Field::SourceCheckpointItemId,
        );
        take(&mut r.destination_region, Field::DestinationRegion);
        take(&mut r.destination_project_id, Field::DestinationProjectId);
        take(
            &mut r.destination_checkpoint_id,
            Field::DestinationCheckpointId,
        );
        take(
            &mut r.destination_checkpoint_item_id,
            Field::DestinationCheckpointItemId,
        );
        take(&mut r.plan_id, Field::PlanId);
        if let Some(b) = e.identity.auto_trigger {
            r.extra_info.auto_trigger = b;
        }
    }
    let last_attempt = set.iter().map(|e| e.attempt).max()?;
    r.extra_info.progress = if status_event.kind == EventType::Succeeded {
        100
    } else {
        set.iter()
            .filter(|e| e.attempt == last_attempt)
            .filter_map(|e| e.progress)
            .max()
            .unwrap_or(0)
    };
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    match status_event.kind {
        EventType::Failed => {
            r.extra_info.fail_code = text(&status_event.fail_code);
            r.extra_info.fail_reason = text(&status_event.fail_reason);
        }
        EventType::Skipped => r.extra_info.fail_reason = text(&status_event.fail_reason),
        _ => {}
    }
    Some(r)
}

/// `K(e) = (attempt, occurred_at, event_id)`.
fn order_key(e: &Event) -> (u32, i64, &str) {
    (e.attempt, e.occurred_at.0, &e.event_id)
}

/// `(attempt, rank, occurred_at, event_id)`.
fn status_key(e: &Event) -> (u32, u8, i64, &str) {
    let rank = match e.kind {
        EventType::Queued => 0,
        EventType::Started | EventType::Progress => 1,
        EventType::Succeeded | EventType::Failed | EventType::Skipped => 2,
    };
    (e.attempt, rank, e.occurred_at.0, &e.event_id)
}

fn status_of(kind: EventType) -> Status {
    match kind {
        EventType::Queued => Status::WaitingReplicate,
        EventType::Started | EventType::Progress => Status::Replicating,
        EventType::Succeeded => Status::Success,
        EventType::Failed => Status::Fail,
        EventType::Skipped => Status::Skip,
    }
}

/// UTC, `YYYY-MM-DDTHH:MM:SS.ffffff`.
fn render(at: Micros) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.0) * 1000)
        .expect("instant in range");
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
    ))
    .expect("formats")
}

/// Every record of a stream of events, by id.
pub fn fold_events<'a>(events: impl IntoIterator<Item = &'a Event>) -> BTreeMap<String, Record> {
    let mut by_record: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for e in events {
        by_record.entry(&e.record_id).or_default().push(e);
    }
    by_record
        .into_iter()
        .filter_map(|(id, es)| Some((id.to_owned(), fold(id, &es)?)))
        .collect()
}

/// Every record of a stream of Kafka messages `(key, value)`; messages the
/// contract rejects are left out (the store quarantines them).
pub fn fold_messages<'a>(
    messages: impl IntoIterator<Item = (Option<&'a [u8]>, Option<&'a [u8]>)>,
) -> BTreeMap<String, Record> {
    let events: Vec<Event> = messages
        .into_iter()
        .filter_map(|(k, v)| decode(k, v).ok())
        .collect();
    fold_events(&events)
}

/// The digest `Store::digest` promises: SHA-256 over every record as the API
/// renders it, one JSON document and a newline each, in id order.
pub fn digest(records: &BTreeMap<String, Record>) -> String {
    let mut h = Sha256::new();
    for r in records.values() {
        h.update(serde_json::to_vec(r).expect("record serializes"));
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Whether a record is listed under `project`.
pub fn listed_under(r: &Record, project: &str) -> bool {
    r.source_project_id.as_deref() == Some(project)
        || r.destination_project_id.as_deref() == Some(project)
}

/// Whether a record is stuck: still under way, its last event before the
/// cutoff of its status (compared as rendered text).
pub fn is_stuck(r: &Record, k: &crate::store::Stuck) -> bool {
    let cutoff = match r.status {
        Status::Replicating => k.replicating_before,
        Status::WaitingReplicate => k.waiting_before,
        _ => return false,
    };
    r.updated_at.as_str() < cutoff.render().as_str()
}

/// The list, naively: filter every record, sort, cut the page.
pub fn list(records: &BTreeMap<String, Record>, project: &str, q: &ListQuery) -> Page {
    let ListQuery {
        destination_region,
        source_region,
        status,
        source_checkpoint_item_id,
        destination_checkpoint_item_id,
        checkpoint_item_id,
        created,
        updated,
        stuck,
        sort,
        marker,
        offset,
        limit,
        with_count,
    } = q;
    let eq = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
    // Rendered instants are fixed-width, so the text compares like the time.
    let within = |w: &crate::store::Window, at: &str| {
        w.after.is_none_or(|a| at >= a.render().as_str())
            && w.before.is_none_or(|b| at < b.render().as_str())
    };
    let mut rows: Vec<&Record> = records
        .values()
        .filter(|r| listed_under(r, project))
        .filter(|r| eq(destination_region, &r.destination_region))
        .filter(|r| eq(source_region, &r.source_region))
        .filter(|r| status.is_none_or(|s| s == r.status))
        .filter(|r| eq(source_checkpoint_item_id, &r.source_checkpoint_item_id))
        .filter(|r| {
            eq(
                destination_checkpoint_item_id,
                &r.destination_checkpoint_item_id,
            )
        })
        .filter(|r| {
            checkpoint_item_id.is_none()
                || *checkpoint_item_id == r.source_checkpoint_item_id
                || *checkpoint_item_id == r.destination_checkpoint_item_id
        })
        .filter(|r| within(created, &r.created_at) && within(updated, &r.updated_at))
        .filter(|r| stuck.is_none_or(|k| is_stuck(r, &k) == k.want))
        .collect();
    // No sort (or an empty one) means created_at descending.
    let keys: Vec<(SortField, Dir)> = match sort {
        Some(s) if !s.is_empty() => s.iter().map(|k| (k.field, k.dir)).collect(),
        _ => vec![(SortField::CreatedAt, Dir::Desc)],
    };
    // Absent strings sort before every string.
    let value = |r: &Record, f: SortField| -> Option<String> {
        match f {
            SortField::CreatedAt => Some(r.created_at.clone()),
            SortField::UpdatedAt => Some(r.updated_at.clone()),
            SortField::Status => Some(r.status.as_str().to_owned()),
            SortField::Id => Some(r.id.clone()),
            SortField::SourceRegion => r.source_region.clone(),
            SortField::DestinationRegion => r.destination_region.clone(),
            SortField::PlanId => r.plan_id.clone(),
        }
    };
    let directed = |o: Ordering, d: Dir| if d == Dir::Asc { o } else { o.reverse() };
    let cmp = |a: &Record, b: &Record| {
        for &(f, d) in &keys {
            let o = value(a, f).cmp(&value(b, f));
            if o != Ordering::Equal {
                return directed(o, d);
            }
        }
        // Ties: by id, in the direction of the last key.
        directed(a.id.cmp(&b.id), keys.last().expect("a key").1)
    };
    rows.sort_by(|a, b| cmp(a, b));
    let count = rows.len() as u64;
    // A marker: everything up to its place in the order is behind us.
    if let Some(m) = marker {
        let m = records
            .get(m)
            .filter(|r| listed_under(r, project))
            .expect("the marker is listed under the project");
        rows.retain(|r| cmp(r, m) == Ordering::Greater);
    }
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let rest: Vec<&Record> = rows.into_iter().skip(offset.unwrap_or(0)).collect();
    let records: Vec<Record> = rest.iter().take(limit).map(|r| (*r).clone()).collect();
    let next_marker = (limit > 0 && rest.len() > limit).then(|| records[limit - 1].id.clone());
    Page {
        records,
        count: (*with_count == Some(true)).then_some(count),
        next_marker,
    }
}
