//! The list planner: a [`ListQuery`] becomes range scans over posting lists
//! and sort orders, never a scan of the whole store.
//!
//! - Filters are posting lists. The smallest drives the scan; every other
//!   filter is one point lookup per candidate (the posting entry is fully known
//!   from `created_at` and the record's number) until the lookups have cost
//!   what reading the list whole does, then a probe of its numbers read into
//!   a set (`plan/probe.rs`). So no record is read until it is on the page —
//!   or ties another on its sort value: entries name records by number, and
//!   ties are ordered by id, read from the records.
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
//! - The page's records are read in number order ([`Store::rows_of`]):
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
mod seek;
mod stuck;
mod walk;

use entry::{count_value, group_value, instant, order_entry};
use position::Position;
use probe::Probes;

/// Offsets below this are cheaper to walk than to skip by hour counts. Unit
/// tests skip from the first record, so small generated worlds take that path.
const HOUR_SKIP_MIN: usize = if cfg!(test) { 1 } else { 2000 };

/// What a visitor tells a scan: go on, or stop here.
type Step = Result<ControlFlow<()>, StoreError>;

/// A checkpoint-item filter: which side (`None`: either) and the value.
type CheckpointFilter<'q> = (Option<CheckpointSide>, &'q str);

/// The project-scoped filters of `q` as posting lists, and its checkpoint-item
/// filters (served by the global checkpoint index). Destructured so a new
/// filter cannot be silently ignored.
fn filters(q: &ListQuery) -> (Vec<Posting>, Vec<CheckpointFilter<'_>>) {
    let ListQuery {
        destination_region,
        source_region,
        status,
        source_checkpoint_item_id,
        destination_checkpoint_item_id,
        checkpoint_item_id,
        created: _,
        updated: _,
        stuck: _,
        sort: _,
        marker: _,
        offset: _,
        limit: _,
        with_count: _,
    } = q;
    let mut f = Vec::new();
    let mut add = |field, v: Option<&str>| {
        if let Some(v) = v {
            f.push(Posting::new(field, Some(v)));
        }
    };
    add(IndexField::DestinationRegion, destination_region.as_deref());
    add(IndexField::SourceRegion, source_region.as_deref());
    add(IndexField::Status, status.map(Status::as_str));
    // All three route fields: one posting holds exactly their intersection.
    if let (Some(s), Some(d), Some(st)) = (source_region, destination_region, status) {
        f.clear();
        f.push(Posting {
            field: IndexField::Route,
            value: Some(index::route(Some(s), Some(d), st.as_str())),
        });
    }
    let checkpoints = [
        (Some(CheckpointSide::Source), source_checkpoint_item_id),
        (
            Some(CheckpointSide::Destination),
            destination_checkpoint_item_id,
        ),
        (None, checkpoint_item_id),
    ]
    .into_iter()
    .filter_map(|(side, v)| v.as_deref().map(|v| (side, v)))
    .collect();
    (f, checkpoints)
}

/// Offset/limit bookkeeping while a plan emits records in order, by the
/// numbers their index entries give (the page then reads each record by
/// number, not through the id map).
struct Cursor {
    skip: usize,
    take: usize,
    numbers: Vec<u32>,
}

impl Cursor {
    fn push(&mut self, number: u32) {
        if self.skip > 0 {
            self.skip -= 1;
        } else if self.take > 0 {
            self.numbers.push(number);
            self.take -= 1;
        }
    }

    /// Skips a whole run of `n` rows if the offset covers it.
    fn skip_run(&mut self, n: usize) -> bool {
        let covered = self.skip >= n;
        if covered {
            self.skip -= n;
        }
        covered
    }

    fn done(&self) -> bool {
        self.take == 0
    }
}

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
    /// One page of the records listed under `project` that match `q`.
    pub fn list(&self, project: &str, q: &ListQuery) -> Result<Page, StoreError> {
        let after = self.marker(project, q)?;
        let (filters, checkpoints) = filters(q);
        let sort = q.sort_keys();
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        if !checkpoints.is_empty() {
            return self.list_by_checkpoint(project, q, &checkpoints, &sort, after);
        }
        let tie = sort.last().map_or(Dir::Desc, |k| k.dir);
        // A key fixed by an equality filter orders nothing, unless the marker
        // has another value there (it need not match the filters): then its
        // groups place the marker among the matches. Nothing orders past `id`.
        let marker_has =
            |f: Field, v: Option<&str>| after.as_ref().is_none_or(|(_, m)| m.get(f) == v);
        let mut keys = Vec::new();
        for k in sort {
            let fixed = match k.field {
                SortField::Status => q
                    .status
                    .is_some_and(|v| after.as_ref().is_none_or(|(_, m)| m.status() == v)),
                SortField::SourceRegion => {
                    q.source_region.is_some()
                        && marker_has(Field::SourceRegion, q.source_region.as_deref())
                }
                SortField::DestinationRegion => {
                    q.destination_region.is_some()
                        && marker_has(Field::DestinationRegion, q.destination_region.as_deref())
                }
                _ => false,
            };
            if !fixed {
                keys.push(k);
            }
            if k.field == SortField::Id {
                break;
            }
        }
        let mut planner = Planner {
            store: self,
            project,
            tie,
            // One row past the page tells whether more follow (`next_marker`).
            cur: Cursor {
                skip: q.offset.unwrap_or(0),
                take: limit.saturating_add(usize::from(limit > 0)),
                numbers: Vec::new(),
            },
            created: q.created,
            updated: q.updated,
            stuck: q.stuck,
            after: after.map(|m| Position::new(m, keys.clone(), tie)),
            probes: Probes::default(),
        };
        if !planner.cur.done() {
            planner.emit_page(&keys, &filters)?;
        }
        let count = match q.with_count {
            Some(true) => Some(planner.count_matches(&filters)?),
            _ => None,
        };
        let mut numbers = planner.cur.numbers;
        let more = next_marker(&mut numbers, limit).is_some();
        let records: Vec<_> = self
            .rows_of(&numbers)?
            .into_iter()
            .map(|(id, s)| s.view(&id))
            .collect();
        let next_marker = records.last().filter(|_| more).map(|r| r.id.clone());
        Ok(Page {
            records,
            count,
            next_marker,
        })
    }

    /// Checkpoint items are near-unique: read the few records that carry the
    /// value, filter and sort them in memory.
    fn list_by_checkpoint(
        &self,
        project: &str,
        q: &ListQuery,
        checkpoints: &[CheckpointFilter<'_>],
        sort: &[SortKey],
        after: Option<Row>,
    ) -> Result<Page, StoreError> {
        let (side, value) = checkpoints[0];
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
        for n in numbers {
            // The entries are by the value's hash: `matches` keeps the
            // records that carry the value itself.
            let (id, s) = self.row_of(n)?;
            if q.matches(project, &s) {
                rows.push((id, s));
            }
        }
        let tie = sort.last().map_or(Dir::Desc, |k| k.dir);
        rows.sort_by(|a, b| compare(a, b, sort, tie));
        let count = (q.with_count == Some(true)).then_some(rows.len() as u64);
        if let Some(p) = after.map(|m| Position::new(m, sort.to_vec(), tie)) {
            rows.retain(|r| p.follows(r));
        }
        let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
        let mut ids: Vec<String> = rows
            .iter()
            .skip(q.offset.unwrap_or(0))
            .take(limit.saturating_add(1))
            .map(|(id, _)| id.clone())
            .collect();
        let next_marker = next_marker(&mut ids, limit);
        let states: BTreeMap<&str, &RecordState> =
            rows.iter().map(|(id, s)| (id.as_str(), s)).collect();
        let records = ids.iter().map(|id| states[id.as_str()].view(id)).collect();
        Ok(Page {
            records,
            count,
            next_marker,
        })
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
    cur: Cursor,
    created: Window,
    updated: Window,
    stuck: Option<Stuck>,
    /// The marker's place, until the walk has passed it.
    after: Option<Position>,
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
