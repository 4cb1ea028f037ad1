//! The PostgreSQL side: the table, the indexes a DBA would add for these
//! queries, batched upserts of the resulting rows, and the query runner.

use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};

use common::record::{ExtraInfo, Status};
use common::Record;

use crate::shapes::{self, Params, Shape};

/// Indexes, said in the results. Each serves the project scope from one side
/// (source or destination) in the order the queries sort by.
pub const INDEXES: [(&str, &str); 8] = [
    ("rr_src_created", "(source_project_id, created_at DESC, id DESC)"),
    ("rr_dst_created", "(destination_project_id, created_at DESC, id DESC)"),
    ("rr_src_status", "(source_project_id, status, created_at DESC, id DESC)"),
    ("rr_dst_status", "(destination_project_id, status, created_at DESC, id DESC)"),
    ("rr_src_regions", "(source_project_id, source_region, destination_region, status, created_at DESC, id DESC)"),
    ("rr_dst_regions", "(destination_project_id, source_region, destination_region, status, created_at DESC, id DESC)"),
    ("rr_src_ckpt", "(source_checkpoint_item_id)"),
    ("rr_dst_ckpt", "(destination_checkpoint_item_id)"),
];

pub fn connect(conninfo: &str) -> Result<Client, postgres::Error> {
    Client::connect(conninfo, NoTls)
}

pub fn create_schema(c: &mut Client) -> Result<(), postgres::Error> {
    c.batch_execute(
        "DROP TABLE IF EXISTS replication_records;
         CREATE TABLE replication_records (
            id text PRIMARY KEY,
            source_region text, source_project_id text, source_checkpoint_id text, source_checkpoint_item_id text,
            destination_region text, destination_project_id text, destination_checkpoint_id text,
            destination_checkpoint_item_id text,
            status text NOT NULL, plan_id text,
            created_at timestamp NOT NULL, updated_at timestamp NOT NULL,
            auto_trigger boolean NOT NULL, progress integer NOT NULL, fail_reason text NOT NULL, fail_code text NOT NULL)",
    )?;
    for (name, cols) in INDEXES {
        c.batch_execute(&format!(
            "CREATE INDEX {name} ON replication_records {cols}"
        ))?;
    }
    Ok(())
}

const UPSERT: &str = "INSERT INTO replication_records SELECT
    id, sr, sp, sc, si, dr, dp, dc, di, st, pl, ca::timestamp, ua::timestamp, at, pr, fr, fc
  FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bool[], $15::int[], $16::text[], $17::text[])
    AS t(id, sr, sp, sc, si, dr, dp, dc, di, st, pl, ca, ua, at, pr, fr, fc)
  ON CONFLICT (id) DO UPDATE SET
    source_region = EXCLUDED.source_region, source_project_id = EXCLUDED.source_project_id,
    source_checkpoint_id = EXCLUDED.source_checkpoint_id, source_checkpoint_item_id = EXCLUDED.source_checkpoint_item_id,
    destination_region = EXCLUDED.destination_region, destination_project_id = EXCLUDED.destination_project_id,
    destination_checkpoint_id = EXCLUDED.destination_checkpoint_id,
    destination_checkpoint_item_id = EXCLUDED.destination_checkpoint_item_id,
    status = EXCLUDED.status, plan_id = EXCLUDED.plan_id, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, auto_trigger = EXCLUDED.auto_trigger, progress = EXCLUDED.progress,
    fail_reason = EXCLUDED.fail_reason, fail_code = EXCLUDED.fail_code";

/// Upserts `rows` in one statement (one transaction).
pub fn upsert(c: &mut Client, stmt: &Statement, rows: &[Record]) -> Result<(), postgres::Error> {
    let col =
        |f: fn(&Record) -> Option<String>| rows.iter().map(f).collect::<Vec<Option<String>>>();
    let cols: Vec<Vec<Option<String>>> = vec![
        col(|r| Some(r.id.clone())),
        col(|r| r.source_region.clone()),
        col(|r| r.source_project_id.clone()),
        col(|r| r.source_checkpoint_id.clone()),
        col(|r| r.source_checkpoint_item_id.clone()),
        col(|r| r.destination_region.clone()),
        col(|r| r.destination_project_id.clone()),
        col(|r| r.destination_checkpoint_id.clone()),
        col(|r| r.destination_checkpoint_item_id.clone()),
        col(|r| Some(r.status.as_str().to_owned())),
        col(|r| r.plan_id.clone()),
        col(|r| Some(r.created_at.clone())),
        col(|r| Some(r.updated_at.clone())),
    ];
    let auto: Vec<bool> = rows.iter().map(|r| r.extra_info.auto_trigger).collect();
    let progress: Vec<i32> = rows
        .iter()
        .map(|r| i32::from(r.extra_info.progress))
        .collect();
    let reason = col(|r| Some(r.extra_info.fail_reason.clone()));
    let code = col(|r| Some(r.extra_info.fail_code.clone()));
    let mut params: Vec<&(dyn ToSql + Sync)> =
        cols.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
    params.push(&auto);
    params.push(&progress);
    params.push(&reason);
    params.push(&code);
    c.execute(stmt, &params)?;
    Ok(())
}

pub fn prepare_upsert(c: &mut Client) -> Result<Statement, postgres::Error> {
    c.prepare(UPSERT)
}

pub struct Prepared {
    page: Statement,
    count: Option<Statement>,
}

pub fn prepare(c: &mut Client, shape: Shape, depth: f64) -> Result<Prepared, postgres::Error> {
    let (page, count) = shapes::sql(shape, depth);
    Ok(Prepared {
        page: c.prepare(&page)?,
        count: count.map(|q| c.prepare(&q)).transpose()?,
    })
}

/// Runs one query; returns the page, every row decoded into a whole record
/// (as an API server would), and the count.
pub fn run(
    c: &mut Client,
    prep: &Prepared,
    shape: Shape,
    p: &Params,
) -> anyhow::Result<(Vec<Record>, Option<i64>)> {
    let extra = shapes::sql_params(shape, p);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&p.project];
    params.extend(extra.iter().map(|v| v as &(dyn ToSql + Sync)));
    let rows = c.query(&prep.page, &params)?;
    let mut page = Vec::with_capacity(rows.len());
    for row in rows {
        let status: String = row.get(9);
        page.push(Record {
            id: row.get(0),
            source_region: row.get(1),
            source_project_id: row.get(2),
            source_checkpoint_id: row.get(3),
            source_checkpoint_item_id: row.get(4),
            destination_region: row.get(5),
            destination_project_id: row.get(6),
            destination_checkpoint_id: row.get(7),
            destination_checkpoint_item_id: row.get(8),
            status: Status::parse(&status)
                .ok_or_else(|| anyhow::anyhow!("unknown status {status}"))?,
            plan_id: row.get(10),
            created_at: row.get(11),
            updated_at: row.get(12),
            extra_info: ExtraInfo {
                auto_trigger: row.get(13),
                progress: u8::try_from(row.get::<_, i32>(14))?,
                fail_reason: row.get(15),
                fail_code: row.get(16),
            },
        });
    }
    let count = match &prep.count {
        Some(stmt) => Some(c.query_one(stmt, &params)?.get::<_, i64>(0)),
        None => None,
    };
    Ok((page, count))
}

pub fn database_bytes(c: &mut Client) -> Result<i64, postgres::Error> {
    Ok(
        c.query_one("SELECT pg_database_size(current_database())", &[])?
            .get(0),
    )
}
