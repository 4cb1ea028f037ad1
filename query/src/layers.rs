//! What wraps every request, outermost first: a request id (an incoming
//! `X-Request-Id` is kept when it is one plain id of at most 128
//! characters, else a UUID is made; echoed in the response), a
//! span carrying it — so every log line of the request names it — closed by
//! one access-log line (method, route, path, client address, status,
//! duration in ms as a number; never a header, so never the token), CORS for the configured origins, and response
//! compression (gzip or brotli as the client accepts; never a change feed).
//! Inside them, `app.rs`'s guard applies the per-request limits.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{header, HeaderName, Method, Response};
use axum::Router;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::error::ErrorDetail;
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
        .layer(axum::middleware::map_request(keep_valid_request_id))
}

/// The longest request id kept from a client.
const MAX_REQUEST_ID: usize = 128;

/// An incoming request id is kept when it is given once and is 1–128
/// characters of `A-Z a-z 0-9 . _ : -`; any other (one that writes fields
/// into the access log, 5,000 characters echoed back) is dropped, and a
/// UUID is made in its place.
async fn keep_valid_request_id(mut req: Request) -> Request {
    let mut ids = req.headers().get_all(&REQUEST_ID).iter();
    let valid = match (ids.next(), ids.next()) {
        (Some(id), None) => {
            let id = id.as_bytes();
            (1..=MAX_REQUEST_ID).contains(&id.len())
                && id
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
        }
        _ => false,
    };
    if !valid {
        req.headers_mut().remove(&REQUEST_ID);
    }
    req
}

/// The longest path an access line carries, in characters.
const MAX_LOGGED_PATH: usize = 200;

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
    // The client's address, as `serve` saw the connection (none in tests
    // through `oneshot`).
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |c| c.0.to_string());
    let path: String = req.uri().path().chars().take(MAX_LOGGED_PATH).collect();
    tracing::info_span!("request", method = %req.method(), route, path, peer, request_id = %id)
}

/// The one line per request; a failure on our side is logged here, once,
/// at error with its detail (handlers do not log what they return).
fn access_log<B>(resp: &Response<B>, latency: Duration, _: &Span) {
    let encoding = resp
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity");
    // A number (in JSON logs too), to two decimals.
    let (status, ms) = (
        resp.status().as_u16(),
        (latency.as_secs_f64() * 1e5).round() / 100.0,
    );
    match resp.extensions().get::<ErrorDetail>() {
        Some(ErrorDetail(detail)) => {
            tracing::error!(status, ms, encoding, error = %detail, "request failed")
        }
        None => tracing::info!(status, ms, encoding, "request"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;
    use crate::error::ApiError;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A failure is logged exactly once, by the access log, at error, with
    /// its detail and the request id; the client sees neither.
    #[tokio::test]
    async fn a_failure_is_logged_once_with_its_detail_and_request_id() {
        let buf = Buf::default();
        let writer = buf.clone();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish(),
        );
        let state = AppState::new(
            Arc::new(common::Store::temporary().unwrap()),
            crate::Auth::default(),
            None,
        );
        let router = Router::new().route(
            "/boom",
            get(|| async {
                ApiError::Failed {
                    unavailable: false,
                    detail: "store: key r-9 is garbled".into(),
                }
            }),
        );
        let resp = wrap(router, &state)
            .with_state(state)
            .oneshot(
                axum::http::Request::get("/boom")
                    .header("x-request-id", "req-1")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), 500);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert!(!String::from_utf8_lossy(&body).contains("r-9"));
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(log.matches("r-9").count(), 1, "{log}");
        let line = log.lines().find(|l| l.contains("r-9")).unwrap();
        assert!(
            line.contains("ERROR") && line.contains("request_id=req-1"),
            "{line}"
        );
    }
}
