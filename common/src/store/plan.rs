//! The list planner: a [`ListQuery`] becomes range scans over posting lists
//! and sort orders, never a scan of the whole store.
//!
//! - Filters are posting lists. The smallest drives the scan; every other
//!   filter is one point lookup per candidate (the posting entry is fully known
//!   from `created_at` and `id`), so no record is read until it is on the page.
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
//!   that do not come after it, so a page costs the same at any depth.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::ControlFlow;

use super::blocks::{self, EntryIter};
use super::index::{
    self, checkpoint_prefix, order_prefix, CheckpointSide, IndexField, OrderField, Posting,
};
use super::keys::{self, space};
use super::merge::Merge;
use super::query::{
    compare, directed, Dir, ListQuery, Page, SortField, SortKey, Stuck, Window, DEFAULT_LIMIT,
};
use super::{Store, StoreError};
use crate::instant::Micros;
use crate::record::{Field, RecordState, Status};

mod stuck;

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

/// Offset/limit bookkeeping while a plan emits ids in order.
struct Cursor {
    skip: usize,
    take: usize,
    ids: Vec<String>,
}

impl Cursor {
    fn push(&mut self, id: String) {
        if self.skip > 0 {
            self.skip -= 1;
        } else if self.take > 0 {
            self.ids.push(id);
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

    fn step(&self) -> ControlFlow<()> {
        match self.done() {
            true => ControlFlow::Break(()),
            false => ControlFlow::Continue(()),
        }
    }
}

/// Ids that share one sort value, waiting to be ordered by the remaining
/// keys; each with its `created_at` (known from the index entry).
#[derive(Default)]
struct TieRun {
    value: Vec<u8>,
    ids: Vec<(String, [u8; 8])>,
}

fn grouped_field(f: SortField) -> Option<IndexField> {
    match f {
        SortField::Status => Some(IndexField::Status),
        SortField::SourceRegion => Some(IndexField::SourceRegion),
        SortField::DestinationRegion => Some(IndexField::DestinationRegion),
        _ => None,
    }
}

impl Store {
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
                ids: Vec::new(),
            },
            created: q.created,
            updated: q.updated,
            stuck: q.stuck,
            after,
            keys: keys.clone(),
        };
        if !planner.cur.done() {
            planner.emit(&keys, &filters)?;
        }
        let count = match q.with_count {
            Some(true) => Some(planner.count_matches(&filters)?),
            _ => None,
        };
        let mut ids = planner.cur.ids;
        let next_marker = next_marker(&mut ids, limit);
        let mut records = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(s) = self.record_state(id)? {
                records.push(s.view(id));
            }
        }
        Ok(Page {
            records,
            count,
            next_marker,
        })
    }

    /// The marker record, which must be listed under `project`.
    fn marker(&self, project: &str, q: &ListQuery) -> Result<Option<Row>, StoreError> {
        let Some(id) = &q.marker else {
            return Ok(None);
        };
        if q.offset.is_some_and(|o| o > 0) {
            return Err(StoreError::query(
                "marker",
                "`marker` and `offset` cannot be combined",
            ));
        }
        match self.record_state(id)? {
            Some(s) if s.projects().contains(&project) => Ok(Some((id.clone(), s))),
            _ => Err(StoreError::query(
                "marker",
                format!("record `{id}` is not listed under project `{project}`"),
            )),
        }
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
        let mut ids: Vec<String> = Vec::new();
        for side in sides {
            let prefix = checkpoint_prefix(side, value);
            for kv in self.scan_list(&prefix, Dir::Asc) {
                let (k, _) = kv?;
                ids.push(parse_id(&k, &k[prefix.len()..])?);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let mut rows = Vec::new();
        for id in ids {
            if let Some(s) = self.record_state(&id)? {
                if q.matches(project, &s) {
                    rows.push((id, s));
                }
            }
        }
        let tie = sort.last().map_or(Dir::Desc, |k| k.dir);
        rows.sort_by(|a, b| compare(a, b, sort, tie));
        let count = (q.with_count == Some(true)).then_some(rows.len() as u64);
        if let Some(m) = &after {
            rows.retain(|r| compare(r, m, sort, tie) == Ordering::Greater);
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
        blocks::scan(&self.tree, list, index::blocked(list), dir == Dir::Asc)
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
            Some(b) => {
                blocks::scan_from(&self.tree, list, index::blocked(list), b, dir == Dir::Asc)
            }
        }
    }
}

/// One list request being executed: the project, the direction of the final
/// `id` tie-break, and the page being filled.
struct Planner<'a> {
    store: &'a Store,
    project: &'a str,
    tie: Dir,
    cur: Cursor,
    created: Window,
    updated: Window,
    stuck: Option<Stuck>,
    /// The marker, until the walk has passed it.
    after: Option<Row>,
    /// The sort the ids are emitted in (for placing candidates against the marker).
    keys: Vec<SortKey>,
}

/// A record with its id.
type Row = (String, RecordState);

/// Cuts the extra row fetched past a full page; the page's last id is then
/// the next page's marker.
fn next_marker(ids: &mut Vec<String>, limit: usize) -> Option<String> {
    if ids.len() <= limit {
        return None;
    }
    ids.truncate(limit);
    ids.last().cloned()
}

/// The tighter of two seek bounds: the later one ascending, the earlier one
/// descending.
fn tighter<T: Ord>(a: Option<T>, b: Option<T>, dir: Dir) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(match dir {
            Dir::Asc => a.max(b),
            Dir::Desc => a.min(b),
        }),
        (a, b) => a.or(b),
    }
}

/// A descending seek bound just past every entry that starts with `value`
/// (entries continue with instants and ids, never with 0xFF bytes).
fn past(value: &[u8]) -> Vec<u8> {
    let mut b = value.to_vec();
    b.extend_from_slice(&[0xff; 9]);
    b
}

impl Planner<'_> {
    fn emit(&mut self, keys: &[SortKey], filters: &[Posting]) -> Result<(), StoreError> {
        if self.stuck.is_some_and(|k| k.want) {
            return self.emit_stuck(keys, filters);
        }
        let Some((first, rest)) = keys.split_first() else {
            return self.emit_by_id(filters);
        };
        if let Some(field) = grouped_field(first.field) {
            return self.emit_grouped(field, first.dir, rest, filters);
        }
        self.emit_linear(*first, rest, filters)
    }

    /// Only the `id` tie-break is left. Inside the marker's place in every
    /// earlier key, the ids that follow the marker are those past its id.
    fn emit_by_id(&mut self, filters: &[Posting]) -> Result<(), StoreError> {
        let tie = self.tie;
        let after = self.after.take().map(|(id, _)| id);
        let follows = |id: &str| {
            after
                .as_deref()
                .is_none_or(|m| directed(id.cmp(m), tie) == Ordering::Greater)
        };
        if filters.is_empty() {
            let prefix = order_prefix(self.project, OrderField::Id);
            let seek = after.as_deref().map(|m| {
                let mut b = Vec::new();
                keys::push_str(&mut b, m.as_bytes());
                match tie {
                    Dir::Asc => b,
                    Dir::Desc => past(&b),
                }
            });
            for kv in self.store.scan_list_from(&prefix, tie, seek.as_deref())? {
                let (k, v) = kv?;
                let id = parse_id(&k, &k[prefix.len()..])?;
                if follows(&id) && self.admits(&[], created_value(&k, &v)?, None, &id)? {
                    self.cur.push(id);
                    if self.cur.done() {
                        break;
                    }
                }
            }
            return Ok(());
        }
        let mut ids: Vec<String> = Vec::new();
        self.for_each_match(filters, Dir::Asc, &mut |_, id| {
            if follows(&id) {
                ids.push(id);
            }
            Ok(ControlFlow::Continue(()))
        })?;
        ids.sort_unstable_by(|a, b| directed(a.cmp(b), tie));
        ids.into_iter().for_each(|id| self.cur.push(id));
        Ok(())
    }

    /// A leading status/region sort: each value of the field in order, the
    /// rest of the sort planned inside it; groups the offset covers are
    /// skipped by their count, and groups before the marker's are skipped.
    fn emit_grouped(
        &mut self,
        field: IndexField,
        dir: Dir,
        rest: &[SortKey],
        filters: &[Posting],
    ) -> Result<(), StoreError> {
        let mut values = self.distinct_values(field)?;
        if dir == Dir::Desc {
            values.reverse();
        }
        let marker_value = self.after.as_ref().map(|(_, s)| group_value(field, s));
        for v in values {
            if let (Some(mv), true) = (&marker_value, self.after.is_some()) {
                match directed(v.as_deref().cmp(&mv.as_deref()), dir) {
                    Ordering::Less => continue,
                    Ordering::Greater => self.after = None,
                    Ordering::Equal => {}
                }
            }
            let group = Posting { field, value: v };
            if filters.is_empty() && !self.residual() {
                let n = self.store.count(&group.count_key(self.project))?;
                if self.cur.skip_run(n as usize) {
                    continue;
                }
            }
            let mut sub = filters.to_vec();
            sub.push(group);
            self.emit(rest, &sub)?;
            if self.cur.done() {
                break;
            }
        }
        Ok(())
    }

    /// A leading `created_at`, `updated_at`, `id` or `plan_id` sort: one walk
    /// of the driving posting or of the order's entries.
    fn emit_linear(
        &mut self,
        first: SortKey,
        rest: &[SortKey],
        filters: &[Posting],
    ) -> Result<(), StoreError> {
        let order = match first.field {
            SortField::CreatedAt => None,
            SortField::UpdatedAt => Some(OrderField::UpdatedAt),
            SortField::Id => Some(OrderField::Id),
            _ => Some(OrderField::PlanId),
        };
        if order.is_some() && !filters.is_empty() && self.gather_is_cheaper(filters)? {
            let store = self.store;
            let mut rows = Vec::new();
            self.for_each_match(filters, Dir::Asc, &mut |_, id| {
                if let Some(s) = store.record_state(&id)? {
                    rows.push((id, s));
                }
                Ok(ControlFlow::Continue(()))
            })?;
            let mut all = vec![first];
            all.extend_from_slice(rest);
            let tie = self.tie;
            rows.sort_by(|a, b| compare(a, b, &all, tie));
            for row in rows {
                self.push_row(row);
            }
            return Ok(());
        }

        // Entries of one sort value come in id order in the `dir` direction,
        // except in the plan order, whose entries follow created_at in a plan.
        let needs_ties =
            !rest.is_empty() || self.tie != first.dir || order == Some(OrderField::PlanId);
        let mut run = TieRun::default();
        match order {
            None => {
                let (driver, others) = self.choose_driver(filters)?;
                let from = match others.is_empty() && !self.residual() {
                    true => self.skip_hours(&driver, first.dir)?,
                    false => None,
                };
                let from = from.or_else(|| self.created_seek(first.dir));
                for row in self.stream(&driver, first.dir, from)? {
                    let (created, id) = row?;
                    if self
                        .created
                        .passed(Micros::from_key_bytes(created), first.dir)
                    {
                        break;
                    }
                    if self.admits(&others, created, None, &id)?
                        && self
                            .visit(&mut run, needs_ties, rest, &created, created, id)?
                            .is_break()
                    {
                        break;
                    }
                }
            }
            Some(order) => {
                let prefix = order_prefix(self.project, order);
                let seek = self.order_seek(order, first.dir);
                for kv in self
                    .store
                    .scan_list_from(&prefix, first.dir, seek.as_deref())?
                {
                    let (k, v) = kv?;
                    let (sort_value, id) = order_entry(order, &k, &k[prefix.len()..])?;
                    let created = created_value(&k, &v)?;
                    let updated = match order {
                        OrderField::UpdatedAt => Some(instant(&k, &sort_value)?),
                        _ => None,
                    };
                    if updated.is_some_and(|u| self.updated.passed(u, first.dir)) {
                        break;
                    }
                    if self.admits(filters, created, updated, &id)?
                        && self
                            .visit(&mut run, needs_ties, rest, &sort_value, created, id)?
                            .is_break()
                    {
                        break;
                    }
                }
            }
        }
        if !self.cur.done() {
            self.flush_run(&mut run, rest)?;
        }
        Ok(())
    }

    /// Where a `created_at` walk starts: the window's edge, or the marker's
    /// instant when that is nearer (descending bounds are exclusive).
    fn created_seek(&self, dir: Dir) -> Option<[u8; 8]> {
        let marker = self.after.as_ref().map(|(_, s)| s.created_at());
        let bound = match dir {
            Dir::Asc => tighter(self.created.after, marker, dir),
            Dir::Desc => tighter(self.created.before, marker.map(|m| Micros(m.0 + 1)), dir),
        };
        bound.map(Micros::key_bytes)
    }

    /// Where the walk of an order starts: the `updated_*` window's edge, or
    /// the start of the marker's sort value when that is nearer.
    fn order_seek(&self, order: OrderField, dir: Dir) -> Option<Vec<u8>> {
        let window = match (order, dir) {
            (OrderField::UpdatedAt, Dir::Asc) => self.updated.after,
            (OrderField::UpdatedAt, Dir::Desc) => self.updated.before,
            _ => None,
        }
        .map(|t| t.key_bytes().to_vec());
        // Live is walked by `emit_stuck`, never as a sort order.
        if order == OrderField::Live {
            return window;
        }
        let marker = self.after.as_ref().map(|(id, s)| {
            let mut value = Vec::new();
            match order {
                OrderField::UpdatedAt => value.extend_from_slice(&s.updated_at().key_bytes()),
                OrderField::Id => keys::push_str(&mut value, id.as_bytes()),
                OrderField::PlanId => keys::push_opt(&mut value, s.get(Field::PlanId)),
                OrderField::Live => {}
            }
            match dir {
                Dir::Asc => value,
                Dir::Desc => past(&value),
            }
        });
        tighter(window, marker, dir)
    }

    /// Whether a filter beyond the postings applies (a window, `stuck`),
    /// so the counts of whole lists overcount.
    fn residual(&self) -> bool {
        !self.created.is_open() || !self.updated.is_open() || self.stuck.is_some()
    }

    /// Whether a candidate passes the filters, the windows and `stuck=false`
    /// (`stuck=true` walks its own index). `updated` is known on the walk of
    /// the `updated_at` order; elsewhere an `updated_*` window or `stuck`
    /// reads the record.
    fn admits(
        &self,
        filters: &[Posting],
        created: [u8; 8],
        updated: Option<Micros>,
        id: &str,
    ) -> Result<bool, StoreError> {
        if !self.created.contains(Micros::from_key_bytes(created)) {
            return Ok(false);
        }
        if !self.matches_all(filters, created, id)? {
            return Ok(false);
        }
        if self.updated.is_open() && self.stuck.is_none() {
            return Ok(true);
        }
        let record = match (updated, self.stuck) {
            (Some(_), None) => None,
            _ => match self.store.record_state(id)? {
                Some(s) => Some(s),
                None => return Ok(false),
            },
        };
        let updated = match (&record, updated) {
            (Some(s), _) => s.updated_at(),
            (None, u) => u.expect("known when no record was read"),
        };
        let stuck_ok = match (&record, self.stuck) {
            (Some(s), Some(k)) => k.is_stuck(s) == k.want,
            _ => true,
        };
        Ok(stuck_ok && self.updated.contains(updated))
    }

    /// Puts an id on the page unless it does not come after the marker yet.
    fn push(&mut self, id: String) -> Result<(), StoreError> {
        if self.after.is_none() {
            self.cur.push(id);
            return Ok(());
        }
        if let Some(s) = self.store.record_state(&id)? {
            self.push_row((id, s));
        }
        Ok(())
    }

    fn push_row(&mut self, row: Row) {
        if let Some(m) = &self.after {
            if compare(&row, m, &self.keys, self.tie) != Ordering::Greater {
                return;
            }
            self.after = None;
        }
        self.cur.push(row.0);
    }

    /// Takes the next id in sort order. When ties matter, ids with an equal
    /// sort value gather in a run, ordered by the remaining keys once it ends.
    fn visit(
        &mut self,
        run: &mut TieRun,
        needs_ties: bool,
        rest: &[SortKey],
        sort_value: &[u8],
        created: [u8; 8],
        id: String,
    ) -> Step {
        if !needs_ties {
            self.push(id)?;
            return Ok(self.cur.step());
        }
        if sort_value != run.value.as_slice() {
            self.flush_run(run, rest)?;
            if self.cur.done() {
                return Ok(ControlFlow::Break(()));
            }
            run.value = sort_value.to_vec();
        }
        run.ids.push((id, created));
        Ok(ControlFlow::Continue(()))
    }

    fn flush_run(&mut self, run: &mut TieRun, rest: &[SortKey]) -> Result<(), StoreError> {
        if run.ids.is_empty() || self.cur.skip_run(run.ids.len()) {
            run.ids.clear();
            return Ok(());
        }
        let tie = self.tie;
        let mut ids = std::mem::take(&mut run.ids);
        let ordered: Vec<String> = match rest {
            [] => {
                ids.sort_unstable_by(|a, b| directed(a.0.cmp(&b.0), tie));
                ids.into_iter().map(|(id, _)| id).collect()
            }
            // The entries carry created_at: no record needs reading.
            [SortKey {
                field: SortField::CreatedAt,
                dir,
            }] => {
                ids.sort_unstable_by(|a, b| {
                    directed(a.1.cmp(&b.1), *dir).then_with(|| directed(a.0.cmp(&b.0), tie))
                });
                ids.into_iter().map(|(id, _)| id).collect()
            }
            _ => {
                let mut rows = Vec::with_capacity(ids.len());
                for (id, _) in ids {
                    if let Some(s) = self.store.record_state(&id)? {
                        rows.push((id, s));
                    }
                }
                rows.sort_by(|a, b| compare(a, b, rest, tie));
                for row in rows {
                    self.push_row(row);
                }
                return Ok(());
            }
        };
        for id in ordered {
            self.push(id)?;
        }
        Ok(())
    }

    /// Gathering every match and sorting it beats walking a whole order when
    /// the filters leave few rows relative to the page depth.
    fn gather_is_cheaper(&self, filters: &[Posting]) -> Result<bool, StoreError> {
        let (driver, _) = self.choose_driver(filters)?;
        let n = u128::from(self.union_count(&driver)?);
        let total = u128::from(self.union_count(&self.all_postings()?)?);
        let depth = (self.cur.skip + self.cur.take) as u128;
        Ok(n <= 4 * depth || n * n <= depth * total)
    }

    /// The status postings of the project: together, every record listed there.
    fn all_postings(&self) -> Result<Vec<Posting>, StoreError> {
        Ok(self
            .distinct_values(IndexField::Status)?
            .into_iter()
            .map(|v| Posting {
                field: IndexField::Status,
                value: v,
            })
            .collect())
    }

    /// Values of `field` present in the project, ascending (from the counts).
    fn distinct_values(&self, field: IndexField) -> Result<Vec<Option<String>>, StoreError> {
        let mut prefix = vec![space::COUNT];
        keys::push_str(&mut prefix, self.project.as_bytes());
        prefix.push(field as u8);
        let mut values = Vec::new();
        for kv in self.store.tree.scan_prefix(&prefix) {
            let (k, _) = kv?;
            values.push(parse_opt(&k, &k[prefix.len()..])?);
        }
        Ok(values)
    }

    fn union_count(&self, postings: &[Posting]) -> Result<u64, StoreError> {
        postings
            .iter()
            .map(|p| self.store.count(&p.count_key(self.project)))
            .sum()
    }

    /// The entries of disjoint posting lists, merged in `(created_at, id)`
    /// order (or its reverse). `from`, when given, is a `created_at` bound:
    /// entries from it on (ascending) or strictly before it (descending).
    fn stream(
        &self,
        postings: &[Posting],
        dir: Dir,
        from: Option<[u8; 8]>,
    ) -> Result<Merge, StoreError> {
        let sources = postings
            .iter()
            .map(|p| {
                let prefix = p.prefix(self.project);
                let it = match from {
                    None => self.store.scan_list(&prefix, dir),
                    Some(b) => blocks::scan_from(
                        &self.store.tree,
                        &prefix,
                        index::blocked(&prefix),
                        &b,
                        dir == Dir::Asc,
                    )?,
                };
                Ok((prefix.len(), it))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Merge::new(sources, dir))
    }

    /// For a deep offset over status postings alone, skips whole hours by
    /// their counts and returns where the scan should start.
    fn skip_hours(&mut self, driver: &[Posting], dir: Dir) -> Result<Option<[u8; 8]>, StoreError> {
        if self.cur.skip < HOUR_SKIP_MIN || driver.iter().any(|p| p.field != IndexField::Status) {
            return Ok(None);
        }
        let mut hours: BTreeMap<[u8; 8], u64> = BTreeMap::new();
        for p in driver {
            let prefix = p.hour_prefix(self.project);
            for kv in self.store.tree.scan_prefix(&prefix) {
                let (k, v) = kv?;
                let hour: [u8; 8] = k[prefix.len()..]
                    .try_into()
                    .map_err(|_| StoreError::corrupt(&k, "bad hour key"))?;
                let n = u64::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| StoreError::corrupt(&k, "bad count"))?,
                );
                *hours.entry(hour).or_default() += n;
            }
        }
        let ordered: Box<dyn Iterator<Item = (&[u8; 8], &u64)>> = match dir {
            Dir::Asc => Box::new(hours.iter()),
            Dir::Desc => Box::new(hours.iter().rev()),
        };
        let mut last = None;
        for (hour, n) in ordered {
            if !self.cur.skip_run(*n as usize) {
                break;
            }
            last = Some(*hour);
        }
        Ok(last.map(|h| match dir {
            Dir::Asc => Micros(Micros::from_key_bytes(h).0 + index::HOUR).key_bytes(),
            Dir::Desc => h,
        }))
    }

    /// The filter with the shortest posting list (as a one-list union) and
    /// the others; with no filter, every status list of the project.
    fn choose_driver(
        &self,
        filters: &[Posting],
    ) -> Result<(Vec<Posting>, Vec<Posting>), StoreError> {
        let mut best: Option<(u64, usize)> = None;
        for (i, p) in filters.iter().enumerate() {
            let n = self.store.count(&p.count_key(self.project))?;
            if best.is_none_or(|(b, _)| n < b) {
                best = Some((n, i));
            }
        }
        Ok(match best {
            None => (self.all_postings()?, Vec::new()),
            Some((_, i)) => {
                let mut others = filters.to_vec();
                let driver = others.remove(i);
                (vec![driver], others)
            }
        })
    }

    fn matches_all(
        &self,
        filters: &[Posting],
        created: [u8; 8],
        id: &str,
    ) -> Result<bool, StoreError> {
        for p in filters {
            let list = p.prefix(self.project);
            if !blocks::contains(
                &self.store.tree,
                &list,
                index::blocked(&list),
                &Posting::suffix(created, id),
            )? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Calls `f(created_at, id)` for every match in posting order, until it
    /// breaks.
    fn for_each_match(
        &self,
        filters: &[Posting],
        dir: Dir,
        f: &mut dyn FnMut([u8; 8], String) -> Step,
    ) -> Result<(), StoreError> {
        let (driver, others) = self.choose_driver(filters)?;
        let from = match dir {
            Dir::Asc => self.created.after,
            Dir::Desc => self.created.before,
        };
        for row in self.stream(&driver, dir, from.map(Micros::key_bytes))? {
            let (created, id) = row?;
            if self.created.passed(Micros::from_key_bytes(created), dir) {
                break;
            }
            if self.admits(&others, created, None, &id)? && f(created, id)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// The number of matches, ignoring offset, limit and marker. A window
    /// makes the counts of whole lists useless: its matches are counted.
    fn count_matches(&mut self, filters: &[Posting]) -> Result<u64, StoreError> {
        match filters {
            _ if self.stuck.is_some_and(|k| !k.want) => {
                // Everything but the stuck ones: two cheap counts.
                let stuck = self.stuck.take().expect("checked");
                let all = self.count_matches(filters)?;
                self.stuck = Some(Stuck {
                    want: true,
                    ..stuck
                });
                let stuck_ones = self.count_stuck(filters)?;
                self.stuck = Some(stuck);
                Ok(all - stuck_ones)
            }
            _ if self.stuck.is_some() => self.count_stuck(filters),
            [] if !self.residual() => self.union_count(&self.all_postings()?),
            [one] if !self.residual() => self.store.count(&one.count_key(self.project)),
            _ => {
                let mut n = 0;
                self.for_each_match(filters, Dir::Asc, &mut |_, _| {
                    n += 1;
                    Ok(ControlFlow::Continue(()))
                })?;
                Ok(n)
            }
        }
    }
}

/// The sort value and the id of an order entry's tail. Plan entries are
/// `(plan, created_at, id)`: time-ordered within a plan, sorted by value.
fn order_entry(order: OrderField, k: &[u8], tail: &[u8]) -> Result<(Vec<u8>, String), StoreError> {
    let bad = || StoreError::corrupt(k, "bad order key");
    let (value_len, id_at) = match order {
        OrderField::UpdatedAt => (8, 8),
        OrderField::Live => (9, 9),
        OrderField::Id => (0, 0),
        OrderField::PlanId => {
            let value_len = tail.len() - keys::skip_opt(tail).ok_or_else(bad)?.len();
            (value_len, value_len + 8)
        }
    };
    let id = parse_id(k, tail.get(id_at..).ok_or_else(bad)?)?;
    let sort_value = match order {
        OrderField::Id => id.as_bytes().to_vec(),
        _ => tail[..value_len].to_vec(),
    };
    Ok((sort_value, id))
}

/// The `created_at` an order entry carries as its value.
fn created_value(k: &[u8], v: &[u8]) -> Result<[u8; 8], StoreError> {
    v.try_into()
        .map_err(|_| StoreError::corrupt(k, "bad order value"))
}

fn instant(k: &[u8], b: &[u8]) -> Result<Micros, StoreError> {
    let b: [u8; 8] = b
        .try_into()
        .map_err(|_| StoreError::corrupt(k, "bad instant in index key"))?;
    Ok(Micros::from_key_bytes(b))
}

/// A record's value of a grouped sort field.
fn group_value(field: IndexField, s: &RecordState) -> Option<String> {
    match field {
        IndexField::Status => Some(s.status().as_str().to_owned()),
        IndexField::SourceRegion => s.get(Field::SourceRegion).map(str::to_owned),
        IndexField::DestinationRegion => s.get(Field::DestinationRegion).map(str::to_owned),
        IndexField::Route => None,
    }
}

fn parse_id(k: &[u8], tail: &[u8]) -> Result<String, StoreError> {
    keys::read_str(tail)
        .filter(|(_, rest)| rest.is_empty())
        .and_then(|(id, _)| String::from_utf8(id).ok())
        .ok_or_else(|| StoreError::corrupt(k, "bad id in index key"))
}

fn parse_opt(k: &[u8], tail: &[u8]) -> Result<Option<String>, StoreError> {
    match tail.first() {
        Some(0) if tail.len() == 1 => Ok(None),
        Some(1) => keys::read_str(&tail[1..])
            .filter(|(_, rest)| rest.is_empty())
            .and_then(|(v, _)| String::from_utf8(v).ok())
            .map(Some)
            .ok_or_else(|| StoreError::corrupt(k, "bad count key")),
        _ => Err(StoreError::corrupt(k, "bad count key")),
    }
}
