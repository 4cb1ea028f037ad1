//! The list planner: a [`ListQuery`] becomes range scans over posting lists
//! and sort orders, never a scan of the whole store.
//!
//! - A request runs in four stages: resolve (`plan/resolve.rs`), match (the
//!   walks below), page (`Paging`, `plan/position.rs`) and fetch
//!   ([`ReadView::list`]).
//! - Filters are posting lists. The smallest drives the scan; every other
//!   filter is tested per candidate (`plan/probe.rs`): on the candidate's
//!   record when the list holds most of the project (most candidates go on
//!   the page, whose fetch then finds the record cached), otherwise by a
//!   point lookup (the posting entry is fully known from `created_at` and
//!   the record's number) until the lookups have cost what reading the list
//!   whole does, then in a set of its numbers. Entries name records by
//!   number, and ties are ordered by id, read from the records.
//! - A leading `created_at` sort walks the driving posting forwards or
//!   backwards; `updated_at`, `id` and `plan_id` walk their order entries,
//!   unless the filters are selective enough that gathering and sorting their
//!   matches is cheaper.
//! - A leading `status` / `source_region` / `destination_region` sort walks the
//!   distinct values of that field (read from the counts) and plans the rest of
//!   the sort inside each value; whole groups are skipped by their count.
//! - Ties on a key are resolved by the remaining keys and finally by `id` in
//!   the direction of the last key, sorting only the tie run in memory.
//! - A `created_*` window bounds the walk of the postings (and an `updated_*`
//!   one the walk of the `updated_at` order); elsewhere a window is a test per
//!   candidate, and counts over a window are counted, not read.
//! - A `marker` is a seek: the walk starts at the marker's sort value (groups
//!   before it are skipped whole) and drops the few candidates of that value
//!   that do not come after it, so a page costs the same at any depth. Every
//!   plan places candidates by one rule, in `plan/position.rs`.
//! - The page's records are read in number order ([`ReadView::rows_of`]):
//!   records numbered near each other share a run block's frame.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::index::{self, CheckpointSide, IndexField, OrderField, Posting};
use super::keys;
use super::lists::{self, EntryIter};
use super::merge::Merge;
use super::query::{
    compare, directed, Dir, ListQuery, Page, SortField, SortKey, Stuck, Window, DEFAULT_LIMIT,
};
use super::summary::SummaryQuery;
use super::{ReadView, StoreError};
use crate::instant::Micros;
use crate::record::{Field, RecordState, Status};

mod entry;
mod gather;
mod position;
mod postings;
mod probe;
mod resolve;
mod seek;
mod stuck;
mod walk;

use entry::{count_value, group_value, instant, order_entry};
use position::{Paging, Position};
use probe::Probes;
use resolve::Resolved;

/// Offsets below this are cheaper to walk than to skip by hour counts. Unit
/// tests skip from the first record, so small generated worlds take that path.
const HOUR_SKIP_MIN: usize = if cfg!(test) { 1 } else { 2000 };

/// A page before its records are read: their numbers in the page's order,
/// whether more records follow, and the count when asked for.
pub(super) struct PageNumbers {
    pub(super) numbers: Vec<u32>,
    pub(super) more: bool,
    pub(super) count: Option<u64>,
}

/// What a visitor tells a scan: go on, or stop here.
type Step = Result<ControlFlow<()>, StoreError>;

/// A record as an index entry gives it: its number, its `created_at`, and
/// its id once known (from an entry that holds it, or read from the record
/// when the order needs it).
struct Tied {
    id: Option<String>,
    created: [u8; 8],
    number: u32,
}

impl Tied {
    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }
}

/// Records that share one sort value, waiting to be ordered by the
/// remaining keys and by id.
#[derive(Default)]
struct TieRun {
    value: Vec<u8>,
    ids: Vec<Tied>,
    /// The marker's sort value in this walk's encoding, while the marker
    /// has not been passed: the run holding it is placed by its entries.
    marker: Option<Vec<u8>>,
}

fn grouped_field(f: SortField) -> Option<IndexField> {
    match f {
        SortField::Status => Some(IndexField::Status),
        SortField::SourceRegion => Some(IndexField::SourceRegion),
        SortField::DestinationRegion => Some(IndexField::DestinationRegion),
        _ => None,
    }
}

impl ReadView {
    /// One page of the records listed under `project` that match `q`, in
    /// four stages: resolve the lists the filters name, the keys that order
    /// and the marker (`plan/resolve.rs`); match — walk or gather the lists
    /// in the page's order, intersecting by probes (`walk.rs`, `gather.rs`,
    /// `stuck.rs`, over `postings.rs`, `probe.rs`, `seek.rs`); page — each
    /// candidate placed by the paging position (`position.rs`); fetch —
    /// the page's records read in number order ([`ReadView::rows_of`]).
    pub fn list(&self, project: &str, q: &ListQuery) -> Result<Page, StoreError> {
        let page = self.page_numbers(project, q)?;
        self.fetch(page)
    }

    /// The first three stages of [`ReadView::list`]: the numbers of the
    /// page's records in its order, whether more follow, and the count.
    pub(super) fn page_numbers(
        &self,
        project: &str,
        q: &ListQuery,
    ) -> Result<PageNumbers, StoreError> {
        let plan = self.resolve(project, q)?;
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        let page = Paging::new(q.offset.unwrap_or(0), limit, plan.position());
        let (page, count) = if plan.checkpoints.is_empty() {
            let mut planner = Planner {
                store: self,
                project,
                tie: plan.tie,
                page,
                created: q.created,
                updated: q.updated,
                stuck: q.stuck,
                probes: Probes::default(),
            };
            if !planner.page.done() {
                planner.emit_page(&plan.keys, &plan.filters)?;
            }
            let count = match q.with_count {
                Some(true) => Some(planner.count_matches(&plan.filters)?),
                _ => None,
            };
            (planner.page, count)
        } else {
            self.page_by_checkpoint(project, q, &plan, page)?
        };
        let mut numbers = page.into_numbers();
        let more = next_marker(&mut numbers, limit).is_some();
        Ok(PageNumbers {
            numbers,
            more,
            count,
        })
    }

    /// Reads the page's records in number order; the page's last id is the
    /// next page's marker when a record past it was taken.
    fn fetch(&self, page: PageNumbers) -> Result<Page, StoreError> {
        let records: Vec<_> = self
            .rows_of(&page.numbers)?
            .into_iter()
            .map(|(id, s)| s.into_view(id))
            .collect();
        let next_marker = records.last().filter(|_| page.more).map(|r| r.id.clone());
        Ok(Page {
            records,
            count: page.count,
            next_marker,
        })
    }

    /// Checkpoint items are near-unique: the few records that carry the
    /// value are read, filtered, sorted in memory and paged.
    fn page_by_checkpoint(
        &self,
        project: &str,
        q: &ListQuery,
        plan: &Resolved<'_>,
        mut page: Paging,
    ) -> Result<(Paging, Option<u64>), StoreError> {
        let (side, value) = plan.checkpoints[0];
        let sides = match side {
            Some(s) => vec![s],
            None => vec![CheckpointSide::Source, CheckpointSide::Destination],
        };
        let mut numbers: Vec<u32> = Vec::new();
        for side in sides {
            let prefix = keys::checkpoint_items(side, value);
            for kv in self.scan_list(&prefix, Dir::Asc) {
                let (k, _) = kv?;
                let n = keys::read_checkpoint_item(&k[prefix.len()..])
                    .ok_or_else(|| StoreError::corrupt(&k, "bad checkpoint-item entry"))?;
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        numbers.dedup();
        let mut rows = Vec::new();
        for (row, n) in self.rows_of(&numbers)?.into_iter().zip(numbers) {
            // The entries are by the value's hash: `matches` keeps the
            // records that carry the value itself.
            if q.matches(project, &row.1) {
                rows.push((row, n));
            }
        }
        rows.sort_by(|a, b| compare(&a.0, &b.0, &plan.keys, plan.tie));
        let count = (q.with_count == Some(true)).then_some(rows.len() as u64);
        for (row, n) in rows {
            if page.done() {
                break;
            }
            page.push_row(&row, n);
        }
        Ok((page, count))
    }

    /// Every entry of one index list, in `dir` order.
    fn scan_list(&self, list: &[u8], dir: Dir) -> EntryIter {
        lists::scan(&self.snap(), list, dir == Dir::Asc)
    }

    /// The entries of one index list in `dir` order, from `seek` on
    /// (ascending) or strictly before it (descending) when given.
    fn scan_list_from(
        &self,
        list: &[u8],
        dir: Dir,
        seek: Option<&[u8]>,
    ) -> Result<EntryIter, StoreError> {
        match seek {
            None => Ok(self.scan_list(list, dir)),
            Some(b) => Ok(lists::scan_from(&self.snap(), list, b, dir == Dir::Asc)),
        }
    }
}

/// One list request being executed: the project, the direction of the final
/// `id` tie-break, and the page being filled.
struct Planner<'a> {
    store: &'a ReadView,
    project: &'a str,
    tie: Dir,
    /// The page: the offset or the marker's place, and what it holds.
    page: Paging,
    created: Window,
    updated: Window,
    stuck: Option<Stuck>,
    /// The filter lists candidates were tested against.
    probes: Probes,
}

/// A record with its id.
type Row = (String, RecordState);

/// Cuts the extra row fetched past a full page; the page's last id is then
/// the next page's marker.
fn next_marker<T: Clone>(ids: &mut Vec<T>, limit: usize) -> Option<T> {
    if ids.len() <= limit {
        return None;
    }
    ids.truncate(limit);
    ids.last().cloned()
}

impl Planner<'_> {
    /// The whole page. Stuck records, and the records of an `updated_*`
    /// window on another sort, are few enough to gather from their index
    /// range; everything else is walked in sort order.
    fn emit_page(&mut self, keys: &[SortKey], filters: &[Posting]) -> Result<(), StoreError> {
        if self.stuck.is_some_and(|k| k.want) {
            if let [SortKey {
                field: SortField::CreatedAt,
                dir,
            }] = keys
            {
                if *dir == self.tie {
                    return self.emit_stuck_by_created(*dir, filters);
                }
            }
            let found = self.stuck_candidates(filters)?;
            return self.emit_gathered(found, keys);
        }
        let leads_updated = keys
            .first()
            .is_some_and(|k| k.field == SortField::UpdatedAt);
        if !self.updated.is_open() && !leads_updated {
            if let Some(found) = self.updated_candidates(filters, gather::GATHER_MAX)? {
                return self.emit_gathered(found, keys);
            }
        }
        self.emit(keys, filters)
    }

    fn emit(&mut self, keys: &[SortKey], filters: &[Posting]) -> Result<(), StoreError> {
        let Some((first, rest)) = keys.split_first() else {
            return self.emit_by_id(filters);
        };
        if let Some(field) = grouped_field(first.field) {
            // Filters that leave few records (an earlier group's value, say)
            // are read whole and sorted rather than split into groups, each
            // walked and tested against the filters again.
            if !filters.is_empty() && self.gather_is_cheaper(filters)? {
                return self.emit_matches_sorted(keys, filters);
            }
            return self.emit_grouped(field, first.dir, rest, filters);
        }
        self.emit_linear(*first, rest, filters)
    }
}
