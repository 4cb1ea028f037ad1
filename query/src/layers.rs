//! What wraps every request, outermost first: a request id (an incoming
//! `X-Request-Id` is kept, else a UUID is made; echoed in the response), a
//! span carrying it — so every log line of the request names it — closed by
//! one access-log line (method, route, status, duration; never a header, so
//! never the token), CORS for the configured origins, and response
//! compression (gzip or brotli as the client accepts; never a change feed).
//! Inside them, `app.rs`'s guard applies the per-request limits.

use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, Method, Response};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(crate) fn wrap(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let mut router = router.layer(CompressionLayer::new());
    if !state.cors_origins.is_empty() {
        router = router.layer(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(state.cors_origins.iter().cloned()))
                .allow_methods([Method::GET])
                .allow_headers([
                    HeaderName::from_static("x-auth-token"),
                    HeaderName::from_static("last-event-id"),
                    REQUEST_ID,
                ])
                .expose_headers([REQUEST_ID])
                .max_age(Duration::from_secs(3600)),
        );
    }
    router
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span)
                .on_request(())
                .on_response(access_log)
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

fn span(req: &Request) -> Span {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str());
    tracing::info_span!("request", method = %req.method(), route, request_id = %id)
}

fn access_log<B>(resp: &Response<B>, latency: Duration, _: &Span) {
    let encoding = resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    tracing::info!(
        status = resp.status().as_u16(),
        ms = format_args!("{:.2}", latency.as_secs_f64() * 1e3),
        encoding,
        "request"
    );
}
