//! The export: `GET /v1/{project_id}/replication_records/export`, every
//! record the list's filters match, in the list's order, streamed as NDJSON
//! or CSV from one version of the store (`common::store::export`). The
//! version is taken before the head goes out, and its offsets are in the
//! `X-Export-Offsets` header; the records are written on the blocking pool
//! into a bounded channel of chunks (at least 64 KiB: a page's records
//! are written at once), so a slow client slows the reader down
//! (backpressure) and memory stays a few chunks whatever the size.
//! Compression is the router's (gzip or brotli when the client accepts it).
//! Like the change feed, an export holds a stream slot (`max_streams`), not
//! a request slot, and has no request timeout; a stalled client is cut off
//! by the send timeout. An export that fails mid-way, or is cut by a
//! shutdown, aborts the response: it never ends as if it were whole.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use futures_util::{stream, StreamExt};
use tokio::sync::mpsc;

use crate::access::{authenticate, authorize, blocking, path_error, stream_slot};
use crate::bodies::{ErrorBody, ExportParams};
use crate::error::ApiError;
use crate::{params, AppState};
use common::store::checkpoints_text;

/// Bytes handed to the connection at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks written ahead of the connection: past them the writer waits.
const CHUNKS_AHEAD: usize = 4;

/// Every record of a project the filters match, as one file.
#[utoipa::path(get, path = "/v1/{project_id}/replication_records/export", tag = "records",
    params(("project_id" = String, Path, description = "Project id"), ExportParams),
    security(("token" = [])),
    responses(
        (status = 200, content(("application/x-ndjson"), ("text/csv")), description = "`format=ndjson`: one record per line as the list renders it (`ReplicationRecord`), then one trailer line `{\"export\": ExportTrailer}`: the count, the SHA-256 of the record lines, the topic and each partition's next offset. `format=csv` (`text/csv`): a header row and one row per record, the same fields, `extra_info` flattened (`extra_info.progress`), an unknown string an empty field. The `X-Export-Offsets` header names the version read (`topic/partition:next offset …`). A response that ends without its trailer (or, for CSV, aborted) is incomplete"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn export(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = authenticate(&s, &headers)?;
    let Path(project) = path.map_err(path_error)?;
    authorize(&s, principal, &project)?;
    let (q, format) = params::parse_export(raw.as_deref(), &s.stuck)?;
    let permit = stream_slot(&s)?;
    let source = blocking(&s.store, |st| Ok(st.export_source()?)).await?;
    let offsets = checkpoints_text(&source.checkpoints);
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHUNKS_AHEAD);
    let whole = Arc::new(AtomicBool::new(false));
    let (closing, done) = (s.closing.clone(), whole.clone());
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let sink = Chunks {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx: tx.clone(),
        };
        let stop = |_| match closing.is_cancelled() {
            true => Err(io::Error::other("the service is shutting down")),
            false => Ok(()),
        };
        let ended = source
            .export(&project, &q, format, sink, stop)
            .map_err(|e| e.to_string())
            .and_then(|(mut sink, _)| sink.flush().map_err(|e| e.to_string()));
        match ended {
            Ok(()) => done.store(true, Ordering::Release),
            Err(e) => {
                tracing::error!(project, error = %e, "an export stopped before its end");
                let _ = tx.blocking_send(Err(io::Error::other(e)));
            }
        }
    });
    // The channel closes when the writer ends; unless it ended whole (a
    // panic, say), the body ends in an error, not as a complete file.
    let body = stream::unfold((rx, Some(whole)), |(mut rx, whole)| async move {
        match rx.recv().await {
            Some(chunk) => Some((chunk, (rx, whole))),
            None => match whole {
                Some(w) if !w.load(Ordering::Acquire) => {
                    Some((Err(io::Error::other("the export ended early")), (rx, None)))
                }
                _ => None,
            },
        }
    })
    // The compression layer polls once more after the end.
    .fuse();
    let extension = format.as_str();
    let mut response = (
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CACHE_CONTROL, "no-store"),
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(body),
    )
        .into_response();
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"replication_records.{extension}\""
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&offsets) {
        h.insert(HeaderName::from_static("x-export-offsets"), v);
    }
    Ok(response)
}

/// The writer's side of the channel: bytes gathered into chunks, each sent
/// when full (waiting while the connection is `CHUNKS_AHEAD` behind).
struct Chunks {
    buf: Vec<u8>,
    tx: mpsc::Sender<io::Result<Bytes>>,
}

impl Chunks {
    fn send(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client closed the export"))
    }
}

impl Write for Chunks {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.send()
    }
}
