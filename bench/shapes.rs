//! The seven query shapes, as a tracker `ListQuery` and as the SQL a
//! competent PostgreSQL implementation of the same API would run.

use common::record::{Field, Status};
use common::store::{Dir, ListQuery, SortField, SortKey};
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
}

pub const ALL: [Shape; 7] = [
    Shape::Q1,
    Shape::Q2,
    Shape::Q3,
    Shape::Q4,
    Shape::Q5,
    Shape::Q6,
    Shape::Q7,
];

impl Shape {
    pub fn describe(self) -> &'static str {
        match self {
            Shape::Q1 => "Q1 project, default sort, limit 100",
            Shape::Q2 => "Q2 project + status=fail, with_count",
            Shape::Q3 => "Q3 project + src + dst region + status, limit 20",
            Shape::Q4 => "Q4 project + checkpoint_item_id",
            Shape::Q5 => "Q5 project, sort=status:asc,created_at:desc, offset 5000, limit 100",
            Shape::Q6 => "Q6 project, with_count, limit 1",
            Shape::Q7 => "Q7 project, offset 50000, limit 100",
        }
    }

    pub fn name(self) -> &'static str {
        &self.describe()[..2]
    }
}

/// Parameters drawn from one real record.
#[derive(Debug, Clone)]
pub struct Params {
    pub project: String,
    pub status: Status,
    pub source_region: String,
    pub destination_region: String,
    pub checkpoint_item: String,
}

impl Params {
    pub fn from_record(s: &RecordState) -> Params {
        let g = |f| s.get(f).unwrap_or_default().to_owned();
        Params {
            project: g(Field::SourceProjectId),
            status: s.status(),
            source_region: g(Field::SourceRegion),
            destination_region: g(Field::DestinationRegion),
            checkpoint_item: g(Field::SourceCheckpointItemId),
        }
    }
}

pub fn list_query(shape: Shape, p: &Params) -> ListQuery {
    let mut q = ListQuery::default();
    match shape {
        Shape::Q1 => q.limit = Some(100),
        Shape::Q2 => {
            q.status = Some(Status::Fail);
            q.with_count = Some(true);
        }
        Shape::Q3 => {
            q.source_region = Some(p.source_region.clone());
            q.destination_region = Some(p.destination_region.clone());
            q.status = Some(p.status);
            q.limit = Some(20);
        }
        Shape::Q4 => q.checkpoint_item_id = Some(p.checkpoint_item.clone()),
        Shape::Q5 => {
            q.sort = Some(vec![
                SortKey {
                    field: SortField::Status,
                    dir: Dir::Asc,
                },
                SortKey {
                    field: SortField::CreatedAt,
                    dir: Dir::Desc,
                },
            ]);
            q.offset = Some(5000);
            q.limit = Some(100);
        }
        Shape::Q6 => {
            q.with_count = Some(true);
            q.limit = Some(1);
        }
        Shape::Q7 => {
            q.offset = Some(50_000);
            q.limit = Some(100);
        }
    }
    q
}

/// The API query string of a shape (for the HTTP runs).
pub fn query_string(shape: Shape, p: &Params) -> String {
    match shape {
        Shape::Q1 => "limit=100".into(),
        Shape::Q2 => "status=fail&with_count=true".into(),
        Shape::Q3 => format!(
            "source_region={}&destination_region={}&status={}&limit=20",
            p.source_region,
            p.destination_region,
            p.status.as_str()
        ),
        Shape::Q4 => format!("checkpoint_item_id={}", p.checkpoint_item),
        Shape::Q5 => "sort=status:asc,created_at:desc&offset=5000&limit=100".into(),
        Shape::Q6 => "with_count=true&limit=1".into(),
        Shape::Q7 => "offset=50000&limit=100".into(),
    }
}

pub const COLUMNS: &str = "id, source_region, source_project_id, source_checkpoint_id, source_checkpoint_item_id, \
destination_region, destination_project_id, destination_checkpoint_id, destination_checkpoint_item_id, status, plan_id, \
to_char(created_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS created_at, to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.US') AS updated_at, \
auto_trigger, progress, fail_reason, fail_code";

/// SQL for a shape: the page query and, when the shape wants it, the count.
/// A record is listed under its source and its destination project, so each
/// query is a UNION ALL of the two sides (the second excluding rows the first
/// has), each able to use its own (project, …, created_at) index.
pub fn sql(shape: Shape) -> (String, Option<String>) {
    let (extra, order, offset, limit, count) = match shape {
        Shape::Q1 => ("", "created_at DESC, id DESC", 0, 100, false),
        Shape::Q2 => ("AND status = $2", "created_at DESC, id DESC", 0, 1000, true),
        Shape::Q3 => (
            "AND source_region = $2 AND destination_region = $3 AND status = $4",
            "created_at DESC, id DESC",
            0,
            20,
            false,
        ),
        Shape::Q4 => (
            "AND (source_checkpoint_item_id = $2 OR destination_checkpoint_item_id = $2)",
            "created_at DESC, id DESC",
            0,
            1000,
            false,
        ),
        Shape::Q5 => ("", "status ASC, created_at DESC, id DESC", 5000, 100, false),
        Shape::Q6 => ("", "created_at DESC, id DESC", 0, 1, true),
        Shape::Q7 => ("", "created_at DESC, id DESC", 50_000, 100, false),
    };
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
    let count = count.then(|| {
        format!(
            "SELECT (SELECT count(*) FROM replication_records WHERE {src} {extra}) + (SELECT count(*) FROM replication_records WHERE {dst} {extra})"
        )
    });
    (page, count)
}
