//! The export: every record of a project that matches a list's filters, in
//! the list's order, read from one version of the store — the list's pages
//! concatenated, with no page cap — and written as NDJSON or CSV as it is
//! read, so its memory does not grow with its size.
//!
//! Both formats carry the same records. NDJSON is one record per line, as
//! the API's JSON renders it, then one trailer line: how many records, the
//! SHA-256 of the record lines (each record's JSON and a newline, as
//! `digest` hashes a record, so `head -n -1 FILE | sha256sum` checks it
//! offline) and the partition offsets the version reflects. CSV has a header
//! row and the same fields, `extra_info` flattened (`extra_info.progress`);
//! an unknown (`null`) string is an empty field.

use std::io::Write;
use std::sync::mpsc::sync_channel;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Checkpoints, ListQuery, ReadView, StoreError};
use crate::record::Record;

/// Records read per page of the walk. A page is the list's own (its plan,
/// its marker), so the export is the list's pages by construction; a larger
/// page reads more records per plan and per number-ordered fetch. Unit
/// tests page by 3, so small generated worlds cross many pages.
pub const EXPORT_PAGE: usize = if cfg!(test) { 3 } else { 1000 };

crate::vocabulary! {
    /// The export's formats (`format=`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum ExportFormat {
        Ndjson = "ndjson",
        Csv = "csv",
    }
}

impl ExportFormat {
    /// The media type of an export in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// The CSV columns: the API's JSON fields in its order, `extra_info`'s
/// flattened (a test keeps them equal to the JSON's).
pub const CSV_COLUMNS: [&str; 17] = [
    "id",
    "source_region",
    "source_project_id",
    "source_checkpoint_id",
    "source_checkpoint_item_id",
    "destination_region",
    "destination_project_id",
    "destination_checkpoint_id",
    "destination_checkpoint_item_id",
    "status",
    "plan_id",
    "created_at",
    "updated_at",
    "extra_info.auto_trigger",
    "extra_info.progress",
    "extra_info.fail_reason",
    "extra_info.fail_code",
];

/// One partition's place in the version an export read: the next offset
/// it had not applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportOffset {
    pub partition: i32,
    pub next_offset: i64,
}

/// What an export holds and which version of the store it read: NDJSON's
/// last line is `{"export": …}` with these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportTrailer {
    pub records: u64,
    /// SHA-256 (hex) of the record lines: each record's JSON and `\n`.
    pub sha256: String,
    pub topic: Option<String>,
    pub offsets: Vec<ExportOffset>,
    /// Set when the store is the projection as of this time (`replay
    /// --until`): the offsets then include events consumed but not folded
    /// (those that occurred at or after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}

/// The NDJSON trailer line's shape.
#[derive(Serialize, Deserialize)]
pub struct TrailerLine {
    pub export: ExportTrailer,
}

/// The version an export reads: a view and the checkpoints of that same
/// point ([`super::Store::view_at_rest`]).
pub struct ExportSource {
    pub view: ReadView,
    pub topic: Option<String>,
    pub checkpoints: Checkpoints,
    pub until: Option<crate::instant::Micros>,
}

impl super::Store {
    /// A version to export from, with the offsets it reflects (and, for a
    /// store made as of a time, that time).
    pub fn export_source(&self) -> Result<ExportSource, StoreError> {
        let (view, _, checkpoints) = self.view_at_rest();
        Ok(ExportSource {
            view,
            topic: self.topic()?,
            checkpoints,
            until: self.until(),
        })
    }
}

/// Why an export stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export: {0}")]
    Write(#[from] std::io::Error),
}

impl From<csv::Error> for ExportError {
    fn from(e: csv::Error) -> Self {
        ExportError::Write(e.into())
    }
}

impl From<serde_json::Error> for ExportError {
    fn from(e: serde_json::Error) -> Self {
        ExportError::Write(e.into())
    }
}

/// Workers that read and render pages side by side (the machine's two
/// cores: reading a page's records is most of an export's work).
const WORKERS: usize = 2;
/// Pages queued per worker, each way: what bounds an export's memory.
const PAGES_AHEAD: usize = 2;

/// One page rendered: its records as JSON lines (hashed, and NDJSON's
/// output) and, for CSV, as rows.
struct Rendered {
    records: u64,
    json: Vec<u8>,
    csv: Option<Vec<u8>>,
}

impl ExportSource {
    /// Writes every record `q` matches under `project` (its filters and
    /// sort; its paging ignored) to `out` in `format`, calling `tick` with
    /// the count so far after each page (it may stop the export with an
    /// error); returns the writer and the trailer.
    ///
    /// The list's own pages, continued by marker: one thread walks them
    /// (the list's plan, up to each page's record numbers), two read and
    /// render them in turn, and this one hashes and writes them in order
    /// — each channel bounded, so memory is a few pages whatever the size,
    /// and a slow `out` slows the walk. A failure mid-way is returned as it
    /// is: the output then has no trailer, so a partial NDJSON file cannot
    /// pass for a whole one.
    pub fn export<W: Write>(
        &self,
        project: &str,
        q: &ListQuery,
        format: ExportFormat,
        mut out: W,
        mut tick: impl FnMut(u64) -> std::io::Result<()>,
    ) -> Result<(W, ExportTrailer), ExportError> {
        let q = ListQuery {
            marker: None,
            offset: None,
            limit: Some(EXPORT_PAGE),
            with_count: None,
            ..q.clone()
        };
        if format == ExportFormat::Csv {
            let mut header = csv::Writer::from_writer(Vec::new());
            header.write_record(CSV_COLUMNS)?;
            out.write_all(&header.into_inner().map_err(|e| e.into_error())?)?;
        }
        let view = &self.view;
        let mut sha = Sha256::new();
        let mut records = 0;
        std::thread::scope(|s| -> Result<(), ExportError> {
            let mut work = Vec::new();
            let mut done = Vec::new();
            for _ in 0..WORKERS {
                let (to_worker, pages) = sync_channel::<Vec<u32>>(PAGES_AHEAD);
                let (rendered, from_worker) = sync_channel(PAGES_AHEAD);
                s.spawn(move || {
                    for numbers in pages {
                        let r = render(view, &numbers, format);
                        let failed = r.is_err();
                        if rendered.send(r).is_err() || failed {
                            break;
                        }
                    }
                });
                work.push(to_worker);
                done.push(from_worker);
            }
            let walk = s.spawn(move || -> Result<(), StoreError> {
                let mut q = q;
                for page in 0.. {
                    let p = view.page_numbers(project, &q)?;
                    let last = p.numbers.last().copied();
                    // A closed channel: the writer stopped, and says why.
                    if work[page % WORKERS].send(p.numbers).is_err() || !p.more {
                        break;
                    }
                    let last = last.expect("a page with more after it is full");
                    q.marker = Some(view.row_of(last)?.0);
                }
                Ok(())
            });
            // Page n is worker n % WORKERS's; a worker's channel closing
            // ends the walk's pages there.
            let mut failed: Option<ExportError> = None;
            for page in 0.. {
                let r = match done[page % WORKERS].recv() {
                    Err(_) => break,
                    Ok(Err(e)) => {
                        failed = Some(e);
                        break;
                    }
                    Ok(Ok(r)) => r,
                };
                sha.update(&r.json);
                records += r.records;
                let written = out
                    .write_all(r.csv.as_deref().unwrap_or(&r.json))
                    .and_then(|()| tick(records));
                if let Err(e) = written {
                    failed = Some(e.into());
                    break;
                }
            }
            // Closed, so a worker or the walk waiting to send gives up. A
            // worker that panicked closed its channel, which ended the loop
            // as if the walk were done: the scope re-raises its panic when
            // it joins it, so no trailer is written after it.
            drop(done);
            let walked = walk.join().expect("the export's walk panicked");
            match failed {
                Some(e) => Err(e),
                None => Ok(walked?),
            }
        })?;
        let trailer = ExportTrailer {
            records,
            sha256: hex::encode(sha.finalize()),
            topic: self.topic.clone(),
            offsets: self
                .checkpoints
                .iter()
                .map(|((_, partition), next)| ExportOffset {
                    partition: *partition,
                    next_offset: *next,
                })
                .collect(),
            until: self.until.map(|t| t.render()),
        };
        if format == ExportFormat::Ndjson {
            serde_json::to_writer(
                &mut out,
                &TrailerLine {
                    export: trailer.clone(),
                },
            )?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok((out, trailer))
    }
}

/// A page's records read (in number order, as the list fetches them, but
/// around the block cache: an export reads a whole project once) and
/// rendered.
fn render(view: &ReadView, numbers: &[u32], format: ExportFormat) -> Result<Rendered, ExportError> {
    let rows = view.rows_around_cache(numbers)?;
    let mut json = Vec::with_capacity(rows.len() * 640);
    let mut csv = (format == ExportFormat::Csv).then(|| {
        csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::with_capacity(rows.len() * 320))
    });
    let records = rows.len() as u64;
    for (id, s) in rows {
        let r = s.into_view(id);
        serde_json::to_writer(&mut json, &r).expect("a record serializes");
        json.push(b'\n');
        if let Some(w) = &mut csv {
            w.write_record(csv_row(&r).iter().map(|c| c.as_bytes()))?;
        }
    }
    let csv = match csv {
        Some(w) => Some(w.into_inner().map_err(|e| e.into_error())?),
        None => None,
    };
    Ok(Rendered { records, json, csv })
}

/// A record's CSV fields, in [`CSV_COLUMNS`]' order.
pub fn csv_row(r: &Record) -> [std::borrow::Cow<'_, str>; 17] {
    fn s(v: &Option<String>) -> std::borrow::Cow<'_, str> {
        v.as_deref().unwrap_or("").into()
    }
    let x = &r.extra_info;
    [
        r.id.as_str().into(),
        s(&r.source_region),
        s(&r.source_project_id),
        s(&r.source_checkpoint_id),
        s(&r.source_checkpoint_item_id),
        s(&r.destination_region),
        s(&r.destination_project_id),
        s(&r.destination_checkpoint_id),
        s(&r.destination_checkpoint_item_id),
        r.status.as_str().into(),
        s(&r.plan_id),
        r.created_at.as_str().into(),
        r.updated_at.as_str().into(),
        if x.auto_trigger { "true" } else { "false" }.into(),
        x.progress.to_string().into(),
        x.fail_reason.as_str().into(),
        x.fail_code.as_str().into(),
    ]
}

#[cfg(test)]
mod tests;
