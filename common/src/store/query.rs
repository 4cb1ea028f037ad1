//! The list API's query vocabulary, independent of how it is executed: sort
//! fields and directions, the [`ListQuery`] with its defaults and its meaning
//! for one record (filters and order), and the [`Page`] it returns. The planner (`plan.rs`)
//! turns it into index scans.

use std::cmp::Ordering;

use crate::instant::Micros;
use crate::record::{Field, Record, RecordState, Status};

pub const DEFAULT_LIMIT: usize = 1000;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    Asc,
    Desc,
}

crate::vocabulary! {
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum SortField {
        CreatedAt = "created_at",
        UpdatedAt = "updated_at",
        Status = "status",
        Id = "id",
        SourceRegion = "source_region",
        DestinationRegion = "destination_region",
        PlanId = "plan_id",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SortKey {
    pub field: SortField,
    pub dir: Dir,
}

/// A half-open window on one timestamp: `after` inclusive, `before`
/// exclusive, so consecutive windows tile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub after: Option<Micros>,
    pub before: Option<Micros>,
}

impl Window {
    pub fn contains(&self, t: Micros) -> bool {
        self.after.is_none_or(|a| t >= a) && self.before.is_none_or(|b| t < b)
    }

    pub fn is_open(&self) -> bool {
        self.after.is_none() && self.before.is_none()
    }

    /// Whether a walk in `dir` order has gone past the window at `t`.
    pub(super) fn passed(&self, t: Micros, dir: Dir) -> bool {
        match dir {
            Dir::Asc => self.before.is_some_and(|b| t >= b),
            Dir::Desc => self.after.is_some_and(|a| t < a),
        }
    }
}

/// `stuck=true|false`, resolved against the clock by the caller so that the
/// store stays a function of the events: a record is stuck when its status
/// is `replicating` or `waiting_replicate` and its last event (`updated_at`)
/// is before that status's cutoff (now minus the configured threshold).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stuck {
    /// `true`: only stuck records; `false`: none of them.
    pub want: bool,
    pub replicating_before: Micros,
    pub waiting_before: Micros,
}

impl Stuck {
    /// The statuses a record can be stuck in.
    pub const STATUSES: [Status; 2] = [Status::Replicating, Status::WaitingReplicate];

    /// The `updated_at` before which a record in `status` is stuck.
    pub fn cutoff(&self, status: Status) -> Option<Micros> {
        match status {
            Status::Replicating => Some(self.replicating_before),
            Status::WaitingReplicate => Some(self.waiting_before),
            _ => None,
        }
    }

    pub fn is_stuck(&self, s: &RecordState) -> bool {
        self.cutoff(s.status()).is_some_and(|c| s.updated_at() < c)
    }
}

/// A list request within one project. Every field is optional; `None` means
/// the API default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub destination_region: Option<String>,
    pub source_region: Option<String>,
    pub status: Option<Status>,
    pub source_checkpoint_item_id: Option<String>,
    pub destination_checkpoint_item_id: Option<String>,
    pub checkpoint_item_id: Option<String>,
    /// `created_after` / `created_before`.
    pub created: Window,
    /// `updated_after` / `updated_before`.
    pub updated: Window,
    pub stuck: Option<Stuck>,
    pub sort: Option<Vec<SortKey>>,
    /// Continue right after this record (its current place in the sort);
    /// excludes `offset`.
    pub marker: Option<String>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    pub with_count: Option<bool>,
}

impl ListQuery {
    /// Whether a record listed under `project` matches every filter.
    pub fn matches(&self, project: &str, s: &RecordState) -> bool {
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
            sort: _,
            marker: _,
            offset: _,
            limit: _,
            with_count: _,
        } = self;
        let eq =
            |want: &Option<String>, f: Field| want.as_deref().is_none_or(|w| s.get(f) == Some(w));
        let either = |w: &str| {
            s.get(Field::SourceCheckpointItemId) == Some(w)
                || s.get(Field::DestinationCheckpointItemId) == Some(w)
        };
        s.projects().contains(&project)
            && eq(destination_region, Field::DestinationRegion)
            && eq(source_region, Field::SourceRegion)
            && status.is_none_or(|st| s.status() == st)
            && eq(source_checkpoint_item_id, Field::SourceCheckpointItemId)
            && eq(
                destination_checkpoint_item_id,
                Field::DestinationCheckpointItemId,
            )
            && checkpoint_item_id.as_deref().is_none_or(either)
            && created.contains(s.created_at())
            && updated.contains(s.updated_at())
            && stuck.is_none_or(|k| k.is_stuck(s) == k.want)
    }

    pub fn sort_keys(&self) -> Vec<SortKey> {
        match &self.sort {
            Some(s) if !s.is_empty() => s.clone(),
            _ => vec![SortKey {
                field: SortField::CreatedAt,
                dir: Dir::Desc,
            }],
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub records: Vec<Record>,
    pub count: Option<u64>,
    /// The last record's id when the page is full and more records follow:
    /// the `marker` of the next page.
    pub next_marker: Option<String>,
}

/// A sort value of a record; `None` strings sort first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum SortVal<'a> {
    Time(Micros),
    Str(Option<&'a str>),
}

fn sort_val<'a>(id: &'a str, s: &'a RecordState, f: SortField) -> SortVal<'a> {
    match f {
        SortField::CreatedAt => SortVal::Time(s.created_at()),
        SortField::UpdatedAt => SortVal::Time(s.updated_at()),
        SortField::Status => SortVal::Str(Some(s.status().as_str())),
        SortField::Id => SortVal::Str(Some(id)),
        SortField::SourceRegion => SortVal::Str(s.get(Field::SourceRegion)),
        SortField::DestinationRegion => SortVal::Str(s.get(Field::DestinationRegion)),
        SortField::PlanId => SortVal::Str(s.get(Field::PlanId)),
    }
}

pub(super) fn directed(o: Ordering, d: Dir) -> Ordering {
    match d {
        Dir::Asc => o,
        Dir::Desc => o.reverse(),
    }
}

/// The API's order of two records under `keys`, ties broken by `id` in the
/// `tie` direction.
pub(super) fn compare(
    a: &(String, RecordState),
    b: &(String, RecordState),
    keys: &[SortKey],
    tie: Dir,
) -> Ordering {
    for k in keys {
        let o = sort_val(&a.0, &a.1, k.field).cmp(&sort_val(&b.0, &b.1, k.field));
        if o != Ordering::Equal {
            return directed(o, k.dir);
        }
    }
    directed(a.0.cmp(&b.0), tie)
}
