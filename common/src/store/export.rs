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
}

impl super::Store {
    /// A version to export from, with the offsets it reflects.
    pub fn export_source(&self) -> Result<ExportSource, StoreError> {
        let (view, _, checkpoints) = self.view_at_rest();
        Ok(ExportSource {
            view,
            topic: self.topic()?,
            checkpoints,
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

/// The matching records in the list's order, a list page at a time.
pub struct Matching<'a> {
    view: &'a ReadView,
    project: &'a str,
    q: ListQuery,
    page: std::vec::IntoIter<Record>,
    done: bool,
}

impl ReadView {
    /// Every record `q`'s filters and sort give under `project` (its paging
    /// — offset, marker, limit, count — ignored): the list's pages, each
    /// continuing at the last one's marker.
    pub fn matching<'a>(&'a self, project: &'a str, q: &ListQuery) -> Matching<'a> {
        let q = ListQuery {
            marker: None,
            offset: None,
            limit: Some(EXPORT_PAGE),
            with_count: None,
            ..q.clone()
        };
        Matching {
            view: self,
            project,
            q,
            page: Vec::new().into_iter(),
            done: false,
        }
    }
}

impl Iterator for Matching<'_> {
    type Item = Result<Record, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(r) = self.page.next() {
                return Some(Ok(r));
            }
            if self.done {
                return None;
            }
            let page = match self.view.list(self.project, &self.q) {
                Ok(p) => p,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            self.done = page.next_marker.is_none();
            self.q.marker = page.next_marker;
            self.page = page.records.into_iter();
        }
    }
}

impl ExportSource {
    /// Writes every record `q` matches under `project` to `out` in
    /// `format`, calling `tick` with the count so far after each (it may
    /// stop the export with an error); returns the writer and the trailer.
    /// A failure mid-way is returned as it is: the output then has no
    /// trailer, so a partial NDJSON file cannot pass for a whole one.
    pub fn export<W: Write>(
        &self,
        project: &str,
        q: &ListQuery,
        format: ExportFormat,
        out: W,
        mut tick: impl FnMut(u64) -> std::io::Result<()>,
    ) -> Result<(W, ExportTrailer), ExportError> {
        let mut w = ExportWriter::new(format, out)?;
        for r in self.view.matching(project, q) {
            w.record(&r?)?;
            tick(w.records)?;
        }
        let trailer = ExportTrailer {
            records: w.records,
            sha256: hex::encode(w.sha.clone().finalize()),
            topic: self.topic.clone(),
            offsets: self
                .checkpoints
                .iter()
                .map(|((_, partition), next)| ExportOffset {
                    partition: *partition,
                    next_offset: *next,
                })
                .collect(),
        };
        Ok((w.finish(&trailer)?, trailer))
    }
}

/// Records written in one format, hashed as they go.
struct ExportWriter<W: Write> {
    out: Out<W>,
    sha: Sha256,
    records: u64,
    /// The current record's JSON line (reused).
    line: Vec<u8>,
}

enum Out<W: Write> {
    Ndjson(W),
    Csv(Box<csv::Writer<W>>),
}

impl<W: Write> ExportWriter<W> {
    fn new(format: ExportFormat, out: W) -> std::io::Result<Self> {
        let out = match format {
            ExportFormat::Ndjson => Out::Ndjson(out),
            ExportFormat::Csv => {
                let mut w = csv::WriterBuilder::new().from_writer(out);
                w.write_record(CSV_COLUMNS)?;
                Out::Csv(Box::new(w))
            }
        };
        Ok(ExportWriter {
            out,
            sha: Sha256::new(),
            records: 0,
            line: Vec::with_capacity(1024),
        })
    }

    fn record(&mut self, r: &Record) -> std::io::Result<()> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, r).expect("a record serializes");
        self.line.push(b'\n');
        self.sha.update(&self.line);
        self.records += 1;
        match &mut self.out {
            Out::Ndjson(w) => w.write_all(&self.line),
            Out::Csv(w) => Ok(w.write_record(csv_row(r).iter().map(|c| c.as_bytes()))?),
        }
    }

    fn finish(self, trailer: &ExportTrailer) -> std::io::Result<W> {
        match self.out {
            Out::Ndjson(mut w) => {
                let line = TrailerLine {
                    export: trailer.clone(),
                };
                serde_json::to_writer(&mut w, &line)?;
                w.write_all(b"\n")?;
                w.flush()?;
                Ok(w)
            }
            Out::Csv(w) => w.into_inner().map_err(|e| e.into_error()),
        }
    }
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
