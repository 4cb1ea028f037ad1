//! PostgreSQL doing the tracker's whole job (issue 36, item 6), timed from
//! the raw messages: decode and fold in the client (the tracker's own
//! decoder and fold, the record states kept in the client's memory — the
//! fastest honest shape: no read back per batch — on a thread of their own,
//! a batch ahead of the writes), then per batch ONE
//! transaction that copies the events with their Kafka coordinates into an
//! events table (binary COPY: the audit trail), upserts the touched
//! records' listing rows, deletes the listings a record left, and moves
//! the partitions' offsets. Its tables are dropped after their size is
//! read; the anchor's rows-only load ([`super::pg::load_both`]) is kept
//! beside it, labelled.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use postgres::Client;

use common::{Message, Record, RecordState};

use crate::pg;

/// The same job's tables: the listing (the anchor's schema and indexes),
/// the events and the offsets.
const LISTING: &str = "sj_listing";

/// What the same job cost PostgreSQL.
pub struct SameJob {
    pub events_per_sec: f64,
    /// Tables and indexes, events included.
    pub bytes: i64,
}

/// The record states the client keeps, and the projects each is listed in.
#[derive(Default)]
struct Folded {
    states: HashMap<String, RecordState>,
    listed: HashMap<String, Vec<String>>,
}

/// One batch, decoded and folded: what its transaction writes.
struct Prepared<'m> {
    /// The accepted messages and their records' ids (the events table).
    accepted: Vec<(&'m Message, String)>,
    /// The touched records' listing rows, and each row's projects.
    rows: Vec<Record>,
    projects: Vec<Vec<String>>,
    /// The listings records left: (id, project).
    stale: Vec<(String, String)>,
    /// Each partition's next offset.
    next: HashMap<(&'m str, i32), i64>,
}

impl Folded {
    /// Decode and fold: the client's share.
    fn prepare<'m>(&mut self, chunk: &'m [Message]) -> Prepared<'m> {
        let mut touched = BTreeSet::new();
        let mut accepted = Vec::with_capacity(chunk.len());
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        for m in chunk {
            next.insert((&m.topic, m.partition), m.offset + 1);
            let Ok(e) = common::decode(m.key.as_deref(), m.payload.as_deref()) else {
                continue;
            };
            match self.states.get_mut(&e.record_id) {
                Some(s) => {
                    s.apply(&e);
                }
                None => {
                    self.states
                        .insert(e.record_id.clone(), RecordState::new(&e));
                }
            }
            touched.insert(e.record_id.clone());
            accepted.push((m, e.record_id));
        }
        let rows: Vec<Record> = touched.iter().map(|id| self.states[id].view(id)).collect();
        let mut stale = Vec::new();
        let mut projects = Vec::with_capacity(rows.len());
        for r in &rows {
            let now = pg::projects_of(r);
            for p in self
                .listed
                .insert(r.id.clone(), now.clone())
                .unwrap_or_default()
            {
                if !now.contains(&p) {
                    stale.push((r.id.clone(), p));
                }
            }
            projects.push(now);
        }
        Prepared {
            accepted,
            rows,
            projects,
            stale,
            next,
        }
    }
}

/// Pipelined: a thread decodes and folds batch k + 1 while this one sends
/// batch k to PostgreSQL (whose server works in a process of its own): the
/// client's CPU and the server's overlap.
fn pipeline(
    c: &mut Client,
    writer: &pg::Writer,
    offsets: &postgres::Statement,
    messages: &[Message],
    batch: usize,
) -> anyhow::Result<()> {
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Prepared<'_>>(2);
        scope.spawn(move || {
            let mut folded = Folded::default();
            for chunk in messages.chunks(batch) {
                if tx.send(folded.prepare(chunk)).is_err() {
                    break;
                }
            }
        });
        for p in rx {
            write(c, writer, offsets, &p)?;
        }
        Ok(())
    })
}

/// One batch's transaction: the events (binary COPY), the listing rows,
/// the stale listings, the offsets.
fn write(
    c: &mut Client,
    writer: &pg::Writer,
    offsets: &postgres::Statement,
    p: &Prepared<'_>,
) -> anyhow::Result<()> {
    let listing: Vec<(String, &Record)> = p
        .rows
        .iter()
        .zip(&p.projects)
        .flat_map(|(r, ps)| ps.iter().map(move |proj| (proj.clone(), r)))
        .collect();
    let mut tx = c.transaction()?;
    let sink = tx.copy_in(
        "COPY sj_events (topic, partition, \"offset\", record_id, raw) FROM STDIN BINARY",
    )?;
    let mut w = BinaryCopyInWriter::new(
        sink,
        &[Type::TEXT, Type::INT4, Type::INT8, Type::TEXT, Type::BYTEA],
    );
    for (m, id) in &p.accepted {
        let raw: &[u8] = m.payload.as_deref().unwrap_or_default();
        w.write(&[&m.topic, &m.partition, &m.offset, id, &raw])?;
    }
    w.finish()?;
    for rows in listing.chunks(1000) {
        pg::upsert_in(&mut tx, writer, rows)?;
    }
    pg::delete_stale_in(&mut tx, writer, &p.stale)?;
    let topics: Vec<&str> = p.next.keys().map(|(t, _)| *t).collect();
    let partitions: Vec<i32> = p.next.keys().map(|(_, p)| *p).collect();
    let ends: Vec<i64> = p.next.values().copied().collect();
    tx.execute(offsets, &[&topics, &partitions, &ends])?;
    tx.commit()?;
    Ok(())
}

/// The same job both ways — the fold pipelined beside the writes, and all
/// on one thread — each printed; the faster is PostgreSQL's figure.
pub fn apply(c: &mut Client, messages: &[Message], batch: usize) -> anyhow::Result<SameJob> {
    let pipelined = apply_as(c, messages, batch, true)?;
    let serial = apply_as(c, messages, batch, false)?;
    Ok(if pipelined.events_per_sec >= serial.events_per_sec {
        pipelined
    } else {
        serial
    })
}

fn apply_as(
    c: &mut Client,
    messages: &[Message],
    batch: usize,
    pipelined: bool,
) -> anyhow::Result<SameJob> {
    pg::create_listing_table(c, LISTING)?;
    c.batch_execute(
        "DROP TABLE IF EXISTS sj_events, sj_offsets;
         CREATE TABLE sj_events (topic text NOT NULL, partition int NOT NULL, \"offset\" bigint NOT NULL,
             record_id text NOT NULL, raw bytea NOT NULL, PRIMARY KEY (topic, partition, \"offset\"));
         CREATE INDEX sj_events_record ON sj_events (record_id);
         CREATE TABLE sj_offsets (topic text NOT NULL, partition int NOT NULL, next bigint NOT NULL,
             PRIMARY KEY (topic, partition));",
    )?;
    let writer = pg::prepare_listing_writer(c, LISTING)?;
    let offsets = c.prepare(
        "INSERT INTO sj_offsets SELECT * FROM UNNEST($1::text[], $2::int[], $3::bigint[])
         ON CONFLICT (topic, partition) DO UPDATE SET next = EXCLUDED.next",
    )?;
    let t = Instant::now();
    if !pipelined {
        let mut folded = Folded::default();
        for chunk in messages.chunks(batch) {
            write(c, &writer, &offsets, &folded.prepare(chunk))?;
        }
    } else {
        pipeline(c, &writer, &offsets, messages, batch)?;
    }
    let secs = t.elapsed().as_secs_f64();
    let eps = messages.len() as f64 / secs;
    let mut bytes = 0;
    for table in [LISTING, "sj_events", "sj_offsets"] {
        let b: i64 = c
            .query_one(&format!("SELECT pg_total_relation_size('{table}')"), &[])?
            .get(0);
        bytes += b;
    }
    println!(
        "postgres (same job: decode, fold, events COPY, listing upsert, offsets; one transaction per batch; {}): {eps:.0} events/s ({} msgs in {secs:.1} s), {} MiB",
        if pipelined { "the fold on a thread of its own, a batch ahead" } else { "one thread" },
        messages.len(),
        bytes >> 20
    );
    c.batch_execute(&format!(
        "DROP TABLE {LISTING}, sj_events, sj_offsets; CHECKPOINT"
    ))?;
    Ok(SameJob {
        events_per_sec: eps,
        bytes,
    })
}
