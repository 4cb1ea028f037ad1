//! The query shapes, each defined once and derived three ways: as a tracker
//! `ListQuery`, as the API query string, and as the SQL a competent
//! PostgreSQL implementation of the same API would run. Deep offsets are
//! stated for the 1,000,000-record standard dataset and scale with the
//! dataset, so the 10,000-record smoke run pages as deep, relatively.

use common::record::{Field, Status};
use common::store::{Dir, ListQuery, SortField, SortKey, DEFAULT_LIMIT};
use common::RecordState;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Q1,
    Q2,
    Q3,
    Q4,
    Q5,
    Q6,
    Q7,
    Q8,
    Q9,
    Q10,
    Q11,
}

pub const ALL: [Shape; 11] = [
    Shape::Q1,
    Shape::Q2,
    Shape::Q3,
    Shape::Q4,
    Shape::Q5,
    Shape::Q6,
    Shape::Q7,
    Shape::Q8,
    Shape::Q9,
    Shape::Q10,
    Shape::Q11,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Filter {
    None,
    Status(Status),
    /// Source region, destination region and status of the drawn record.
    Route,
    CheckpointItem,
}

/// One shape: filters, sort, page.
struct Def {
    filter: Filter,
    sort: &'static [(SortField, Dir)],
    /// At 1,000,000 records; scaled by the dataset's size.
    offset: usize,
    limit: Option<usize>,
    count: bool,
}

const DEFAULT_SORT: &[(SortField, Dir)] = &[(SortField::CreatedAt, Dir::Desc)];

impl Shape {
    fn def(self) -> Def {
        let d = |filter, sort, offset, limit, count| Def {
            filter,
            sort,
            offset,
            limit,
            count,
        };
        use Dir::{Asc, Desc};
        use SortField as F;
        match self {
            Shape::Q1 => d(Filter::None, DEFAULT_SORT, 0, Some(100), false),
            Shape::Q2 => d(Filter::Status(Status::Fail), DEFAULT_SORT, 0, None, true),
            Shape::Q3 => d(Filter::Route, DEFAULT_SORT, 0, Some(20), false),
            Shape::Q4 => d(Filter::CheckpointItem, DEFAULT_SORT, 0, None, false),
            Shape::Q5 => d(
                Filter::None,
                &[(F::Status, Asc), (F::CreatedAt, Desc)],
                5000,
                Some(100),
                false,
            ),
            Shape::Q6 => d(Filter::None, DEFAULT_SORT, 0, Some(1), true),
            Shape::Q7 => d(Filter::None, DEFAULT_SORT, 50_000, Some(100), false),
            Shape::Q8 => d(Filter::None, &[(F::UpdatedAt, Desc)], 0, Some(100), false),
            // plan_id is null for manual replications: nulls sort first.
            Shape::Q9 => d(
                Filter::None,
                &[(F::PlanId, Asc), (F::CreatedAt, Desc)],
                2000,
                Some(100),
                false,
            ),
            // destination_region is null while a late identity has not
            // arrived: ascending, those records open the first page.
            Shape::Q10 => d(
                Filter::None,
                &[(F::DestinationRegion, Asc), (F::SourceRegion, Desc)],
                0,
                Some(100),
                false,
            ),
            Shape::Q11 => d(
                Filter::Status(Status::Success),
                &[(F::Id, Asc)],
                0,
                Some(100),
                false,
            ),
        }
    }

    pub fn name(self) -> String {
        format!("{self:?}")
    }

    pub fn describe(self, depth: f64) -> String {
        let d = self.def();
        let mut parts = vec![format!("{} project", self.name())];
        match d.filter {
            Filter::None => {}
            Filter::Status(s) => parts.push(format!("status={}", s.as_str())),
            Filter::Route => parts.push("src + dst region + status".into()),
            Filter::CheckpointItem => parts.push("checkpoint_item_id".into()),
        }
        if d.sort != DEFAULT_SORT {
            parts.push(format!("sort={}", sort_param(d.sort)));
        }
        let offset = scaled(d.offset, depth);
        if offset > 0 {
            parts.push(format!("offset {offset}"));
        }
        if let Some(l) = d.limit {
            parts.push(format!("limit {l}"));
        }
        if d.count {
            parts.push("with_count".into());
        }
        parts.join(", ")
    }

    /// Offset and limit of the page, at this dataset's size.
    pub fn page(self, depth: f64) -> (usize, usize) {
        let d = self.def();
        (scaled(d.offset, depth), d.limit.unwrap_or(DEFAULT_LIMIT))
    }
}

impl Shape {
    /// Whether the shape sorts on a field that can be null.
    pub fn sorts_nullable(self) -> bool {
        self.def().sort.iter().any(|(f, _)| nullable(*f))
    }

    /// Whether `r` has a null in one of the shape's sort fields.
    pub fn null_sort_value(self, r: &common::Record) -> bool {
        self.def().sort.iter().any(|(f, _)| match f {
            SortField::SourceRegion => r.source_region.is_none(),
            SortField::DestinationRegion => r.destination_region.is_none(),
            SortField::PlanId => r.plan_id.is_none(),
            _ => false,
        })
    }
}

fn nullable(f: SortField) -> bool {
    matches!(
        f,
        SortField::SourceRegion | SortField::DestinationRegion | SortField::PlanId
    )
}

fn scaled(offset: usize, depth: f64) -> usize {
    (offset as f64 * depth).round() as usize
}

fn sort_param(sort: &[(SortField, Dir)]) -> String {
    sort.iter()
        .map(|(f, d)| {
            format!(
                "{}:{}",
                f.as_str(),
                if *d == Dir::Asc { "asc" } else { "desc" }
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parameters drawn from one real record.
#[derive(Debug, Clone)]
pub struct Params {
    pub project: String,
    pub status: Status,
    pub source_region: String,
    pub destination_region: String,
    pub checkpoint_item: String,
    /// The dataset's size relative to the 1,000,000-record standard.
    pub depth: f64,
}

impl Params {
    pub fn from_record(s: &RecordState, depth: f64) -> Params {
        let g = |f| s.get(f).unwrap_or_default().to_owned();
        Params {
            project: g(Field::SourceProjectId),
            status: s.status(),
            source_region: g(Field::SourceRegion),
            destination_region: g(Field::DestinationRegion),
            checkpoint_item: g(Field::SourceCheckpointItemId),
            depth,
        }
    }
}

pub fn list_query(shape: Shape, p: &Params) -> ListQuery {
    let d = shape.def();
    let mut q = ListQuery::default();
    match d.filter {
        Filter::None => {}
        Filter::Status(s) => q.status = Some(s),
        Filter::Route => {
            q.source_region = Some(p.source_region.clone());
            q.destination_region = Some(p.destination_region.clone());
            q.status = Some(p.status);
        }
        Filter::CheckpointItem => q.checkpoint_item_id = Some(p.checkpoint_item.clone()),
    }
    if d.sort != DEFAULT_SORT {
        q.sort = Some(
            d.sort
                .iter()
                .map(|&(field, dir)| SortKey { field, dir })
                .collect(),
        );
    }
    let offset = scaled(d.offset, p.depth);
    q.offset = (offset > 0).then_some(offset);
    q.limit = d.limit;
    q.with_count = d.count.then_some(true);
    q
}

/// The API query string of a shape (for the HTTP runs).
pub fn query_string(shape: Shape, p: &Params) -> String {
    let d = shape.def();
    let mut parts = Vec::new();
    match d.filter {
        Filter::None => {}
        Filter::Status(s) => parts.push(format!("status={}", s.as_str())),
        Filter::Route => parts.push(format!(
            "source_region={}&destination_region={}&status={}",
            p.source_region,
            p.destination_region,
            p.status.as_str()
        )),
        Filter::CheckpointItem => parts.push(format!("checkpoint_item_id={}", p.checkpoint_item)),
    }
    if d.sort != DEFAULT_SORT {
        parts.push(format!("sort={}", sort_param(d.sort)));
    }
    let offset = scaled(d.offset, p.depth);
    if offset > 0 {
        parts.push(format!("offset={offset}"));
    }
    if let Some(l) = d.limit {
        parts.push(format!("limit={l}"));
    }
    if d.count {
        parts.push("with_count=true".into());
    }
    parts.join("&")
}

/// The values bound to `$2…` of the shape's SQL, after the project.
pub fn sql_params(shape: Shape, p: &Params) -> Vec<String> {
    match shape.def().filter {
        Filter::None => vec![],
        Filter::Status(s) => vec![s.as_str().to_owned()],
        Filter::Route => vec![
            p.source_region.clone(),
            p.destination_region.clone(),
            p.status.as_str().to_owned(),
        ],
        Filter::CheckpointItem => vec![p.checkpoint_item.clone()],
    }
}

pub const COLUMNS: &str = "id, source_region, source_project_id, source_checkpoint_id, source_checkpoint_item_id, \
destination_region, destination_project_id, destination_checkpoint_id, destination_checkpoint_item_id, status, plan_id, \
to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS created_at, to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS updated_at, \
auto_trigger, progress, fail_reason, fail_code";

/// The filter's SQL, binding `$2…` (see [`sql_params`]).
fn sql_filter(filter: Filter) -> &'static str {
    match filter {
        Filter::None => "",
        Filter::Status(_) => "AND status = $2",
        Filter::Route => "AND source_region = $2 AND destination_region = $3 AND status = $4",
        Filter::CheckpointItem => {
            "AND (source_checkpoint_item_id = $2 OR destination_checkpoint_item_id = $2)"
        }
    }
}

/// SQL for a shape over the listing table (one row per project and
/// record): one index range scan, no UNION.
pub fn sql_listing(shape: Shape, depth: f64) -> (String, Option<String>) {
    let d = shape.def();
    let extra = sql_filter(d.filter);
    // Qualified: the bare names would be the output columns, and the rendered
    // `created_at` text would be sorted instead of the indexed timestamp.
    let order = order_by(d.sort)
        .split(", ")
        .map(|t| format!("listing.{t}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (offset, limit) = shape.page(depth);
    let page = format!(
        "SELECT {COLUMNS} FROM listing WHERE project_id = $1 {extra} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    );
    let count = d
        .count
        .then(|| format!("SELECT count(*) FROM listing WHERE project_id = $1 {extra}"));
    (page, count)
}

/// The API's order: the sort keys, then `id` in the last key's direction;
/// absent strings sort first.
fn order_by(sort: &[(SortField, Dir)]) -> String {
    let mut terms: Vec<String> = sort
        .iter()
        .map(|&(f, d)| match (d, nullable(f)) {
            (Dir::Asc, false) => format!("{} ASC", f.as_str()),
            (Dir::Desc, false) => format!("{} DESC", f.as_str()),
            (Dir::Asc, true) => format!("{} ASC NULLS FIRST", f.as_str()),
            (Dir::Desc, true) => format!("{} DESC NULLS LAST", f.as_str()),
        })
        .collect();
    let last = sort.last().map_or(Dir::Desc, |k| k.1);
    terms.push(format!(
        "id {}",
        if last == Dir::Asc { "ASC" } else { "DESC" }
    ));
    terms.join(", ")
}

/// SQL for a shape: the page query and, when the shape wants it, the count.
/// A record is listed under its source and its destination project, so each
/// query is a UNION ALL of the two sides (the second excluding rows the first
/// has), each able to use its own (project, …) index.
pub fn sql(shape: Shape, depth: f64) -> (String, Option<String>) {
    let d = shape.def();
    let extra = sql_filter(d.filter);
    let order = order_by(d.sort);
    let (offset, limit) = shape.page(depth);
    let side = |cond: &str| format!("SELECT * FROM replication_records WHERE {cond} {extra}");
    let src = "source_project_id = $1";
    let dst = "destination_project_id = $1 AND source_project_id IS DISTINCT FROM $1";
    let branch_limit = offset + limit;
    let page = format!(
        "SELECT {COLUMNS} FROM (({} ORDER BY {order} LIMIT {branch_limit}) UNION ALL ({} ORDER BY {order} LIMIT {branch_limit})) t \
         ORDER BY {order} LIMIT {limit} OFFSET {offset}",
        side(src),
        side(dst)
    );
    let count = d.count.then(|| {
        format!(
            "SELECT (SELECT count(*) FROM replication_records WHERE {src} {extra}) + (SELECT count(*) FROM replication_records WHERE {dst} {extra})"
        )
    });
    (page, count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_scale_with_the_dataset_and_nulls_sort_first() {
        assert_eq!(Shape::Q7.page(1.0), (50_000, 100));
        assert_eq!(Shape::Q7.page(0.01), (500, 100));
        assert_eq!(Shape::Q2.page(0.01), (0, DEFAULT_LIMIT));
        assert_eq!(
            order_by(&[
                (SortField::PlanId, Dir::Asc),
                (SortField::CreatedAt, Dir::Desc)
            ]),
            "plan_id ASC NULLS FIRST, created_at DESC, id DESC"
        );
        assert_eq!(
            order_by(&[(SortField::DestinationRegion, Dir::Desc)]),
            "destination_region DESC NULLS LAST, id DESC"
        );
    }
}
