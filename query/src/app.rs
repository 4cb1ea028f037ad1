//! The router: every route of the API in one place, and what wraps every
//! request (the concurrency cap and the timeout from tower's layers, the
//! head-size limit and latency metrics, the body limit), 404s and 405s, and
//! the OpenAPI document.

use std::time::Instant;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower::limit::GlobalConcurrencyLimitLayer;
use utoipa::OpenApi;

use crate::error::{ApiError, ErrorCode};
use crate::openapi::ApiDoc;
use crate::{admin, cluster, dashboard, export, feed, layers, routes, web, AppState};

pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .route("/", get(web::index))
        .route("/assets/app.js", get(web::script))
        .route("/assets/app.css", get(web::style))
        .route("/v1/projects", get(dashboard::projects))
        .route("/v1/admin/quarantine", get(routes::quarantine))
        .route("/v1/admin/digest", get(routes::digest))
        .route("/v1/{project_id}/replication_records", get(routes::list))
        .route("/v1/{project_id}/replications", get(routes::list_alias))
        .route(
            "/v1/{project_id}/replication_summaries",
            get(dashboard::summaries),
        )
        .route(
            "/v1/{project_id}/replication_capabilities",
            get(dashboard::capabilities),
        )
        // Huawei Cloud's own path for the same structure (CBR's
        // `ShowReplicationCapabilities`): what its SDKs call.
        .route(
            "/v3/{project_id}/replication-capabilities",
            get(dashboard::cloud_capabilities),
        )
        // The guard's timeout and request slot cover a stream only until
        // its head is sent; the body that follows is capped by
        // `max_streams` (`feed.rs`, `export.rs`).
        .route(
            "/v1/{project_id}/replication_records/changes",
            get(feed::changes),
        )
        .route(
            "/v1/{project_id}/replication_records/export",
            get(export::export),
        )
        .route(
            "/v1/{project_id}/replication_records/{id}",
            get(routes::record),
        )
        .route(
            "/v1/{project_id}/replication_records/{id}/events",
            get(routes::events),
        )
        .route("/v1/admin/cluster", get(admin::cluster))
        .route("/v1/admin/cluster/digest", get(admin::cluster_digest))
        // In a cluster, what another node owns is forwarded to it.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            cluster::route,
        ))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // The per-request limits, from tower's layers: past `max_concurrent`
        // requests in flight the next is shed at once (503, never queued),
        // and a handler slower than `request_timeout` answers 408.
        .layer(
            tower::ServiceBuilder::new()
                .layer(HandleErrorLayer::new(limit_error))
                .load_shed()
                .layer(GlobalConcurrencyLimitLayer::with_semaphore(
                    state.inflight.clone(),
                ))
                .timeout(state.limits.request_timeout),
        )
        // The probes and metrics, added after the limits so that they are
        // outside them: a busy, healthy tracker at its request cap must
        // not fail its liveness probe (and be restarted) or lose its
        // metrics in the spike. They are cheap and never wait on a query.
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes));
    layers::wrap(router, &state).with_state(state)
}

/// What a limit layer's refusal answers.
async fn limit_error(e: tower::BoxError) -> ApiError {
    if e.is::<tower::timeout::error::Elapsed>() {
        ApiError::Timeout
    } else if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::Overloaded
    } else {
        ApiError::Failed {
            unavailable: false,
            detail: format!("request limits: {e}"),
        }
    }
}

/// Head size and latency metrics for every request (around the limits, so
/// a shed or timed-out request is measured too, and so is one the guard
/// itself refuses: `tracker_http_errors_total` counts every code).
async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let resp = match refusal(&s, &route, &req) {
        Some(e) => e.into_response(),
        None => next.run(req).await,
    };
    let code = resp.extensions().get::<ErrorCode>().map(|c| c.0);
    s.metrics
        .observe(&route, resp.status().as_u16(), code, start.elapsed());
    resp
}

/// What the guard answers in place of the route, if anything: a head over
/// the limit, a path parameter that does not decode or is blank.
fn refusal(s: &AppState, route: &str, req: &Request) -> Option<ApiError> {
    // hyper's own limit is twice this (431 without a body); here the
    // documented limit answers in the API's error shape.
    let head = req.method().as_str().len()
        + req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head > s.limits.max_header_bytes {
        return Some(ApiError::HeadersTooLarge(s.limits.max_header_bytes));
    }
    // Each path parameter decodes, or is a 400 naming it (axum took `%ZZ`
    // literally), and is not blank once decoded: an empty segment
    // (`/v1//replication_records`) or `%20` names no such resource.
    for (template, raw) in route.split('/').zip(req.uri().path().split('/')) {
        let Some(name) = template.strip_prefix('{').and_then(|t| t.strip_suffix('}')) else {
            continue;
        };
        match crate::params::path_decode(raw) {
            None => {
                return Some(ApiError::invalid(
                    name,
                    "is not percent-encoded UTF-8 (a `%` must be followed by two hex digits)",
                ))
            }
            Some(v) if v.trim().is_empty() => return Some(route_not_found(req)),
            Some(_) => {}
        }
    }
    None
}

async fn not_found(req: Request) -> ApiError {
    route_not_found(&req)
}

fn route_not_found(req: &Request) -> ApiError {
    ApiError::RouteNotFound(req.uri().path().chars().take(200).collect())
}

/// This API's OpenAPI document.
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
