//! The PostgreSQL side, in two schemas a team might build:
//! - `Records`: one row per record, indexed from both project columns; a list
//!   is a `UNION ALL` of the source side and the destination side.
//! - `Listing`: one row per *listing* (project, record) — what a DBA would
//!   choose for an API whose every query names one project: every shape is
//!   one index range scan. This is the anchor the tracker is measured against.
//!
//! Both get batched upserts of the rows the reference fold produces, and the
//! same query shapes. PostgreSQL doing the tracker's whole write job, timed
//! from the raw messages, is `pg_same.rs`.

use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Statement};

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use common::record::{ExtraInfo, Status};
use common::testkit::reference;
use common::{Message, Record};

use crate::shapes::{self, Params, Shape};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Records,
    Listing,
}

impl Schema {
    pub fn table(self) -> &'static str {
        match self {
            Schema::Records => "replication_records",
            Schema::Listing => "listing",
        }
    }

    /// The indexes a DBA would add for these queries, as (name, columns).
    pub fn indexes(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Schema::Records => &[
                ("rr_src_created", "(source_project_id, created_at DESC, id DESC)"),
                ("rr_dst_created", "(destination_project_id, created_at DESC, id DESC)"),
                ("rr_src_status", "(source_project_id, status, created_at DESC, id DESC)"),
                ("rr_dst_status", "(destination_project_id, status, created_at DESC, id DESC)"),
                ("rr_src_regions", "(source_project_id, source_region, destination_region, status, created_at DESC, id DESC)"),
                ("rr_dst_regions", "(destination_project_id, source_region, destination_region, status, created_at DESC, id DESC)"),
                ("rr_src_ckpt", "(source_checkpoint_item_id)"),
                ("rr_dst_ckpt", "(destination_checkpoint_item_id)"),
            ],
            Schema::Listing => &[
                ("l_created", "(project_id, created_at DESC, id DESC)"),
                ("l_status", "(project_id, status, created_at DESC, id DESC)"),
                ("l_regions", "(project_id, source_region, destination_region, status, created_at DESC, id DESC)"),
                ("l_updated", "(project_id, updated_at DESC, id DESC)"),
                ("l_src_ckpt", "(source_checkpoint_item_id)"),
                ("l_dst_ckpt", "(destination_checkpoint_item_id)"),
            ],
        }
    }
}

pub fn connect(conninfo: &str) -> Result<Client, postgres::Error> {
    Client::connect(conninfo, NoTls)
}

const RECORD_COLUMNS: &str = "id text NOT NULL,
    source_region text, source_project_id text, source_checkpoint_id text, source_checkpoint_item_id text,
    destination_region text, destination_project_id text, destination_checkpoint_id text,
    destination_checkpoint_item_id text,
    status text NOT NULL, plan_id text,
    created_at timestamp NOT NULL, updated_at timestamp NOT NULL,
    auto_trigger boolean NOT NULL, progress integer NOT NULL, fail_reason text NOT NULL, fail_code text NOT NULL";

pub fn create_schema(c: &mut Client, schema: Schema) -> Result<(), postgres::Error> {
    let table = schema.table();
    let body = match schema {
        Schema::Records => format!("{RECORD_COLUMNS}, PRIMARY KEY (id)"),
        Schema::Listing => return create_listing_table(c, table),
    };
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({body})"
    ))?;
    for (name, cols) in schema.indexes() {
        c.batch_execute(&format!("CREATE INDEX {name} ON {table} {cols}"))?;
    }
    Ok(())
}

/// A table of the listing schema, with its indexes, under `table` (the
/// anchor's, or the same job's: `bench/pg_same.rs`).
pub fn create_listing_table(c: &mut Client, table: &str) -> Result<(), postgres::Error> {
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (project_id text NOT NULL, \
         {RECORD_COLUMNS}, PRIMARY KEY (project_id, id))"
    ))?;
    for (name, cols) in Schema::Listing.indexes() {
        let name = match table {
            "listing" => name.to_string(),
            _ => format!("{table}_{name}"),
        };
        c.batch_execute(&format!("CREATE INDEX {name} ON {table} {cols}"))?;
    }
    Ok(())
}

const SET_COLUMNS: &str = "source_region = EXCLUDED.source_region, source_project_id = EXCLUDED.source_project_id,
    source_checkpoint_id = EXCLUDED.source_checkpoint_id, source_checkpoint_item_id = EXCLUDED.source_checkpoint_item_id,
    destination_region = EXCLUDED.destination_region, destination_project_id = EXCLUDED.destination_project_id,
    destination_checkpoint_id = EXCLUDED.destination_checkpoint_id,
    destination_checkpoint_item_id = EXCLUDED.destination_checkpoint_item_id,
    status = EXCLUDED.status, plan_id = EXCLUDED.plan_id, created_at = EXCLUDED.created_at,
    updated_at = EXCLUDED.updated_at, auto_trigger = EXCLUDED.auto_trigger, progress = EXCLUDED.progress,
    fail_reason = EXCLUDED.fail_reason, fail_code = EXCLUDED.fail_code";

const UNNEST: &str = "UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
              $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bool[], $15::int[], $16::text[], $17::text[], $18::text[])
    AS t(id, sr, sp, sc, si, dr, dp, dc, di, st, pl, ca, ua, at, pr, fr, fc, project)";

const VALUES: &str =
    "id, sr, sp, sc, si, dr, dp, dc, di, st, pl, ca::timestamp, ua::timestamp, at, pr, fr, fc";

pub struct Writer {
    upsert: Statement,
    /// Listing rows of a record under a project it is no longer listed in.
    delete_stale: Option<Statement>,
}

pub fn prepare_writer(c: &mut Client, schema: Schema) -> Result<Writer, postgres::Error> {
    let upsert = match schema {
        Schema::Records => format!(
            "INSERT INTO replication_records SELECT {VALUES} FROM {UNNEST}
             ON CONFLICT (id) DO UPDATE SET {SET_COLUMNS}"
        ),
        Schema::Listing => return prepare_listing_writer(c, schema.table()),
    };
    Ok(Writer {
        upsert: c.prepare(&upsert)?,
        delete_stale: None,
    })
}

/// The writer of a listing-schema table.
pub fn prepare_listing_writer(c: &mut Client, table: &str) -> Result<Writer, postgres::Error> {
    Ok(Writer {
        upsert: c.prepare(&format!(
            "INSERT INTO {table} SELECT project, {VALUES} FROM {UNNEST}
             ON CONFLICT (project_id, id) DO UPDATE SET {SET_COLUMNS}"
        ))?,
        delete_stale: Some(c.prepare(&format!(
            "DELETE FROM {table} l USING UNNEST($1::text[], $2::text[]) AS t(id, project)
             WHERE l.id = t.id AND l.project_id = t.project"
        ))?),
    })
}

/// Upserts `rows` in one statement (one transaction): `(project, record)`,
/// the project unused by the `Records` schema.
pub fn upsert(
    c: &mut Client,
    w: &Writer,
    rows: &[(String, &Record)],
) -> Result<(), postgres::Error> {
    upsert_in(c, w, rows)
}

/// [`upsert`], in a transaction or not.
pub fn upsert_in(
    c: &mut impl GenericClient,
    w: &Writer,
    rows: &[(String, &Record)],
) -> Result<(), postgres::Error> {
    let col = |f: fn(&Record) -> Option<String>| {
        rows.iter()
            .map(|(_, r)| f(r))
            .collect::<Vec<Option<String>>>()
    };
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
    let auto: Vec<bool> = rows
        .iter()
        .map(|(_, r)| r.extra_info.auto_trigger)
        .collect();
    let progress: Vec<i32> = rows
        .iter()
        .map(|(_, r)| i32::from(r.extra_info.progress))
        .collect();
    let reason = col(|r| Some(r.extra_info.fail_reason.clone()));
    let code = col(|r| Some(r.extra_info.fail_code.clone()));
    let projects: Vec<&str> = rows.iter().map(|(p, _)| p.as_str()).collect();
    let mut params: Vec<&(dyn ToSql + Sync)> =
        cols.iter().map(|c| c as &(dyn ToSql + Sync)).collect();
    params.push(&auto);
    params.push(&progress);
    params.push(&reason);
    params.push(&code);
    params.push(&projects);
    c.execute(&w.upsert, &params)?;
    Ok(())
}

/// Deletes listing rows `(id, project)` (a record that left a project).
pub fn delete_stale(
    c: &mut Client,
    w: &Writer,
    stale: &[(String, String)],
) -> Result<(), postgres::Error> {
    delete_stale_in(c, w, stale)
}

/// [`delete_stale`], in a transaction or not.
pub fn delete_stale_in(
    c: &mut impl GenericClient,
    w: &Writer,
    stale: &[(String, String)],
) -> Result<(), postgres::Error> {
    if let (Some(stmt), false) = (&w.delete_stale, stale.is_empty()) {
        let ids: Vec<&str> = stale.iter().map(|(id, _)| id.as_str()).collect();
        let projects: Vec<&str> = stale.iter().map(|(_, p)| p.as_str()).collect();
        c.execute(stmt, &[&ids, &projects])?;
    }
    Ok(())
}

pub struct Prepared {
    page: Statement,
    count: Option<Statement>,
    /// The page query's text, for `--explain`.
    sql: String,
}

/// PostgreSQL's plan for a shape's page query with `p`, as it ran.
pub fn explain(
    c: &mut Client,
    prep: &Prepared,
    shape: Shape,
    p: &Params,
) -> anyhow::Result<String> {
    let extra = shapes::sql_params(shape, p);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&p.project];
    params.extend(extra.iter().map(|v| v as &(dyn ToSql + Sync)));
    let rows = c.query(&format!("EXPLAIN (ANALYZE, BUFFERS) {}", prep.sql), &params)?;
    Ok(rows
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n"))
}

pub fn prepare(
    c: &mut Client,
    schema: Schema,
    shape: Shape,
    depth: f64,
) -> Result<Prepared, postgres::Error> {
    let (page, count) = match schema {
        Schema::Records => shapes::sql(shape, depth),
        Schema::Listing => shapes::sql_listing(shape, depth),
    };
    Ok(Prepared {
        page: c.prepare(&page)?,
        count: count.map(|q| c.prepare(&q)).transpose()?,
        sql: page,
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

/// The table and its indexes, on disk.
pub fn table_bytes(c: &mut Client, schema: Schema) -> Result<i64, postgres::Error> {
    Ok(c.query_one(
        &format!("SELECT pg_total_relation_size('{}')", schema.table()),
        &[],
    )?
    .get(0))
}

/// Loads both schemas the way a team's consumer would: per batch of
/// `batch` messages, the touched records' rows — folded by the independent
/// reference fold, so the page comparison checks the tracker's fold too —
/// upserted `pg_batch` rows per statement, and the listings a record left
/// deleted. Only PostgreSQL's writes are timed. Returns events/s for
/// [`Schema::Listing`] and [`Schema::Records`].
pub fn load_both(
    pgc: &mut Client,
    messages: &[Message],
    batch: usize,
    pg_batch: usize,
) -> anyhow::Result<[f64; 2]> {
    let mut seen: HashMap<String, Vec<common::Event>> = HashMap::new();
    let mut listed: HashMap<String, Vec<String>> = HashMap::new();
    let mut pg_batches: Vec<PgBatch> = Vec::new();
    for chunk in messages.chunks(batch) {
        let mut touched = BTreeSet::new();
        for m in chunk {
            if let Ok(e) = common::decode(m.key.as_deref(), m.payload.as_deref()) {
                touched.insert(e.record_id.clone());
                seen.entry(e.record_id.clone()).or_default().push(e);
            }
        }
        let rows: Vec<Record> = touched
            .iter()
            .filter_map(|id| reference::fold(id, &seen[id].iter().collect::<Vec<_>>()))
            .collect();
        // Listing rows of projects a record left.
        let mut stale = Vec::new();
        for r in &rows {
            let now = projects_of(r);
            for p in listed.insert(r.id.clone(), now.clone()).unwrap_or_default() {
                if !now.contains(&p) {
                    stale.push((r.id.clone(), p));
                }
            }
        }
        pg_batches.push(PgBatch { rows, stale });
    }
    drop(seen);
    drop(listed);
    let mut pg_eps = [0.0; 2];
    for (i, schema) in [Schema::Listing, Schema::Records].into_iter().enumerate() {
        create_schema(pgc, schema)?;
        let writer = prepare_writer(pgc, schema)?;
        // Rows as the schema stores them, built before the clock starts.
        let rows: Vec<Vec<(String, &Record)>> = pg_batches
            .iter()
            .map(|b| {
                b.rows
                    .iter()
                    .flat_map(|r| match schema {
                        Schema::Records => vec![(String::new(), r)],
                        Schema::Listing => projects_of(r).into_iter().map(|p| (p, r)).collect(),
                    })
                    .collect()
            })
            .collect();
        let row_writes: usize = rows.iter().map(Vec::len).sum();
        let t = Instant::now();
        for (rows, b) in rows.iter().zip(&pg_batches) {
            for chunk in rows.chunks(pg_batch) {
                upsert(pgc, &writer, chunk)?;
            }
            delete_stale(pgc, &writer, &b.stale)?;
        }
        let secs = t.elapsed().as_secs_f64();
        // A DBA's step after a bulk load, outside the clock: left to
        // autovacuum, PostgreSQL did it while the tracker's queries were
        // timed, on the same 2 cores (docs/benchmarks.md, "The full run's tails").
        pgc.batch_execute(&format!("VACUUM (ANALYZE) {}", schema.table()))?;
        let eps = messages.len() as f64 / secs;
        println!(
            "postgres ({schema:?}) upsert: {row_writes} row writes in {secs:.1} s ({:.0} rows/s) = {eps:.0} events/s",
            row_writes as f64 / secs
        );
        pg_eps[i] = eps;
    }
    // The load's dirty buffers written out now, not while queries are timed.
    pgc.batch_execute("CHECKPOINT")?;
    Ok(pg_eps)
}

/// One ingest batch as PostgreSQL applies it: the touched records' new rows
/// and the listings they left.
struct PgBatch {
    rows: Vec<Record>,
    stale: Vec<(String, String)>,
}

/// The projects a record is listed under (source, destination, deduplicated).
pub fn projects_of(r: &Record) -> Vec<String> {
    let mut ps: Vec<String> = [&r.source_project_id, &r.destination_project_id]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    ps.dedup();
    ps
}
