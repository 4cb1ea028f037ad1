//! The HTTP contract (`docs/api.md`), driven through `tower::ServiceExt::oneshot`
//! against a real store.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{json, Value};

use common::progress::IngestProgress;
use common::{Message, Store};
use query::{hash_token, AppState, Auth, TokenConfig};

mod support;

const RECORD: &str = "30b97bac-532c-4c51-96fa-4b3a32253c12";
const SRC_PROJECT: &str = "e0b97bac-532c-4c51-96fa-4b3a32253be4";
const DST_PROJECT: &str = "45899f0e-1c07-49db-8bb9-03e0de2981123";
const TOKEN: &str = "tenant-token";
const OPERATOR: &str = "operator-token";

const SPEC_EVENTS: [&str; 4] = [
    r#"{"schema_version":1,"event_id":"e-1","type":"queued","record_id":"30b97bac-532c-4c51-96fa-4b3a32253c12","occurred_at":"2018-06-14T11:14:48.946Z","record":{"source_region":"region-1","source_project_id":"e0b97bac-532c-4c51-96fa-4b3a32253be4","source_checkpoint_id":"45899f0e-1c07-49db-8bb9-03e0de298152","source_checkpoint_item_id":"45899f0e-1c07-49db-8bb9-03e0de2981123","destination_region":"region-2","destination_project_id":"45899f0e-1c07-49db-8bb9-03e0de2981123","plan_id":"45899f0e-1c07-49db-8bb9-03e0de298152","auto_trigger":true}}"#,
    r#"{"schema_version":1,"event_id":"e-2","type":"started","record_id":"30b97bac-532c-4c51-96fa-4b3a32253c12","occurred_at":"2018-06-14T11:15:02Z","progress":0}"#,
    r#"{"schema_version":1,"event_id":"e-3","type":"progress","record_id":"30b97bac-532c-4c51-96fa-4b3a32253c12","occurred_at":"2018-06-14T11:20:00Z","progress":55}"#,
    r#"{"schema_version":1,"event_id":"e-4","type":"succeeded","record_id":"30b97bac-532c-4c51-96fa-4b3a32253c12","occurred_at":"2018-06-14T11:31:40Z","record":{"destination_checkpoint_id":"40129f0e-1c07-49db-8bb9-03e0de298152","destination_checkpoint_item_id":"411119f0e-1c07-49db-8bb9-03e0de298152"}}"#,
];

fn store() -> Arc<Store> {
    let store = Store::temporary().unwrap();
    // Published out of order, with a duplicate and a malformed message.
    let order = [3usize, 0, 2, 1, 3];
    let mut ms: Vec<Message> = order
        .iter()
        .enumerate()
        .map(|(i, &e)| Message {
            topic: "replication-events".into(),
            partition: 0,
            offset: i as i64,
            key: Some(RECORD.as_bytes().to_vec()),
            payload: Some(SPEC_EVENTS[e].as_bytes().to_vec()),
        })
        .collect();
    ms.push(Message {
        topic: "replication-events".into(),
        partition: 0,
        offset: 5,
        key: None,
        payload: Some(vec![0xff, 0x00]),
    });
    store.apply_batch(&ms).unwrap();
    Arc::new(store)
}

fn auth() -> Auth {
    Auth::new(&[
        TokenConfig {
            name: "tenant".into(),
            sha256: hex(TOKEN),
            projects: vec![SRC_PROJECT.into()],
        },
        TokenConfig {
            name: "op".into(),
            sha256: hex(OPERATOR),
            projects: vec!["*".into()],
        },
    ])
    .unwrap()
}

fn hex(t: &str) -> String {
    hash_token(t).iter().map(|b| format!("{b:02x}")).collect()
}

async fn call_with(state: AppState, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    support::get(state, uri, token).await
}

async fn call(uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    call_with(AppState::new(store(), auth(), None), uri, token).await
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    let msg = body["error_msg"].as_str().unwrap();
    assert!((2..=512).contains(&msg.len()));
    assert_eq!(body.as_object().unwrap().len(), 2);
}

#[tokio::test]
async fn seed_request_examples_work() {
    let (s, b) = call(&format!("/v1/{SRC_PROJECT}/replications"), Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["replication_records"].as_array().unwrap().len(), 1);
    // The seed's second example: quoted values, a typo'd valueless `offest`.
    let (s, b) = call(
        &format!("/v1/{SRC_PROJECT}/replications?checkpoint_item_id='45899f0e-1c07-49db-8bb9-03e0de2981123'&status='success'&limit=5&offest"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["replication_records"][0]["id"], RECORD);
    let (s, b) = call(&format!("/v1/{SRC_PROJECT}/replications?checkpoint_item_id='123'&status='replicating'&limit=5&offest"), Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["replication_records"], json!([]));
}

#[tokio::test]
async fn seed_response_example_is_reproduced_from_the_spec_events() {
    let (s, b) = call(
        &format!("/v1/{SRC_PROJECT}/replication_records?with_count=true"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        b,
        json!({
            "replication_records": [{
                "id": RECORD,
                "source_region": "region-1",
                "source_project_id": SRC_PROJECT,
                "source_checkpoint_id": "45899f0e-1c07-49db-8bb9-03e0de298152",
                "source_checkpoint_item_id": "45899f0e-1c07-49db-8bb9-03e0de2981123",
                "destination_region": "region-2",
                "destination_project_id": DST_PROJECT,
                "destination_checkpoint_id": "40129f0e-1c07-49db-8bb9-03e0de298152",
                "destination_checkpoint_item_id": "411119f0e-1c07-49db-8bb9-03e0de298152",
                "status": "success",
                "plan_id": "45899f0e-1c07-49db-8bb9-03e0de298152",
                "created_at": "2018-06-14T11:14:48.946000",
                "updated_at": "2018-06-14T11:31:40.000000",
                "extra_info": {"auto_trigger": true, "progress": 100, "fail_reason": "", "fail_code": ""}
            }],
            "count": 1
        })
    );
    // Without with_count there is no count.
    let (_, b) = call(
        &format!("/v1/{SRC_PROJECT}/replication_records"),
        Some(TOKEN),
    )
    .await;
    assert!(b.get("count").is_none());
}

#[tokio::test]
async fn every_bad_parameter_is_a_400_naming_it() {
    let cases = [
        ("status=done", "status", "TRK.INVALID_PARAMETER"),
        ("status=SUCCESS", "status", "TRK.INVALID_PARAMETER"),
        ("limit=0", "limit", "TRK.INVALID_PARAMETER"),
        ("limit=1001", "limit", "TRK.INVALID_PARAMETER"),
        ("limit=ten", "limit", "TRK.INVALID_PARAMETER"),
        ("limit=-5", "limit", "TRK.INVALID_PARAMETER"),
        ("limit=1.5", "limit", "TRK.INVALID_PARAMETER"),
        ("offset=-1", "offset", "TRK.INVALID_PARAMETER"),
        ("offset=x", "offset", "TRK.INVALID_PARAMETER"),
        ("sort=colour", "sort", "TRK.INVALID_PARAMETER"),
        ("sort=created_at:sideways", "sort", "TRK.INVALID_PARAMETER"),
        ("sort=created_at,", "sort", "TRK.INVALID_PARAMETER"),
        ("sort=,id", "sort", "TRK.INVALID_PARAMETER"),
        ("with_count=maybe", "with_count", "TRK.INVALID_PARAMETER"),
        (
            "status=fail&status=skip",
            "status",
            "TRK.DUPLICATE_PARAMETER",
        ),
        ("limit=5&limit=5", "limit", "TRK.DUPLICATE_PARAMETER"),
        (
            "destination_region=",
            "destination_region",
            "TRK.EMPTY_PARAMETER",
        ),
        ("source_region=''", "source_region", "TRK.EMPTY_PARAMETER"),
        (
            "checkpoint_item_id=%22%22",
            "checkpoint_item_id",
            "TRK.EMPTY_PARAMETER",
        ),
        (
            "source_checkpoint_item_id",
            "source_checkpoint_item_id",
            "TRK.EMPTY_PARAMETER",
        ),
        (
            "destination_checkpoint_item_id=",
            "destination_checkpoint_item_id",
            "TRK.EMPTY_PARAMETER",
        ),
        ("with_count=", "with_count", "TRK.EMPTY_PARAMETER"),
        ("sort=", "sort", "TRK.EMPTY_PARAMETER"),
        ("offset=", "offset", "TRK.EMPTY_PARAMETER"),
    ];
    for (qs, param, code) in cases {
        let (s, b) = call(
            &format!("/v1/{SRC_PROJECT}/replication_records?{qs}"),
            Some(TOKEN),
        )
        .await;
        assert_error(s, &b, StatusCode::BAD_REQUEST, code);
        assert!(
            b["error_msg"].as_str().unwrap().contains(param),
            "{qs}: {b}"
        );
    }
    let long = format!("sort={}", "created_at:asc,".repeat(20) + "id");
    assert!(long.len() > 260);
    let (s, b) = call(
        &format!("/v1/{SRC_PROJECT}/replication_records?{long}"),
        Some(TOKEN),
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "TRK.INVALID_PARAMETER");
    // Unknown parameters are ignored.
    let (s, _) = call(
        &format!("/v1/{SRC_PROJECT}/replication_records?colour=blue&offest"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn auth_errors_do_not_reveal_records() {
    for uri in [
        format!("/v1/{SRC_PROJECT}/replication_records"),
        format!("/v1/{SRC_PROJECT}/replication_records/{RECORD}"),
        format!("/v1/{SRC_PROJECT}/replication_records/no-such-record"),
        format!("/v1/{SRC_PROJECT}/replication_records/{RECORD}/events"),
    ] {
        let (s, b) = call(&uri, None).await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED, "TRK.MISSING_TOKEN");
        let (s, b) = call(&uri, Some("wrong")).await;
        assert_error(s, &b, StatusCode::UNAUTHORIZED, "TRK.INVALID_TOKEN");
    }
    // The tenant token is scoped to the source project only: the destination
    // project is forbidden whether or not the record exists there.
    for id in [RECORD, "no-such-record"] {
        let (s, b) = call(
            &format!("/v1/{DST_PROJECT}/replication_records/{id}"),
            Some(TOKEN),
        )
        .await;
        assert_error(s, &b, StatusCode::FORBIDDEN, "TRK.PROJECT_FORBIDDEN");
    }
    // Authentication comes before parameter validation.
    let (s, b) = call(
        &format!("/v1/{SRC_PROJECT}/replication_records?limit=0"),
        None,
    )
    .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "TRK.MISSING_TOKEN");
    let (s, b) = call("/v1/admin/quarantine", Some(TOKEN)).await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "TRK.OPERATOR_ONLY");
}

#[tokio::test]
async fn single_record_events_and_404s() {
    let (s, b) = call(
        &format!("/v1/{SRC_PROJECT}/replication_records/{RECORD}"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["replication_record"]["status"], "success");
    // Listed under the destination project too (operator can read every project).
    let (s, _) = call(
        &format!("/v1/{DST_PROJECT}/replication_records/{RECORD}"),
        Some(OPERATOR),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = call(
        &format!("/v1/other-project/replication_records/{RECORD}"),
        Some(OPERATOR),
    )
    .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "TRK.RECORD_NOT_FOUND");
    let (s, b) = call(
        &format!("/v1/{SRC_PROJECT}/replication_records/nope"),
        Some(TOKEN),
    )
    .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "TRK.RECORD_NOT_FOUND");
    let (s, b) = call("/v2/whatever", Some(TOKEN)).await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "TRK.ROUTE_NOT_FOUND");

    let (s, b) = call(
        &format!("/v1/{SRC_PROJECT}/replication_records/{RECORD}/events"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let events = b["events"].as_array().unwrap();
    // Arrival order, coordinates, effect; the redelivered e-4 is a duplicate.
    assert_eq!(
        events
            .iter()
            .map(|e| e["offset"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(events[0]["event"]["event_id"], "e-4");
    assert_eq!(events[4]["effect"], "duplicate");
    assert_eq!(events[4]["changed"], false);
    assert_eq!(events[0]["topic"], "replication-events");
}

/// `as_of` on one record and its trail: the record folded from its events
/// before the time (they arrived out of order), the trail cut there; a
/// time before its first event is a 404, a bad time a 400 naming `as_of`.
#[tokio::test]
async fn a_record_and_its_trail_as_of_a_time() {
    let base = format!("/v1/{SRC_PROJECT}/replication_records/{RECORD}");
    let (s, b) = call(&format!("{base}?as_of=2018-06-14T11:20:00"), Some(TOKEN)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let r = &b["replication_record"];
    assert_eq!(r["status"], "replicating", "{b}");
    assert_eq!(
        r["extra_info"]["progress"], 0,
        "the progress event is at, not before, the time: {b}"
    );
    assert_eq!(r["updated_at"], "2018-06-14T11:15:02.000000", "{b}");
    let (s, b) = call(
        &format!("{base}?as_of=2018-06-14T11:20:00.000001"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["replication_record"]["extra_info"]["progress"], 55, "{b}");
    let (s, b) = call(
        &format!("{base}/events?as_of=2018-06-14T11:20:00.000001"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let types: Vec<&str> = b["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["type"].as_str().unwrap())
        .collect();
    // In arrival order (published 3, 0, 2, 1, 3): the later success is cut.
    assert_eq!(types, ["queued", "progress", "started"], "{b}");
    let (s, b) = call(
        &format!("{base}/events?as_of=2018-06-14T11:20:00.000001&limit=2"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["events"].as_array().unwrap().len(), 2);
    let next = b["next_marker"].as_str().unwrap().to_owned();
    let (_, b) = call(
        &format!("{base}/events?as_of=2018-06-14T11:20:00.000001&limit=2&marker={next}"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(b["events"][0]["event"]["type"], "started", "{b}");
    assert!(b["next_marker"].is_null(), "{b}");
    for path in [base.clone(), format!("{base}/events")] {
        let (s, b) = call(&format!("{path}?as_of=2018-06-14T11:14:48"), Some(TOKEN)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}: {b}");
        let (s, b) = call(&format!("{path}?as_of=yesterday"), Some(TOKEN)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {b}");
        assert!(b["error_msg"].as_str().unwrap().contains("as_of"), "{b}");
    }
}

#[tokio::test]
async fn events_of_a_record_are_404_under_a_project_it_is_not_listed_in() {
    // The operator may read any project, so only the listing decides.
    for project in ["other-project", "e0b97bac"] {
        let (s, b) = call(
            &format!("/v1/{project}/replication_records/{RECORD}/events"),
            Some(OPERATOR),
        )
        .await;
        assert_error(s, &b, StatusCode::NOT_FOUND, "TRK.RECORD_NOT_FOUND");
        // Nothing of the record leaks, not even in the message.
        assert!(!b.to_string().contains("e-1"), "{b}");
        assert!(!b.to_string().contains("region-1"), "{b}");
    }
    // Listed under the destination project: its events are there too.
    let (s, b) = call(
        &format!("/v1/{DST_PROJECT}/replication_records/{RECORD}/events"),
        Some(OPERATOR),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["events"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn quarantine_is_visible_to_operators() {
    let (s, b) = call("/v1/admin/quarantine?limit=10", Some(OPERATOR)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["count"], 1);
    let q = &b["quarantined"][0];
    assert_eq!(q["reason_code"], "invalid_utf8");
    assert_eq!(q["raw_encoding"], "base64");
    assert_eq!(q["offset"], 5);
    let (s, b) = call("/v1/admin/quarantine?limit=0", Some(OPERATOR)).await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "TRK.INVALID_PARAMETER");
}

#[tokio::test]
async fn health_metrics_and_startup_gate() {
    let (s, b) = call("/health/live", None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("live")));
    let (s, b) = call("/health/ready", None).await;
    assert_eq!((s, b["ready"].as_bool()), (StatusCode::OK, Some(true)));

    // With an ingest worker that has not caught up: not ready, lists are 503.
    let progress = Arc::new(IngestProgress::new("replication-events"));
    let state = AppState::new(store(), auth(), Some(progress.clone()));
    let (s, b) = call_with(state.clone(), "/health/ready", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(b["broker"], "connecting");
    let (s, b) = call_with(
        state.clone(),
        &format!("/v1/{SRC_PROJECT}/replication_records"),
        Some(TOKEN),
    )
    .await;
    assert_error(s, &b, StatusCode::SERVICE_UNAVAILABLE, "TRK.NOT_READY");
    progress.set_broker(common::progress::BrokerState::Up);
    progress.set_high_watermark(0, 6);
    progress.set_next_offset(0, 6);
    let (s, b) = call_with(state.clone(), "/health/ready", None).await;
    assert_eq!((s, b["lag"].as_i64()), (StatusCode::OK, Some(0)));
    let (s, _) = call_with(
        state.clone(),
        &format!("/v1/{SRC_PROJECT}/replication_records"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    // A broker outage later makes readiness fail but keeps serving.
    progress.set_broker(common::progress::BrokerState::Down);
    progress.set_high_watermark(0, 50);
    let (s, b) = call_with(state.clone(), "/health/ready", None).await;
    assert_eq!(
        (s, b["lag"].as_i64(), b["broker"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some(44), Some("down"))
    );
    let (s, _) = call_with(
        state.clone(),
        &format!("/v1/{SRC_PROJECT}/replication_records"),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    let (s, b) = call_with(state, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    let text = b.as_str().unwrap();
    assert!(text.contains("tracker_events_applied_total 4"), "{text}");
    assert!(text.contains("tracker_events_duplicate_total 1"));
    assert!(text.contains("tracker_events_quarantined_total 1"));
    assert!(text.contains("tracker_partition_lag{topic=\"replication-events\",partition=\"0\"} 44"));
    assert!(text.contains("tracker_http_request_duration_seconds_count{route=\"/v1/{project_id}/replication_records\",status=\"200\"}"));
    // What the alerts and the dashboard need (issue 28): error answers by
    // code, every code from the start; status changes by region pair; the
    // apply time; the store's size.
    assert!(
        text.contains("tracker_http_errors_total{code=\"TRK.NOT_READY\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("tracker_http_errors_total{code=\"TRK.INTERNAL_ERROR\"} 0\n"),
        "{text}"
    );
    assert!(
        text.contains("tracker_status_changes_total{status=\"success\",source_region=\""),
        "{text}"
    );
    assert!(
        text.contains("tracker_apply_duration_seconds_count "),
        "{text}"
    );
    assert!(text.contains("tracker_store_size_bytes "), "{text}");
    // Records per status, store-wide: the one record, once.
    assert!(
        text.contains("tracker_records_by_status{status=\"success\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("tracker_records_by_status{status=\"fail\"} 0\n"),
        "{text}"
    );
}
