//! The change feed: `GET /v1/{project_id}/replication_records/changes`, a
//! Server-Sent Events stream of every change to a record listed under the
//! project (the list's region/status filters apply to the record after the
//! change). Each event is `id: <feed id>-<change seq>` (the feed id names
//! the store, so a resume point from another store resets), `event: record`, `data:
//! {"replication_record": …}`; a record that a change moved out of the
//! project, or out of the filters, gets `event: removed`, `data: {"id": …}`.
//! A client resumes with `Last-Event-ID` (or `?since=`) from the store's
//! change log; a stream that finds numbers missing in the live batches (it
//! subscribed while a batch was applied, or fell behind) reads them from the
//! log too. When what it needs is out of the retention it gets `event:
//! reset` (reload the list) and the stream ends. Streams have their own cap,
//! no request timeout (a stalled client is cut off by the send timeout,
//! `send_timeout.rs`), and end when the service shuts down.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use crate::access::{authenticate, authorize, blocking, path_error, stream_slot};
use crate::bodies::{ErrorBody, FeedParams};
use crate::error::ApiError;
use crate::params::{self, FeedQuery};
use crate::AppState;
use common::store::changes::{Change, EventId, LiveBatch, Since};
use common::{Record, Store};

/// Changes to a project's records as they are applied, as Server-Sent Events.
#[utoipa::path(get, path = "/v1/{project_id}/replication_records/changes", tag = "records",
    params(("project_id" = String, Path, description = "Project id"), FeedParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The last change received (its event id, or its number): resume after it (wins over `since`)")),
    security(("token" = [])),
    responses(
        (status = 200, content_type = "text/event-stream", description = "`event: record` with `id: <feed id>-<change seq>` and `data: {\"replication_record\": …}` per change; `event: removed` with `data: {\"id\": …}` when a change moved the record out of the project or the filters; `event: reset` when the resume point, or changes the stream missed, are out of the retention, or the resume point is another store's (reload the list); a `: keep-alive` comment every 15 s"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn changes(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let principal = authenticate(&s, &headers)?;
    let Path(project) = path.map_err(path_error)?;
    authorize(&s, principal, &project)?;
    if headers.get_all("last-event-id").iter().nth(1).is_some() {
        return Err(ApiError::DuplicateHeader("Last-Event-ID"));
    }
    let last_event_id = match headers.get("last-event-id") {
        // Empty like any other parameter given without a value.
        Some(v) if v.as_bytes().trim_ascii().is_empty() => {
            return Err(ApiError::EmptyParameter("Last-Event-ID".into()))
        }
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::invalid(
                "Last-Event-ID",
                "not a change id (the `id` of a change event, or its number)",
            )
        })?),
        None => None,
    };
    let q = params::parse_feed(raw.as_deref(), last_event_id)?;
    let permit = stream_slot(&s)?;
    let tail = Tail::open(
        &s.store,
        project,
        q,
        s.limits.keep_alive,
        &s.closing,
        &s.metrics,
        permit,
    );
    // The backlog of a resume is read once the stream is polled: the
    // headers go out first, and no request timeout cuts a long backlog.
    let events = stream::unfold(tail, |mut t| async move {
        let next = t.next().await;
        next.map(|e| (Ok::<_, Infallible>(e), t))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Proxies (nginx) must not buffer a stream.
            (header::HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(events),
    )
        .into_response())
}

/// One open stream: what it still has to send and where it is.
struct Tail {
    store: Arc<Store>,
    project: String,
    filter: FeedQuery,
    live: tokio::sync::broadcast::Receiver<Arc<LiveBatch>>,
    /// The last change sequence taken (sent or filtered out).
    last: u64,
    /// Changes above `last` are to be read from the change log before the
    /// next live batch: a resume point, or numbers the live batches did not
    /// carry (a batch applied while this stream subscribed, or batches
    /// missed while it lagged).
    fill: Option<Fill>,
    /// Events not yet handed to the connection, as SSE text: a batch's
    /// changes go out as one chunk.
    out: String,
    /// A reset was queued: end after sending it.
    done: bool,
    keep_alive: Duration,
    closing: CancellationToken,
    metrics: Arc<crate::metrics::Metrics>,
    _permit: OwnedSemaphorePermit,
}

/// Why a stream reads the change log.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fill {
    /// The client's `Last-Event-ID` or `since`.
    Resume,
    /// The live batches skipped numbers above `last`.
    Gap,
    /// The client's resume point is a change of another store (one
    /// rebuilt, or replaced): its numbers mean nothing here.
    Foreign,
}

impl Tail {
    /// Counts the stream open, subscribes, then places the stream: at the head for a new client, at
    /// its resume point (read from the log on the first poll) otherwise.
    /// Subscribing first means every batch committed after the head was
    /// read reaches this stream, at least as a number range.
    fn open(
        store: &Arc<Store>,
        project: String,
        filter: FeedQuery,
        keep_alive: Duration,
        closing: &CancellationToken,
        metrics: &Arc<crate::metrics::Metrics>,
        permit: OwnedSemaphorePermit,
    ) -> Tail {
        metrics.stream_opened();
        let live = store.feed().subscribe();
        let foreign = filter
            .since_feed
            .as_deref()
            .is_some_and(|f| f != store.feed().id());
        let (last, fill) = match filter.since {
            None => (store.feed().head(), None),
            Some(_) if foreign => (store.feed().head(), Some(Fill::Foreign)),
            Some(since) => (since, Some(Fill::Resume)),
        };
        Tail {
            store: store.clone(),
            project,
            filter,
            live,
            last,
            fill,
            out: String::new(),
            done: false,
            keep_alive,
            closing: closing.clone(),
            metrics: metrics.clone(),
            _permit: permit,
        }
    }

    async fn next(&mut self) -> Option<Bytes> {
        // A keep-alive after `keep_alive` with nothing sent: batches this
        // stream filters out do not count.
        let mut quiet_until = tokio::time::Instant::now() + self.keep_alive;
        loop {
            if !self.out.is_empty() {
                return Some(std::mem::take(&mut self.out).into());
            }
            if self.done {
                return None;
            }
            if let Some(why) = self.fill.take() {
                self.read_log(why).await;
                continue;
            }
            tokio::select! {
                got = self.live.recv() => match got {
                    Ok(batch) => self.take_live(&batch),
                    Err(RecvError::Lagged(_)) => self.fill = Some(Fill::Gap),
                    Err(RecvError::Closed) => return None,
                },
                _ = tokio::time::sleep_until(quiet_until) => {
                    self.out.push_str(": keep-alive\n\n");
                    quiet_until = tokio::time::Instant::now() + self.keep_alive;
                }
                _ = self.closing.cancelled() => return None,
            }
        }
    }

    /// A live batch: its changes when they follow on from `last`, otherwise
    /// (not carried, or numbers missing before it) a read of the log.
    fn take_live(&mut self, batch: &LiveBatch) {
        if batch.last <= self.last {
            return;
        }
        match &batch.changes {
            Some(changes) if batch.first <= self.last + 1 => self.take(changes),
            _ => self.fill = Some(Fill::Gap),
        }
    }

    /// Everything after `last` from the change log, or a reset when that is
    /// no longer all retained.
    async fn read_log(&mut self, why: Fill) {
        if why == Fill::Foreign {
            return self
                .reset("the resume point is a change of another store (rebuilt or replaced)");
        }
        let since = self.last;
        match blocking(&self.store, move |st| Ok(st.view().changes_since(since)?)).await {
            Ok(Since::Changes(changes)) => self.take(&changes),
            Ok(Since::Reset) => self.reset(match why {
                Fill::Resume => "the resume point is older than the retained changes",
                Fill::Gap => "the changes this stream missed are no longer retained",
                Fill::Foreign => unreachable!("answered above"),
            }),
            Ok(Since::Ahead) => self.reset(
                "the resume point is past this store's last change (a store rebuilt, or restored \
                 from an older copy, since it was read)",
            ),
            Err(e) => {
                tracing::warn!(error = %e, "a change feed could not read the change log; its client is told to reload");
                self.reset("the change log could not be read");
            }
        }
    }

    fn take(&mut self, changes: &[Change]) {
        let from = self.last;
        let store = self.store.clone();
        for c in changes.iter().filter(|c| c.seq > from) {
            self.last = c.seq;
            let here = self.listed_here(&c.record);
            if c.left.contains(&self.project) || (here && !self.matches(&c.record)) {
                // Out of this stream's view: moved to another project (the
                // client may be showing it whatever the filters), or out of
                // the filters (the stream does not know what the client
                // shows, so a change that leaves a record outside them says
                // so; a client not showing it ignores it).
                let _ = write!(
                    self.out,
                    "id: {}\nevent: removed\ndata: {}\n\n",
                    EventId {
                        feed: Some(store.feed().id()),
                        seq: c.seq
                    },
                    serde_json::json!({ "id": c.record.id })
                );
            } else if here {
                // RecordBody's shape, around JSON made once per change (one
                // line: serde_json writes no newline).
                let _ = write!(
                    self.out,
                    "id: {}\nevent: record\ndata: {{\"replication_record\":{}}}\n\n",
                    EventId {
                        feed: Some(store.feed().id()),
                        seq: c.seq
                    },
                    c.json()
                );
            }
        }
    }

    fn reset(&mut self, why: &str) {
        let data = serde_json::json!({ "reason": why });
        let _ = write!(self.out, "event: reset\ndata: {data}\n\n");
        self.done = true;
    }

    fn listed_here(&self, r: &Record) -> bool {
        let p = Some(self.project.as_str());
        r.source_project_id.as_deref() == p || r.destination_project_id.as_deref() == p
    }

    fn matches(&self, r: &Record) -> bool {
        let f = &self.filter;
        let eq = |want: &Option<String>, have: &Option<String>| want.is_none() || want == have;
        eq(&f.source_region, &r.source_region)
            && eq(&f.destination_region, &r.destination_region)
            && f.status.is_none_or(|s| s == r.status)
    }
}

/// A stream counts as open until its tail is dropped (ended or
/// disconnected).
impl Drop for Tail {
    fn drop(&mut self) {
        self.metrics.stream_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch committed while a stream opens is both in its backlog and in
    /// its live channel: it is sent once.
    #[test]
    fn a_change_taken_twice_is_sent_once() {
        let store = common::Store::temporary().unwrap();
        let permit = Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap();
        let mut t = Tail::open(
            &Arc::new(store),
            "p".into(),
            FeedQuery::default(),
            Duration::from_secs(15),
            &CancellationToken::new(),
            &Arc::default(),
            permit,
        );
        let record = |id: &str| {
            Record {
            id: id.into(),
            source_project_id: Some("p".into()),
            ..serde_json::from_value(serde_json::json!({
                "id": "", "source_region": null, "source_project_id": null,
                "source_checkpoint_id": null, "source_checkpoint_item_id": null,
                "destination_region": null, "destination_project_id": null,
                "destination_checkpoint_id": null, "destination_checkpoint_item_id": null,
                "status": "replicating", "plan_id": null,
                "created_at": "2024-05-01T00:00:00.000000", "updated_at": "2024-05-01T00:00:00.000000",
                "extra_info": {"auto_trigger": false, "progress": 0, "fail_reason": "", "fail_code": ""}
            }))
            .unwrap()
        }
        };
        let batch = [1, 2].map(|seq| Change::new(seq, record(&format!("r{seq}")), vec![]));
        t.take(&batch);
        t.take(&batch);
        t.take(&batch[1..]);
        assert_eq!(t.out.matches("id: ").count(), 2);
        assert_eq!(t.last, 2);
    }
}
