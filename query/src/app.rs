//! The router: every route of the API in one place, and what wraps every
//! request (the concurrency cap, the timeout, latency metrics, the body
//! limit), 404s and 405s, and the OpenAPI document.

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::{dashboard, feed, layers, routes, web, AppState};

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
        // The guard's timeout and request slot cover a stream only until
        // its head is sent; the body that follows is capped by
        // `max_streams` (`feed.rs`).
        .route(
            "/v1/{project_id}/replication_records/changes",
            get(feed::changes),
        )
        .route(
            "/v1/{project_id}/replication_records/{id}",
            get(routes::record),
        )
        .route(
            "/v1/{project_id}/replication_records/{id}/events",
            get(routes::events),
        )
        .route("/health/live", get(routes::live))
        .route("/health/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes));
    layers::wrap(router, &state).with_state(state)
}

/// Head size, concurrency cap, timeout and latency metrics for every
/// request.
async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
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
        return ApiError::HeadersTooLarge(s.limits.max_header_bytes).into_response();
    }
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let start = Instant::now();
    let resp = match s.inflight.clone().try_acquire_owned() {
        Err(_) => ApiError::Overloaded.into_response(),
        Ok(_permit) => match tokio::time::timeout(s.limits.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => ApiError::Timeout.into_response(),
        },
    };
    s.metrics
        .observe(&route, resp.status().as_u16(), start.elapsed());
    resp
}

async fn not_found(req: Request) -> ApiError {
    ApiError::RouteNotFound(req.uri().path().chars().take(200).collect())
}

/// This API's OpenAPI document.
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
