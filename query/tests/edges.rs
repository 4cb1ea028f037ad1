//! Edges an operator met in the first hour (issue 29), through the router
//! (`oneshot`): untrusted header values, an empty path segment, a bad
//! percent-escape — each answered as documented, never taken as given.

use std::sync::Arc;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;

use common::{sample, Store};
use query::{hash_token, AppState, Auth, TokenConfig};

mod support;

const OPERATOR: &str = "edges-operator";
const READER: &str = "edges-reader";

fn state() -> AppState {
    static STORE: std::sync::OnceLock<Arc<Store>> = std::sync::OnceLock::new();
    let store = STORE
        .get_or_init(|| {
            let mut events = sample::events(&sample::Shape {
                records: 50,
                projects: 1,
                regions: 2,
                seed: 8,
            });
            // A record whose id is a route's name.
            let mut j = events[0].to_json();
            j["record_id"] = "changes".into();
            j["event_id"] = "edge-changes".into();
            events.push(common::event::decode(None, Some(j.to_string().as_bytes())).unwrap());
            Arc::new(support::store_of(&events))
        })
        .clone();
    let token = |name: &str, secret: &str, projects: &[&str]| TokenConfig {
        name: name.into(),
        sha256: hex::encode(hash_token(secret)),
        projects: projects.iter().map(|p| p.to_string()).collect(),
    };
    let auth = Auth::new(&[
        token("operator", OPERATOR, &["*"]),
        token("reader", READER, &["someone-else"]),
    ])
    .unwrap();
    AppState::new(store, auth, None)
}

async fn body(resp: axum::response::Response) -> Value {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

/// A request id that would write fields into the access log, one of 5,000
/// characters (echoed whole before) and two of them are each replaced by a
/// UUID; a plain one is kept.
#[tokio::test]
async fn a_request_id_is_kept_only_when_it_is_one_plain_id() {
    let long = "a".repeat(5000);
    for ids in [
        vec!["x} status=500 route=\"/v1/admin/digest\" user=admin"],
        vec![long.as_str()],
        vec!["one", "two"],
        vec![""],
    ] {
        let headers: Vec<(&str, &str)> = ids.iter().map(|id| ("X-Request-Id", *id)).collect();
        let resp = support::send(state(), "/health/live", &headers).await;
        let got = resp.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(got.len(), 36, "{ids:?} gave {got}: not a UUID");
        assert!(!ids.contains(&got), "{ids:?} kept");
    }
    let kept = "trace-42.a_b:c";
    let resp = support::send(state(), "/health/live", &[("X-Request-Id", kept)]).await;
    assert_eq!(resp.headers()["x-request-id"], kept);
}

/// Two `X-Auth-Token` headers are a 400, whatever their order: the second
/// one's scope won (an operator scope granted to a reader's request).
#[tokio::test]
async fn two_tokens_are_refused() {
    let digest = "/v1/admin/digest";
    for pair in [[READER, OPERATOR], [OPERATOR, READER], [OPERATOR, OPERATOR]] {
        let resp = support::send(
            state(),
            digest,
            &[("X-Auth-Token", pair[0]), ("X-Auth-Token", pair[1])],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let b = body(resp).await;
        assert_eq!(b["error_code"], "TRK.DUPLICATE_HEADER", "{b}");
        assert!(b["error_msg"].as_str().unwrap().contains("X-Auth-Token"));
    }
    let resp = support::send(state(), digest, &[("X-Auth-Token", OPERATOR)]).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// An empty path segment names no project: 404, where
/// `/v1//replication_records` listed an empty project with 200.
#[tokio::test]
async fn an_empty_path_segment_is_no_resource() {
    let project = sample::project_id(0);
    for path in [
        "/v1//replication_records".to_owned(),
        "/v1//replication_summaries".to_owned(),
        format!("/v1/{project}//events"),
        format!("/v1/{project}/replication_records//events"),
        // Blank once decoded.
        "/v1/%20/replication_records".to_owned(),
        format!("/v1/{project}/replication_records/%20%20"),
    ] {
        let (status, b) = support::get(state(), &path, Some(OPERATOR)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {b}");
        assert_eq!(b["error_code"], "TRK.ROUTE_NOT_FOUND", "{path}: {b}");
    }
}

/// A malformed percent-escape is a 400 naming the parameter on every
/// parameter (`source_region=%ZZ` answered 200 with nothing found, while
/// `status=%ZZ` was refused).
#[tokio::test]
async fn a_bad_escape_is_a_400_naming_its_parameter() {
    let project = sample::project_id(0);
    for (query, param) in [
        ("source_region=%ZZ", "source_region"),
        ("destination_region=a%2", "destination_region"),
        ("checkpoint_item_id=%FF", "checkpoint_item_id"),
        ("status=%ZZ", "status"),
    ] {
        let path = format!("/v1/{project}/replication_records?{query}");
        let (status, b) = support::get(state(), &path, Some(OPERATOR)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {b}");
        assert_eq!(b["error_code"], "TRK.INVALID_PARAMETER", "{query}: {b}");
        assert!(
            b["error_msg"].as_str().unwrap().contains(param),
            "{query}: {b}"
        );
    }
}

/// A record whose id is `changes` is reachable: `…/replication_records/changes`
/// is the change feed, and the record is `…/%63hanges` (any percent-encoded
/// letter), as docs/api.md says.
#[tokio::test]
async fn a_record_named_like_a_route_is_reachable_percent_encoded() {
    let project = sample::project_id(0);
    let base = format!("/v1/{project}/replication_records");
    for path in [format!("{base}/%63hanges"), format!("{base}/chan%67es")] {
        let (status, b) = support::get(state(), &path, Some(OPERATOR)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {b}");
        assert_eq!(b["replication_record"]["id"], "changes", "{path}: {b}");
        let (status, b) = support::get(state(), &format!("{path}/events"), Some(OPERATOR)).await;
        assert_eq!(status, StatusCode::OK, "{path}/events: {b}");
    }
    // The plain path is the feed (a stream), not the record.
    let resp = support::send(
        state(),
        &format!("{base}/changes"),
        &[("X-Auth-Token", OPERATOR)],
    )
    .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
}

/// A path parameter that does not decode is a 400 naming it: `%ZZ` was taken
/// literally, and `%FF` in a record id was blamed on `project_id`.
#[tokio::test]
async fn a_bad_escape_in_the_path_is_a_400_naming_its_parameter() {
    let project = sample::project_id(0);
    for (path, param) in [
        ("/v1/%ZZ/replication_records".to_owned(), "project_id"),
        (format!("/v1/{project}/replication_records/%FF"), "`id`"),
        (
            format!("/v1/{project}/replication_records/a%2/events"),
            "`id`",
        ),
    ] {
        let (status, b) = support::get(state(), &path, Some(OPERATOR)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert!(
            b["error_msg"].as_str().unwrap().contains(param),
            "{path}: {b}"
        );
    }
    // `+` in a path is a plus: an id with one is found as given.
    let (status, _) = support::get(
        state(),
        &format!("/v1/{project}/replication_records/no+such"),
        Some(OPERATOR),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// What the router's guard refuses before any route (a head over the limit,
/// a path parameter that does not decode, a blank one) is counted like
/// every other answer: `tracker_http_errors_total` by its code, and the
/// latency histogram by route and status (issue 28 review: they were not).
#[tokio::test]
async fn the_guards_refusals_are_counted_in_the_metrics() {
    let state = state();
    let project = sample::project_id(0);
    let big = "x".repeat(33 * 1024);
    let resp = support::send(
        state.clone(),
        &format!("/v1/{project}/replication_records"),
        &[("X-Auth-Token", OPERATOR), ("X-Big", &big)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let (status, _) =
        support::get(state.clone(), "/v1/%ZZ/replication_records", Some(OPERATOR)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) =
        support::get(state.clone(), "/v1/%20/replication_records", Some(OPERATOR)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, b) = support::get(state, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK);
    let text = b.as_str().unwrap();
    for line in [
        "tracker_http_errors_total{code=\"TRK.HEADERS_TOO_LARGE\"} 1\n",
        "tracker_http_errors_total{code=\"TRK.INVALID_PARAMETER\"} 1\n",
        "tracker_http_errors_total{code=\"TRK.ROUTE_NOT_FOUND\"} 1\n",
        "tracker_http_request_duration_seconds_count{route=\"/v1/{project_id}/replication_records\",status=\"431\"} 1\n",
        "tracker_http_request_duration_seconds_count{route=\"/v1/{project_id}/replication_records\",status=\"400\"} 1\n",
        "tracker_http_request_duration_seconds_count{route=\"/v1/{project_id}/replication_records\",status=\"404\"} 1\n",
    ] {
        assert!(text.contains(line), "{line}{text}");
    }
}
