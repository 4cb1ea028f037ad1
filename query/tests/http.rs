//! What a reverse proxy and a browser expect of every response, through the
//! router (`oneshot`): compression, request ids, CORS for configured origins,
//! the 408, and the dashboard page's own headers.

use std::sync::Arc;

use axum::http::{HeaderValue, StatusCode};
use http_body_util::BodyExt;

use common::{sample, Store};
use query::{hash_token, AppState, Auth, TokenConfig};

mod support;

const TOKEN: &str = "http-token";

fn state() -> AppState {
    static STORE: std::sync::OnceLock<Arc<Store>> = std::sync::OnceLock::new();
    let store = STORE
        .get_or_init(|| {
            Arc::new(support::store_of(&sample::events(&sample::Shape {
                records: 600,
                projects: 1,
                regions: 3,
                seed: 5,
            })))
        })
        .clone();
    let auth = Auth::new(&[TokenConfig {
        name: "t".into(),
        sha256: hex::encode(hash_token(TOKEN)),
        projects: vec!["*".into()],
    }])
    .unwrap();
    AppState::new(store, auth, None)
}

fn list() -> String {
    format!(
        "/v1/{}/replication_records?limit=1000",
        sample::project_id(0)
    )
}

#[tokio::test]
async fn pages_are_compressed_for_clients_that_accept_it() {
    let plain = support::send(state(), &list(), &[("X-Auth-Token", TOKEN)]).await;
    assert_eq!(plain.status(), StatusCode::OK);
    assert!(plain.headers().get("content-encoding").is_none());
    let raw = plain.into_body().collect().await.unwrap().to_bytes().len();
    for encoding in ["gzip", "br"] {
        let resp = support::send(
            state(),
            &list(),
            &[("X-Auth-Token", TOKEN), ("Accept-Encoding", encoding)],
        )
        .await;
        assert_eq!(resp.headers()["content-encoding"], encoding);
        let packed = resp.into_body().collect().await.unwrap().to_bytes().len();
        assert!(packed * 5 < raw, "{encoding}: {packed} of {raw} bytes");
    }
    // A change feed is never compressed (it would be buffered).
    let feed = support::send(
        state(),
        &format!("/v1/{}/replication_records/changes", sample::project_id(0)),
        &[("X-Auth-Token", TOKEN), ("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(feed.status(), StatusCode::OK);
    assert!(feed.headers().get("content-encoding").is_none());
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_an_incoming_one_is_kept() {
    let resp = support::send(state(), "/health/live", &[]).await;
    let made = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let again = support::send(state(), "/health/live", &[]).await;
    assert_ne!(again.headers()["x-request-id"], made.as_str());
    let resp = support::send(state(), "/nope", &[("X-Request-Id", "trace-42")]).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(resp.headers()["x-request-id"], "trace-42");
}

#[tokio::test]
async fn cors_is_off_by_default_and_on_for_configured_origins() {
    let preflight = [
        ("Origin", "https://dash.example"),
        ("Access-Control-Request-Method", "GET"),
        ("Access-Control-Request-Headers", "x-auth-token"),
    ];
    let options = |st: AppState| async move {
        let mut req = axum::http::Request::builder().method("OPTIONS").uri(list());
        for (k, v) in preflight {
            req = req.header(k, v);
        }
        use tower::ServiceExt;
        query::app(st)
            .oneshot(req.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    };
    // Off: no CORS headers; the preflight is an unknown method.
    let resp = options(state()).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // On for one origin: its preflight passes, its GETs carry the header,
    // another origin gets nothing.
    let on = || state().with_cors(vec![HeaderValue::from_static("https://dash.example")]);
    let resp = options(on()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let allowed = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("x-auth-token"), "{allowed}");
    let get = support::send(
        on(),
        &list(),
        &[("X-Auth-Token", TOKEN), ("Origin", "https://dash.example")],
    )
    .await;
    assert_eq!(
        get.headers()["access-control-allow-origin"],
        "https://dash.example"
    );
    let other = support::send(
        on(),
        &list(),
        &[("X-Auth-Token", TOKEN), ("Origin", "https://evil.example")],
    )
    .await;
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

/// A handler slower than `request_timeout` answers 408 in the API's shape
/// (here any store read is slower than no time at all).
#[tokio::test]
async fn a_request_over_its_time_gets_408() {
    let st = state().with_limits(query::Limits {
        request_timeout: std::time::Duration::ZERO,
        ..query::Limits::default()
    });
    let resp = support::send(st, &list(), &[("X-Auth-Token", TOKEN)]).await;
    assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("TRK.REQUEST_TIMEOUT"));
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_with_a_strict_policy() {
    let st = state();
    for (path, kind) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let resp = support::send(st.clone(), path, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let h = resp.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert!(h["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'"));
        // The page loads only its own assets: no CDN.
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if path == "/" {
            assert!(!String::from_utf8_lossy(&body).contains("://"));
        }
    }
}
