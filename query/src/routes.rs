//! The handlers of records, events and operations (the dashboard's are in
//! `dashboard.rs`; the router in `app.rs`). Every handler starts with
//! `access.rs`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use serde_json::Value;

use crate::access::{authenticate, authorize, blocking, path_error, ApiResult};
use crate::bodies::{
    AcceptedGapBody, CheckpointBody, DigestBody, ErrorBody, EventBody, EventsBody, GapBody,
    ListBody, ListParams, LiveBody, PageParams, QuarantineBody, QuarantinedBody, ReadyBody,
    RecordBody, Time, TrailParams,
};
use crate::error::ApiError;
use crate::{params, AppState};
use common::progress::BrokerState;
use common::store::{EventEffect, TrailPage, MAX_LIMIT};

/// List the replication records of a project (the seed API).
#[utoipa::path(get, path = "/v1/{project_id}/replication_records", tag = "records",
    params(("project_id" = String, Path, description = "Project id"), ListParams),
    security(("token" = [])),
    responses(
        (status = 200, body = ListBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<ListBody> {
    let principal = authenticate(&s, &headers)?;
    let Path(project) = path.map_err(path_error)?;
    authorize(&s, principal, &project)?;
    let q = params::parse_list(raw.as_deref(), &s.stuck)?;
    let page = blocking(&s.store, move |st| Ok(st.view().list(&project, &q)?)).await?;
    Ok(Json(ListBody {
        replication_records: page.records,
        count: page.count,
        next_marker: page.next_marker,
    }))
}

/// The same list at the path the seed's request examples use.
#[utoipa::path(get, path = "/v1/{project_id}/replications", tag = "records",
    params(("project_id" = String, Path, description = "Project id"), ListParams),
    security(("token" = [])),
    responses(
        (status = 200, body = ListBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn list_alias(
    state: State<AppState>,
    path: Result<Path<String>, PathRejection>,
    raw: RawQuery,
    headers: HeaderMap,
) -> ApiResult<ListBody> {
    list(state, path, raw, headers).await
}

/// One record; with `as_of`, the record as it was then (folded from its
/// events that occurred before that time).
#[utoipa::path(get, path = "/v1/{project_id}/replication_records/{id}", tag = "records",
    params(("project_id" = String, Path, description = "Project id"), ("id" = String, Path, description = "Record id"),
        ("as_of" = Option<Time>, Query, description = "The record as of this time (`YYYY-MM-DDTHH:MM:SS[.ffffff]` UTC, or RFC 3339): the state folded from exactly its events with `occurred_at` before it, whatever order they arrived in; 404 when it had none, or was not listed under the project then; 400 naming `as_of` when its partition has an accepted retention gap (events of any time may be missing)")),
    security(("token" = [])),
    responses(
        (status = 200, body = RecordBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn record(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<RecordBody> {
    let principal = authenticate(&s, &headers)?;
    let Path((project, id)) = path.map_err(path_error)?;
    authorize(&s, principal, &project)?;
    let as_of = params::parse_record(raw.as_deref())?;
    let rec = blocking(&s.store, move |st| {
        let rec = match as_of {
            None => st.view().get(&project, &id)?,
            Some(t) => st.as_of(&project, &id, t)?.map(|a| a.state.view(&id)),
        };
        rec.ok_or(ApiError::RecordNotFound(id))
    })
    .await?;
    Ok(Json(RecordBody {
        replication_record: rec,
    }))
}

/// A record's audit trail: its accepted events, in arrival order, a page
/// at a time (`limit`, default 100; `marker`: the `seq` to continue after);
/// with `as_of`, only those that occurred before that time.
#[utoipa::path(get, path = "/v1/{project_id}/replication_records/{id}/events", tag = "records",
    params(("project_id" = String, Path, description = "Project id"), ("id" = String, Path, description = "Record id"), TrailParams),
    security(("token" = [])),
    responses(
        (status = 200, body = EventsBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn events(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<EventsBody> {
    let principal = authenticate(&s, &headers)?;
    let Path((project, id)) = path.map_err(path_error)?;
    authorize(&s, principal, &project)?;
    let q = params::parse_trail(raw.as_deref())?;
    blocking(&s.store, move |st| {
        let page = match q.as_of {
            None => {
                // The check and the trail from one version.
                let st = st.view();
                if st.get(&project, &id)?.is_none() {
                    return Err(ApiError::RecordNotFound(id));
                }
                st.events_page(&id, q.marker, q.limit)?
            }
            Some(t) => {
                let Some(a) = st.as_of(&project, &id, t)? else {
                    return Err(ApiError::RecordNotFound(id));
                };
                let mut events: Vec<_> = a
                    .events
                    .into_iter()
                    .filter(|e| q.marker.is_none_or(|m| e.seq > m))
                    .take(q.limit.saturating_add(1))
                    .collect();
                let more = events.len() > q.limit;
                events.truncate(q.limit);
                TrailPage { events, more }
            }
        };
        let next_marker = page
            .more
            .then(|| page.events.last().map(|e| e.seq.to_string()))
            .flatten();
        let events = page
            .events
            .into_iter()
            .map(|e| EventBody {
                seq: e.seq,
                topic: e.topic,
                partition: e.partition,
                offset: e.offset,
                effect: e.effect,
                changed: e.effect == EventEffect::Changed,
                event: serde_json::from_slice::<Value>(&e.raw).unwrap_or(Value::Null),
            })
            .collect();
        Ok(Json(EventsBody {
            record_id: id,
            events,
            next_marker,
        }))
    })
    .await
}

/// Quarantined messages, newest first (operator token).
#[utoipa::path(get, path = "/v1/admin/quarantine", tag = "operations",
    params(PageParams),
    security(("token" = [])),
    responses(
        (status = 200, body = QuarantineBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn quarantine(
    State(s): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<QuarantineBody> {
    if !authenticate(&s, &headers)?.is_operator() {
        return Err(ApiError::OperatorOnly);
    }
    let (limit, offset) = params::parse_page(raw.as_deref(), MAX_LIMIT)?;
    blocking(&s.store, move |st| {
        let quarantined = st
            .view()
            .quarantine(offset, limit)?
            .into_iter()
            .map(|q| {
                let (raw, encoding) = match std::str::from_utf8(&q.raw) {
                    Ok(t) => (t.to_owned(), "utf8"),
                    Err(_) => (
                        base64::engine::general_purpose::STANDARD.encode(&q.raw),
                        "base64",
                    ),
                };
                QuarantinedBody {
                    seq: q.seq,
                    topic: q.topic,
                    partition: q.partition,
                    offset: q.offset,
                    reason_code: q.reason_code,
                    reason: q.reason,
                    key: q.key.map(|k| String::from_utf8_lossy(&k).into_owned()),
                    raw,
                    raw_encoding: encoding.to_owned(),
                }
            })
            .collect();
        Ok(Json(QuarantineBody {
            quarantined,
            count: st.totals().quarantined,
        }))
    })
    .await
}

/// SHA-256 over every record: equal digests mean equal projections (compare
/// with `tracker replay`). Reads the whole store: operator-only.
#[utoipa::path(get, path = "/v1/admin/digest", tag = "operations",
    security(("token" = [])),
    responses(
        (status = 200, body = DigestBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn digest(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<DigestBody> {
    if !authenticate(&s, &headers)?.is_operator() {
        return Err(ApiError::OperatorOnly);
    }
    let fold = s
        .cluster
        .as_ref()
        .is_some_and(|c| c.role == common::cluster::Role::Fold);
    blocking(&s.store, move |st| {
        // The digest, the totals and the checkpoints of one point between
        // batches: what a replay to those checkpoints must equal.
        let (view, t, checkpoints) = st.view_at_rest();
        let (digest, projects) = view.digests()?;
        Ok(Json(DigestBody {
            digest,
            changelog_published: fold.then(|| st.published()),
            listings_digest: common::store::listing::listings_digest(&projects),
            projects,
            records: t.records,
            events_applied: t.applied,
            events_duplicate: t.duplicates,
            events_quarantined: t.quarantined,
            checkpoints: checkpoints
                .into_iter()
                .map(|((topic, partition), next_offset)| CheckpointBody {
                    topic,
                    partition,
                    next_offset,
                })
                .collect(),
            accepted_gaps: st
                .accepted_gaps()?
                .into_iter()
                .map(|g| AcceptedGapBody {
                    topic: g.topic,
                    partition: g.partition,
                    kind: g.kind.as_str().into(),
                    from: g.from,
                    resumed_at: g.resumed_at,
                    accepted_at: g.accepted_at.render(),
                })
                .collect(),
        }))
    })
    .await
}

/// Liveness.
#[utoipa::path(get, path = "/health/live", tag = "operations", responses((status = 200, body = LiveBody)))]
pub(crate) async fn live() -> Json<LiveBody> {
    Json(LiveBody {
        status: "live".into(),
    })
}

/// Ready = store readable and, when ingest runs here, broker up and lag under
/// the bound. The body says why not.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, body = ReadyBody), (status = 503, body = ReadyBody)))]
pub(crate) async fn ready(State(s): State<AppState>) -> Response {
    let store_ok = blocking(&s.store, |st| Ok(st.size_on_disk().is_ok()))
        .await
        .unwrap_or(false);
    let mut body = ReadyBody {
        ready: store_ok,
        store: if store_ok { "open" } else { "unavailable" }.into(),
        store_error: None,
        gaps: Vec::new(),
        broker: None,
        topic: None,
        lag: None,
        max_lag: None,
        caught_up_once: None,
        start_up: None,
    };
    if let Some(p) = &s.ingest {
        let snap = p.snapshot();
        let lag = snap.lag();
        body.broker = Some(snap.broker.as_str().into());
        // Known only once the broker has answered.
        body.topic = (snap.broker == BrokerState::Up).then(|| {
            if snap.topic_missing {
                "missing"
            } else {
                "present"
            }
            .into()
        });
        body.lag = Some(lag);
        body.max_lag = Some(s.max_ready_lag);
        body.caught_up_once = Some(p.caught_up_once());
        body.start_up = Some(
            match (p.caught_up_once(), p.serving()) {
                (true, _) => "caught_up",
                (false, true) => "grace_elapsed",
                (false, false) => "waiting",
            }
            .into(),
        );
        if let Some(e) = &snap.store_error {
            body.store = "error".into();
            body.store_error = Some(e.clone());
        }
        body.gaps = snap
            .gaps
            .iter()
            .map(|(&partition, g)| GapBody {
                partition,
                kind: g.kind.as_str().into(),
                checkpoint: g.checkpoint,
                watermarks: g.watermarks.map(|(l, h)| [l, h]),
                detail: g.describe(partition),
            })
            .collect();
        body.ready &= snap.store_error.is_none()
            && snap.gaps.is_empty()
            && snap.broker == BrokerState::Up
            && !snap.topic_missing
            && lag <= s.max_ready_lag
            && p.serving();
    }
    let status = if body.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let not_ready = !body.ready;
    let mut resp = (status, Json(body)).into_response();
    if not_ready {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    }
    resp
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(s): State<AppState>) -> Response {
    // Stuck totals walk the store and its size lists its files: on the
    // blocking pool, and a store error leaves the gauge out rather than
    // failing the scrape.
    let k = s.stuck.resolve(true);
    let stuck = blocking(&s.store, move |st| Ok(st.view().stuck_totals(&k)?))
        .await
        .ok();
    let size = blocking(&s.store, |st| Ok(st.size_on_disk()?)).await.ok();
    let by_status = blocking(&s.store, |st| Ok(st.view().records_by_status()?))
        .await
        .ok();
    let text = s.metrics.render(
        &s.store,
        s.ingest.as_deref(),
        stuck.as_deref(),
        by_status.as_deref(),
        size,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
