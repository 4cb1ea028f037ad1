//! What the API tests share: a store holding some events, and one request
//! through the router with `oneshot`.

#![allow(dead_code)] // each test file uses its own part

pub mod feed;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use common::{Event, Store};
use query::{app, AppState};

/// A temporary store with `events` applied in one batch, in order.
pub fn store_of(events: &[Event]) -> Store {
    let store = Store::temporary().unwrap();
    store
        .apply_batch(&common::testkit::messages(events, 0))
        .unwrap();
    store
}

/// `GET uri` with these headers, through the router.
pub async fn send(state: AppState, uri: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = Request::get(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app(state)
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

/// `GET uri` with an optional `X-Auth-Token`: the status, and the body as
/// JSON (or as a JSON string when it is not JSON).
pub async fn get(state: AppState, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let token: Vec<(&str, &str)> = token.map(|t| ("X-Auth-Token", t)).into_iter().collect();
    let resp = send(state, uri, &token).await;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}
