//! The list planner: a [`ListQuery`] becomes range scans over posting lists
//! and sort orders, never a scan of the whole store.
//!
//! - Filters are posting lists. The smallest drives the scan; every other
//!   filter is one point lookup per candidate (the posting key is fully known
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

use std::cmp::Ordering;
use std::collections::BTreeMap;

use super::blocks;
use super::index::{
    self, checkpoint_prefix, order_prefix, CheckpointSide, IndexField, OrderField, Posting,
};
use super::keys::{self, space};
use super::{Store, StoreError};
use crate::instant::Micros;
use crate::record::{Field, Record, RecordState, Status};

pub const DEFAULT_LIMIT: usize = 1000;
/// Offsets below this are cheaper to walk than to skip by hour counts. Unit
/// tests skip from the first record, so small generated worlds take that path.
const HOUR_SKIP_MIN: usize = if cfg!(test) { 1 } else { 2000 };
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    Status,
    Id,
    SourceRegion,
    DestinationRegion,
    PlanId,
}

impl SortField {
    pub const ALL: [SortField; 7] = [
        SortField::CreatedAt,
        SortField::UpdatedAt,
        SortField::Status,
        SortField::Id,
        SortField::SourceRegion,
        SortField::DestinationRegion,
        SortField::PlanId,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::Status => "status",
            SortField::Id => "id",
            SortField::SourceRegion => "source_region",
            SortField::DestinationRegion => "destination_region",
            SortField::PlanId => "plan_id",
        }
    }

    pub fn parse(s: &str) -> Option<SortField> {
        SortField::ALL.into_iter().find(|f| f.name() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SortKey {
    pub field: SortField,
    pub dir: Dir,
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
    pub sort: Option<Vec<SortKey>>,
    pub offset: Option<usize>,
    pub limit: Option<usize>,
    pub with_count: Option<bool>,
}

impl ListQuery {
    /// The project-scoped filters as posting lists, and the checkpoint-item
    /// filters (served by the global checkpoint index). Destructured so a new
    /// filter cannot be silently ignored.
    fn filters(&self) -> (Vec<Posting>, Vec<(Option<CheckpointSide>, &str)>) {
        let ListQuery {
            destination_region,
            source_region,
            status,
            source_checkpoint_item_id,
            destination_checkpoint_item_id,
            checkpoint_item_id,
            sort: _,
            offset: _,
            limit: _,
            with_count: _,
        } = self;
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
                value: Some(index::route(s, d, st.as_str())),
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

    /// Whether a record listed under `project` matches every filter.
    fn matches(&self, project: &str, s: &RecordState) -> bool {
        let ListQuery {
            destination_region,
            source_region,
            status,
            source_checkpoint_item_id,
            destination_checkpoint_item_id,
            checkpoint_item_id,
            sort: _,
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

fn directed(o: Ordering, d: Dir) -> Ordering {
    match d {
        Dir::Asc => o,
        Dir::Desc => o.reverse(),
    }
}

fn compare(
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
}

fn grouped_field(f: SortField) -> Option<IndexField> {
    match f {
        SortField::Status => Some(IndexField::Status),
        SortField::SourceRegion => Some(IndexField::SourceRegion),
        SortField::DestinationRegion => Some(IndexField::DestinationRegion),
        _ => None,
    }
}

type KvIter = blocks::EntryIter;

impl Store {
    /// One page of the records listed under `project` that match `q`.
    pub fn list(&self, project: &str, q: &ListQuery) -> Result<Page, StoreError> {
        let (filters, checkpoints) = q.filters();
        let sort = q.sort_keys();
        if !checkpoints.is_empty() {
            return self.list_by_checkpoint(project, q, &checkpoints, &sort);
        }
        let tie = sort.last().map_or(Dir::Desc, |k| k.dir);
        // A key fixed by an equality filter orders nothing; nothing orders past `id`.
        let mut keys = Vec::new();
        for k in sort {
            let fixed = match k.field {
                SortField::Status => q.status.is_some(),
                SortField::SourceRegion => q.source_region.is_some(),
                SortField::DestinationRegion => q.destination_region.is_some(),
                _ => false,
            };
            if !fixed {
                keys.push(k);
            }
            if k.field == SortField::Id {
                break;
            }
        }
        let mut cur = Cursor {
            skip: q.offset.unwrap_or(0),
            take: q.limit.unwrap_or(DEFAULT_LIMIT),
            ids: Vec::new(),
        };
        if !cur.done() {
            self.emit(project, &keys, tie, &filters, &mut cur)?;
        }
        let mut records = Vec::with_capacity(cur.ids.len());
        for id in &cur.ids {
            if let Some(s) = self.record_state(id)? {
                records.push(s.view(id));
            }
        }
        let count = match q.with_count {
            Some(true) => Some(self.count_matches(project, &filters)?),
            _ => None,
        };
        Ok(Page { records, count })
    }

    /// Checkpoint items are near-unique: read the few records that carry the
    /// value, filter and sort them in memory.
    fn list_by_checkpoint(
        &self,
        project: &str,
        q: &ListQuery,
        checkpoints: &[(Option<CheckpointSide>, &str)],
        sort: &[SortKey],
    ) -> Result<Page, StoreError> {
        let (side, value) = checkpoints[0];
        let sides = match side {
            Some(s) => vec![s],
            None => vec![CheckpointSide::Source, CheckpointSide::Destination],
        };
        let mut ids: Vec<String> = Vec::new();
        for side in sides {
            let prefix = checkpoint_prefix(side, value);
            for kv in self.scan(&prefix, Dir::Asc) {
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
        let records = rows
            .iter()
            .skip(q.offset.unwrap_or(0))
            .take(q.limit.unwrap_or(DEFAULT_LIMIT))
            .map(|(id, s)| s.view(id))
            .collect();
        Ok(Page { records, count })
    }

    fn emit(
        &self,
        project: &str,
        keys: &[SortKey],
        tie: Dir,
        filters: &[Posting],
        cur: &mut Cursor,
    ) -> Result<(), StoreError> {
        let Some((first, rest)) = keys.split_first() else {
            return self.emit_by_id(project, tie, filters, cur);
        };
        if let Some(field) = grouped_field(first.field) {
            return self.emit_grouped(project, field, first.dir, rest, tie, filters, cur);
        }
        self.emit_linear(project, *first, rest, tie, filters, cur)
    }

    /// Only the `id` tie-break is left.
    fn emit_by_id(
        &self,
        project: &str,
        dir: Dir,
        filters: &[Posting],
        cur: &mut Cursor,
    ) -> Result<(), StoreError> {
        if filters.is_empty() {
            let prefix = order_prefix(project, OrderField::Id);
            for kv in self.scan(&prefix, dir) {
                let (k, _) = kv?;
                cur.push(parse_id(&k, &k[prefix.len()..])?);
                if cur.done() {
                    break;
                }
            }
            return Ok(());
        }
        let mut ids: Vec<String> = Vec::new();
        self.for_each_match(project, filters, Dir::Asc, &mut |_, id| {
            ids.push(id);
            true
        })?;
        ids.sort_unstable_by(|a, b| directed(a.cmp(b), dir));
        ids.into_iter().for_each(|id| cur.push(id));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn emit_grouped(
        &self,
        project: &str,
        field: IndexField,
        dir: Dir,
        rest: &[SortKey],
        tie: Dir,
        filters: &[Posting],
        cur: &mut Cursor,
    ) -> Result<(), StoreError> {
        let mut values = self.distinct_values(project, field)?;
        if dir == Dir::Desc {
            values.reverse();
        }
        for v in values {
            let group = Posting { field, value: v };
            if filters.is_empty()
                && self
                    .count(&group.count_key(project))
                    .map(|n| cur.skip_run(n as usize))?
            {
                continue;
            }
            let mut sub = filters.to_vec();
            sub.push(group);
            self.emit(project, rest, tie, &sub, cur)?;
            if cur.done() {
                break;
            }
        }
        Ok(())
    }

    fn emit_linear(
        &self,
        project: &str,
        first: SortKey,
        rest: &[SortKey],
        tie: Dir,
        filters: &[Posting],
        cur: &mut Cursor,
    ) -> Result<(), StoreError> {
        let order = match first.field {
            SortField::CreatedAt => None,
            SortField::UpdatedAt => Some(OrderField::UpdatedAt),
            SortField::Id => Some(OrderField::Id),
            _ => Some(OrderField::PlanId),
        };
        if order.is_some()
            && !filters.is_empty()
            && self.gather_is_cheaper(project, filters, cur)?
        {
            let mut rows = Vec::new();
            let mut err = None;
            self.for_each_match(project, filters, Dir::Asc, &mut |_, id| match self
                .record_state(&id)
            {
                Ok(Some(s)) => {
                    rows.push((id, s));
                    true
                }
                Ok(None) => true,
                Err(e) => {
                    err = Some(e);
                    false
                }
            })?;
            if let Some(e) = err {
                return Err(e);
            }
            let mut all = vec![first];
            all.extend_from_slice(rest);
            rows.sort_by(|a, b| compare(a, b, &all, tie));
            rows.into_iter().for_each(|(id, _)| cur.push(id));
            return Ok(());
        }

        let needs_ties = !rest.is_empty() || tie != first.dir;
        let mut run: Vec<String> = Vec::new();
        let mut run_key: Vec<u8> = Vec::new();
        let flush = |run: &mut Vec<String>, cur: &mut Cursor| -> Result<(), StoreError> {
            if run.is_empty() || cur.skip_run(run.len()) {
                run.clear();
                return Ok(());
            }
            if rest.is_empty() {
                run.sort_unstable_by(|a, b| directed(a.cmp(b), tie));
                run.drain(..).for_each(|id| cur.push(id));
            } else {
                let mut rows = Vec::with_capacity(run.len());
                for id in run.drain(..) {
                    if let Some(s) = self.record_state(&id)? {
                        rows.push((id, s));
                    }
                }
                rows.sort_by(|a, b| compare(a, b, rest, tie));
                rows.into_iter().for_each(|(id, _)| cur.push(id));
            }
            Ok(())
        };
        let mut visit =
            |sort_value: &[u8], id: String, cur: &mut Cursor| -> Result<bool, StoreError> {
                if !needs_ties {
                    cur.push(id);
                    return Ok(!cur.done());
                }
                if sort_value != run_key.as_slice() {
                    flush(&mut run, cur)?;
                    if cur.done() {
                        return Ok(false);
                    }
                    run_key = sort_value.to_vec();
                }
                run.push(id);
                Ok(true)
            };

        match order {
            None => {
                let (driver, others) = self.choose_driver(project, filters)?;
                let from = match others.is_empty() {
                    true => self.skip_hours(project, &driver, first.dir, cur)?,
                    false => None,
                };
                for row in self.stream(project, &driver, first.dir, from)? {
                    let (created, id) = row?;
                    if self.matches_all(project, &others, created, &id)?
                        && !visit(&created, id, cur)?
                    {
                        break;
                    }
                }
            }
            Some(order) => {
                let prefix = order_prefix(project, order);
                for kv in self.scan(&prefix, first.dir) {
                    let (k, v) = kv?;
                    let tail = &k[prefix.len()..];
                    let value_len = match order {
                        OrderField::UpdatedAt => 8,
                        OrderField::Id => 0,
                        OrderField::PlanId => {
                            tail.len()
                                - keys::skip_opt(tail)
                                    .ok_or_else(|| StoreError::corrupt(&k, "bad order key"))?
                                    .len()
                        }
                    };
                    // Plan entries are (plan, created_at, id): time-ordered within a plan.
                    let id_at = match order {
                        OrderField::PlanId => value_len + 8,
                        _ => value_len,
                    };
                    let id = parse_id(&k, tail.get(id_at..).unwrap_or_default())?;
                    let created: [u8; 8] = v
                        .as_ref()
                        .try_into()
                        .map_err(|_| StoreError::corrupt(&k, "bad order value"))?;
                    let sort_value = if order == OrderField::Id {
                        id.as_bytes().to_vec()
                    } else {
                        tail[..value_len].to_vec()
                    };
                    if self.matches_all(project, filters, created, &id)?
                        && !visit(&sort_value, id, cur)?
                    {
                        break;
                    }
                }
            }
        }
        if !cur.done() {
            flush(&mut run, cur)?;
        }
        Ok(())
    }

    /// Gathering every match and sorting it beats walking a whole order when
    /// the filters leave few rows relative to the page depth.
    fn gather_is_cheaper(
        &self,
        project: &str,
        filters: &[Posting],
        cur: &Cursor,
    ) -> Result<bool, StoreError> {
        let (driver, _) = self.choose_driver(project, filters)?;
        let n = u128::from(self.union_count(project, &driver)?);
        let total = u128::from(self.union_count(project, &self.all_postings(project)?)?);
        let depth = (cur.skip + cur.take) as u128;
        Ok(n <= 4 * depth || n * n <= depth * total)
    }

    /// The status postings of a project: together, every record listed there.
    fn all_postings(&self, project: &str) -> Result<Vec<Posting>, StoreError> {
        Ok(self
            .distinct_values(project, IndexField::Status)?
            .into_iter()
            .map(|v| Posting {
                field: IndexField::Status,
                value: v,
            })
            .collect())
    }

    /// Values of `field` present in `project`, ascending (from the counts).
    fn distinct_values(
        &self,
        project: &str,
        field: IndexField,
    ) -> Result<Vec<Option<String>>, StoreError> {
        let mut prefix = vec![space::COUNT];
        keys::push_str(&mut prefix, project.as_bytes());
        prefix.push(field as u8);
        let mut values = Vec::new();
        for kv in self.tree.scan_prefix(&prefix) {
            let (k, _) = kv?;
            values.push(parse_opt(&k, &k[prefix.len()..])?);
        }
        Ok(values)
    }

    fn union_count(&self, project: &str, postings: &[Posting]) -> Result<u64, StoreError> {
        postings
            .iter()
            .map(|p| self.count(&p.count_key(project)))
            .sum()
    }

    /// The entries of disjoint posting lists, merged in `(created_at, id)`
    /// order (or its reverse).
    /// `from`, when given, is a `created_at` bound: entries from it on
    /// (ascending) or strictly before it (descending).
    fn stream(
        &self,
        project: &str,
        postings: &[Posting],
        dir: Dir,
        from: Option<[u8; 8]>,
    ) -> Result<Merge, StoreError> {
        let sources = postings
            .iter()
            .map(|p| {
                let prefix = p.prefix(project);
                let it: KvIter = match from {
                    None => self.scan(&prefix, dir),
                    Some(b) => blocks::scan_from(
                        &self.tree,
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
    fn skip_hours(
        &self,
        project: &str,
        driver: &[Posting],
        dir: Dir,
        cur: &mut Cursor,
    ) -> Result<Option<[u8; 8]>, StoreError> {
        if cur.skip < HOUR_SKIP_MIN || driver.iter().any(|p| p.field != IndexField::Status) {
            return Ok(None);
        }
        let mut hours: BTreeMap<[u8; 8], u64> = BTreeMap::new();
        for p in driver {
            let prefix = p.hour_prefix(project);
            for kv in self.tree.scan_prefix(&prefix) {
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
            if !cur.skip_run(*n as usize) {
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
        project: &str,
        filters: &[Posting],
    ) -> Result<(Vec<Posting>, Vec<Posting>), StoreError> {
        let mut best: Option<(u64, usize)> = None;
        for (i, p) in filters.iter().enumerate() {
            let n = self.count(&p.count_key(project))?;
            if best.is_none_or(|(b, _)| n < b) {
                best = Some((n, i));
            }
        }
        Ok(match best {
            None => (self.all_postings(project)?, Vec::new()),
            Some((_, i)) => {
                let mut others = filters.to_vec();
                let driver = others.remove(i);
                (vec![driver], others)
            }
        })
    }

    fn matches_all(
        &self,
        project: &str,
        filters: &[Posting],
        created: [u8; 8],
        id: &str,
    ) -> Result<bool, StoreError> {
        for p in filters {
            let list = p.prefix(project);
            if !blocks::contains(
                &self.tree,
                &list,
                index::blocked(&list),
                &Posting::suffix(created, id),
            )? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Calls `f(created_at, id)` for every match in posting order; `f` returns
    /// false to stop.
    fn for_each_match(
        &self,
        project: &str,
        filters: &[Posting],
        dir: Dir,
        f: &mut dyn FnMut([u8; 8], String) -> bool,
    ) -> Result<(), StoreError> {
        let (driver, others) = self.choose_driver(project, filters)?;
        for row in self.stream(project, &driver, dir, None)? {
            let (created, id) = row?;
            if self.matches_all(project, &others, created, &id)? && !f(created, id) {
                break;
            }
        }
        Ok(())
    }

    /// The number of matches, ignoring offset and limit.
    fn count_matches(&self, project: &str, filters: &[Posting]) -> Result<u64, StoreError> {
        match filters {
            [] => self.union_count(project, &self.all_postings(project)?),
            [one] => self.count(&one.count_key(project)),
            _ => {
                let mut n = 0;
                self.for_each_match(project, filters, Dir::Asc, &mut |_, _| {
                    n += 1;
                    true
                })?;
                Ok(n)
            }
        }
    }

    /// Every entry of one index list, in `dir` order.
    fn scan(&self, list: &[u8], dir: Dir) -> KvIter {
        blocks::scan(&self.tree, list, index::blocked(list), dir == Dir::Asc)
    }
}

/// K-way merge of posting scans; each yields its `(created_at, id)` tail,
/// whose bytes sort like the pair.
struct Merge {
    sources: Vec<(usize, KvIter)>,
    heads: Vec<Option<sled::IVec>>,
    dir: Dir,
    started: bool,
}

impl Merge {
    fn new(sources: Vec<(usize, KvIter)>, dir: Dir) -> Merge {
        let heads = vec![None; sources.len()];
        Merge {
            sources,
            heads,
            dir,
            started: false,
        }
    }

    fn advance(&mut self, i: usize) -> Result<(), StoreError> {
        self.heads[i] = self.sources[i].1.next().transpose()?.map(|(k, _)| k);
        Ok(())
    }
}

impl Iterator for Merge {
    type Item = Result<([u8; 8], String), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                if let Err(e) = self.advance(i) {
                    return Some(Err(e));
                }
            }
        }
        // Compare the heads' tails in place; only the winner is taken.
        let mut best: Option<usize> = None;
        for (i, head) in self.heads.iter().enumerate() {
            let Some(k) = head else { continue };
            let better = best.is_none_or(|b| {
                let (t, bt) = (
                    &k[self.sources[i].0..],
                    &self.heads[b].as_ref().expect("head present")[self.sources[b].0..],
                );
                match self.dir {
                    Dir::Asc => t < bt,
                    Dir::Desc => t > bt,
                }
            });
            if better {
                best = Some(i);
            }
        }
        let i = best?;
        let key = self.heads[i].take().expect("head present");
        if let Err(e) = self.advance(i) {
            return Some(Err(e));
        }
        Some(parse_created_id(&key, &key[self.sources[i].0..]))
    }
}

fn parse_id(k: &[u8], tail: &[u8]) -> Result<String, StoreError> {
    keys::read_str(tail)
        .filter(|(_, rest)| rest.is_empty())
        .and_then(|(id, _)| String::from_utf8(id).ok())
        .ok_or_else(|| StoreError::corrupt(k, "bad id in index key"))
}

fn parse_created_id(k: &[u8], tail: &[u8]) -> Result<([u8; 8], String), StoreError> {
    let (created, id) =
        keys::read_created_id(tail).ok_or_else(|| StoreError::corrupt(k, "bad posting key"))?;
    let id = String::from_utf8(id).map_err(|_| StoreError::corrupt(k, "bad id in posting key"))?;
    Ok((created.key_bytes(), id))
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
