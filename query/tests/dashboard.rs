//! The dashboard's queries through the HTTP API (`oneshot` against a real
//! store): time windows and marker pagination on the list, summaries,
//! replication capabilities, and their 400s.

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use serde_json::Value;

use common::{sample, Store};
use query::{hash_token, AppState, Auth, TokenConfig};

mod support;

const TOKEN: &str = "dashboard-token";

fn store() -> Arc<Store> {
    static STORE: OnceLock<Arc<Store>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            Arc::new(support::store_of(&sample::events(&sample::Shape {
                records: 400,
                projects: 2,
                regions: 3,
                seed: 7,
            })))
        })
        .clone()
}

fn project(i: usize) -> String {
    sample::project_id(i)
}

fn state() -> AppState {
    let auth = Auth::new(&[TokenConfig {
        name: "dashboard".into(),
        sha256: hash_token(TOKEN)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        projects: vec![project(0)],
    }])
    .unwrap();
    AppState::new(store(), auth, None)
}

async fn get(uri: &str) -> (StatusCode, Value) {
    get_with(state(), uri, Some(TOKEN)).await
}

async fn get_with(state: AppState, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    support::get(state, uri, token).await
}

async fn list(qs: &str) -> Value {
    let uri = format!("/v1/{}/replication_records?{qs}", project(0));
    let (s, b) = get(&uri).await;
    assert_eq!(s, StatusCode::OK, "{uri}: {b}");
    b
}

fn ids(b: &Value) -> Vec<String> {
    b["replication_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn marker_pages_walk_the_same_records_as_offset_pages() {
    for sort in ["", "&sort=status:asc,updated_at:desc", "&sort=id:asc"] {
        let all = ids(&list(&format!("limit=1000{sort}")).await);
        assert!(all.len() > 100, "{}", all.len());
        let mut walked = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let qs = match &marker {
                None => format!("limit=37{sort}"),
                Some(m) => format!("limit=37&marker={m}{sort}"),
            };
            let b = list(&qs).await;
            let page = ids(&b);
            walked.extend(page.clone());
            match b.get("next_marker") {
                Some(next) => {
                    assert_eq!(next.as_str(), page.last().map(String::as_str));
                    marker = Some(next.as_str().unwrap().to_owned());
                }
                None => break,
            }
        }
        assert_eq!(walked, all, "sort {sort}");
    }
    // A full last page says nothing follows.
    let n = ids(&list("limit=1000").await).len();
    let b = list(&format!("limit={n}")).await;
    assert!(b.get("next_marker").is_none(), "{b}");
}

#[tokio::test]
async fn windows_are_half_open_and_take_both_time_formats() {
    let all = list("limit=1000&sort=created_at:asc").await;
    let records = all["replication_records"].as_array().unwrap();
    let created: Vec<&str> = records
        .iter()
        .map(|r| r["created_at"].as_str().unwrap())
        .collect();
    let (lo, hi) = (created[100], created[250]);
    let b = list(&format!(
        "limit=1000&sort=created_at:asc&with_count=true&created_after={lo}&created_before={hi}"
    ))
    .await;
    assert_eq!(ids(&b), ids(&all)[100..250].to_vec());
    assert_eq!(b["count"], 150);
    // The same window as RFC 3339 with an offset (`+` escaped and not).
    let shifted = |t: &str| {
        let t = common::instant::Micros::parse_api(t).unwrap();
        let local = common::instant::Micros(t.0 + 2 * 3_600_000_000).render();
        format!("{local}+02:00")
    };
    for plus in ["%2B", "+"] {
        let qs = format!(
            "limit=1000&sort=created_at:asc&created_after={}&created_before={}",
            shifted(lo).replace('+', plus),
            shifted(hi).replace('+', plus)
        );
        assert_eq!(ids(&list(&qs).await), ids(&all)[100..250].to_vec(), "{qs}");
    }
    // Updated windows select by the last event's time.
    let updated: Vec<&str> = records
        .iter()
        .map(|r| r["updated_at"].as_str().unwrap())
        .collect();
    let mut sorted = updated.clone();
    sorted.sort_unstable();
    let cut = sorted[200];
    let b = list(&format!("limit=1000&updated_before={cut}&with_count=true")).await;
    let want = updated.iter().filter(|u| **u < cut).count();
    assert_eq!(b["count"], want);
    assert_eq!(ids(&b).len(), want);
}

#[tokio::test]
async fn bad_windows_and_markers_are_400s_naming_the_parameter() {
    // A record listed only under the other project.
    let other = store()
        .view()
        .list(&project(1), &common::ListQuery::default())
        .unwrap()
        .records
        .into_iter()
        .map(|r| r.id)
        .find(|id| store().view().get(&project(0), id).unwrap().is_none())
        .expect("a record of project 1 alone");
    let first = ids(&list("limit=1").await).remove(0);
    for (qs, param) in [
        ("created_after=yesterday".to_owned(), "created_after"),
        (
            "created_before=2024-13-01T00:00:00".to_owned(),
            "created_before",
        ),
        ("updated_after=2024-01-01".to_owned(), "updated_after"),
        ("updated_before=".to_owned(), "updated_before"),
        (
            "created_after=2024-01-02T00:00:00&created_before=2024-01-01T00:00:00".to_owned(),
            "created_after",
        ),
        (
            "updated_after=2024-01-01T00:00:00Z&updated_before=2024-01-01T01:00:00%2B01:00"
                .to_owned(),
            "updated_after",
        ),
        ("marker=no-such-record".to_owned(), "marker"),
        (format!("marker={other}"), "marker"),
        (format!("marker={first}&offset=0"), "marker"),
        ("marker=a&marker=b".to_owned(), "marker"),
    ] {
        let (s, b) = get(&format!("/v1/{}/replication_records?{qs}", project(0))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{qs}: {b}");
        assert!(
            b["error_msg"].as_str().unwrap().contains(param),
            "{qs}: {b}"
        );
    }
}

async fn summaries(qs: &str) -> Value {
    let uri = format!("/v1/{}/replication_summaries?{qs}", project(0));
    let (s, b) = get(&uri).await;
    assert_eq!(s, StatusCode::OK, "{uri}: {b}");
    b
}

#[tokio::test]
async fn summaries_add_up_to_the_list_counts() {
    let created: Vec<String> = list("limit=1000&sort=created_at:asc").await["replication_records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["created_at"].as_str().unwrap().to_owned())
        .collect();
    let window = format!(
        "created_after={}&created_before={}",
        created[50], created[250]
    );
    for filters in ["", "status=success", "source_region=region-1", &window] {
        let count = list(&format!("limit=1&with_count=true&{filters}")).await["count"].clone();
        for grouping in [
            "",
            "group_by=&interval=day",
            "group_by=status,source_region&interval=hour",
            "group_by=destination_region",
        ] {
            let b = summaries(&format!("{grouping}&{filters}")).await;
            let items = b["summaries"].as_array().unwrap();
            let sum: u64 = items.iter().map(|i| i["count"].as_u64().unwrap()).sum();
            assert_eq!(b["total"], count, "{grouping} {filters}: {b}");
            assert_eq!(json_u64(&b["total"]), sum);
            let starts: Vec<&str> = items.iter().filter_map(|i| i["start"].as_str()).collect();
            assert!(
                starts.windows(2).all(|w| w[0] <= w[1]),
                "buckets in time order: {b}"
            );
            assert_eq!(
                starts.len() == items.len(),
                grouping.contains("interval"),
                "{b}"
            );
        }
    }
    // Only the grouped fields appear; a grouped region may be null.
    let b = summaries("group_by=status,source_region").await;
    for item in b["summaries"].as_array().unwrap() {
        let mut keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["count", "source_region", "status"], "{item}");
    }
    // Each group equals the list filtered to it.
    for item in b["summaries"].as_array().unwrap() {
        let Some(region) = item["source_region"].as_str() else {
            continue;
        };
        let qs = format!(
            "limit=1&with_count=true&status={}&source_region={region}",
            item["status"].as_str().unwrap()
        );
        assert_eq!(list(&qs).await["count"], item["count"], "{item}");
    }
}

fn json_u64(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

#[tokio::test]
async fn capabilities_are_observed_or_configured() {
    let all = list("limit=1000").await;
    let mut pairs = std::collections::BTreeMap::<String, std::collections::BTreeSet<String>>::new();
    for r in all["replication_records"].as_array().unwrap() {
        if let (Some(s), Some(d)) = (
            r["source_region"].as_str(),
            r["destination_region"].as_str(),
        ) {
            pairs.entry(s.to_owned()).or_default().insert(d.to_owned());
        }
    }
    let (s, b) = get(&format!("/v1/{}/replication_capabilities", project(0))).await;
    assert_eq!(s, StatusCode::OK);
    let want: Vec<Value> = pairs
        .into_iter()
        .map(|(name, d)| serde_json::json!({"name": name, "replication_destinations": d}))
        .collect();
    assert!(!want.is_empty());
    assert_eq!(b, serde_json::json!({ "regions": want }));
    let configured = state().with_regions(vec![
        query::RegionBody {
            name: "z-region".into(),
            replication_destinations: vec!["a".into()],
        },
        query::RegionBody {
            name: "a-region".into(),
            replication_destinations: vec![],
        },
    ]);
    let (_, b) = get_with(
        configured,
        &format!("/v1/{}/replication_capabilities", project(0)),
        Some(TOKEN),
    )
    .await;
    assert_eq!(b["regions"][0]["name"], "a-region");
    assert_eq!(
        b["regions"][1]["replication_destinations"],
        serde_json::json!(["a"])
    );
}

#[tokio::test]
async fn dashboard_endpoints_need_a_token_for_the_project_and_name_bad_parameters() {
    for path in ["replication_summaries", "replication_capabilities"] {
        let (s, b) = get_with(state(), &format!("/v1/{}/{path}", project(0)), None).await;
        assert_eq!(
            (s, b["error_code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("TRK.MISSING_TOKEN"))
        );
        let (s, b) = get(&format!("/v1/{}/{path}", project(1))).await;
        assert_eq!(
            (s, b["error_code"].as_str()),
            (StatusCode::FORBIDDEN, Some("TRK.PROJECT_FORBIDDEN"))
        );
    }
    for (qs, param) in [
        ("group_by=colour", "group_by"),
        ("group_by=status,status", "group_by"),
        ("group_by=status,", "group_by"),
        ("interval=week", "interval"),
        ("interval=", "interval"),
        ("status=done", "status"),
        ("source_region=", "source_region"),
        (
            "created_after=2024-01-02T00:00:00&created_before=2024-01-01T00:00:00",
            "created_after",
        ),
        ("created_before=tomorrow", "created_before"),
        ("interval=day&interval=hour", "interval"),
        ("group_by=&group_by=status", "group_by"),
    ] {
        let (s, b) = get(&format!("/v1/{}/replication_summaries?{qs}", project(0))).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{qs}: {b}");
        assert!(
            b["error_msg"].as_str().unwrap().contains(param),
            "{qs}: {b}"
        );
    }
}

/// A clock one hour after the newest record was created, and thresholds
/// that make some of the sample's unfinished records stuck.
fn stuck_state() -> (AppState, common::instant::Micros, common::instant::Micros) {
    let newest = store()
        .view()
        .records()
        .map(|r| r.unwrap().1.created_at())
        .max()
        .unwrap();
    let now = common::instant::Micros(newest.0 + 3_600_000_000);
    // The sample spans ~13 minutes: cutoffs 5 and 7 minutes before its end.
    let policy = query::StuckPolicy {
        replicating: std::time::Duration::from_secs(3600 + 300),
        waiting_replicate: std::time::Duration::from_secs(3600 + 420),
        clock: std::sync::Arc::new(move || now),
    };
    let replicating_before = common::instant::Micros(now.0 - 3_900_000_000);
    let waiting_before = common::instant::Micros(now.0 - 4_020_000_000);
    (
        state().with_stuck(policy),
        replicating_before,
        waiting_before,
    )
}

#[tokio::test]
async fn stuck_lists_summaries_and_metric_follow_the_clock() {
    let (state, replicating_before, waiting_before) = stuck_state();
    let all = list("limit=1000").await;
    let is_stuck = |r: &Value| {
        let updated = r["updated_at"].as_str().unwrap();
        match r["status"].as_str().unwrap() {
            "replicating" => updated < replicating_before.render().as_str(),
            "waiting_replicate" => updated < waiting_before.render().as_str(),
            _ => false,
        }
    };
    let records = all["replication_records"].as_array().unwrap();
    let want: Vec<String> = records
        .iter()
        .filter(|r| is_stuck(r))
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    let others = records.len() - want.len();
    assert!(!want.is_empty() && others > 0, "{} stuck", want.len());
    let call = |qs: String| {
        let state = state.clone();
        async move {
            let (s, b) = get_with(state, &format!("/v1/{}/{qs}", project(0)), Some(TOKEN)).await;
            assert_eq!(s, StatusCode::OK, "{qs}: {b}");
            b
        }
    };
    let b = call("replication_records?stuck=true&limit=1000&with_count=true".into()).await;
    assert_eq!(ids(&b), want);
    assert_eq!(b["count"], want.len());
    let b = call("replication_records?stuck=false&limit=1000&with_count=true".into()).await;
    assert_eq!(b["count"], others);
    assert_eq!(ids(&b).len(), others);
    let b = call("replication_summaries?stuck=true&group_by=status".into()).await;
    assert_eq!(b["total"], want.len());
    let b = call("replication_summaries?stuck=false".into()).await;
    assert_eq!(b["total"], others);
    // The metric counts every project, each record once.
    let mut everywhere = std::collections::BTreeSet::new();
    for p in 0..2 {
        let page = store()
            .view()
            .list(
                &project(p),
                &common::ListQuery {
                    stuck: Some(state.stuck.resolve(true)),
                    ..Default::default()
                },
            )
            .unwrap();
        everywhere.extend(page.records.into_iter().map(|r| (r.status.as_str(), r.id)));
    }
    let (_, text) = get_metrics(state.clone()).await;
    for status in ["replicating", "waiting_replicate"] {
        let n = everywhere.iter().filter(|(s, _)| *s == status).count();
        let line = format!("tracker_stuck_records{{status=\"{status}\"}} {n}");
        assert!(text.contains(&line), "{line} in\n{text}");
    }
    let (s, b) = get_with(
        state,
        &format!("/v1/{}/replication_records?stuck=maybe", project(0)),
        Some(TOKEN),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(b["error_msg"].as_str().unwrap().contains("stuck"), "{b}");
}

async fn get_metrics(state: AppState) -> (StatusCode, String) {
    let (status, body) = support::get(state, "/metrics", None).await;
    (status, body.as_str().unwrap_or_default().to_owned())
}

/// Huawei Cloud's path for the capabilities answers as the tracker's own
/// does — body, 401 and 403 — with or without the cloud SDK's signing
/// headers beside the token.
#[tokio::test]
async fn capabilities_answer_at_the_clouds_path_with_or_without_sdk_headers() {
    let sdk = [
        (
            "Authorization",
            "SDK-HMAC-SHA256 Access=AK, SignedHeaders=host;x-sdk-date, Signature=00",
        ),
        ("X-Sdk-Date", "20261207T065900Z"),
    ];
    let read = |uri: String, token: Option<&'static str>, extra: bool| async move {
        let mut headers: Vec<(&str, &str)> =
            token.map(|t| ("X-Auth-Token", t)).into_iter().collect();
        if extra {
            headers.extend(sdk);
        }
        let resp = support::send(state(), &uri, &headers).await;
        let status = resp.status();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice::<Value>(&bytes).unwrap())
    };
    for (p, token) in [
        (project(0), Some(TOKEN)),
        (project(0), None),
        (project(1), Some(TOKEN)),
    ] {
        let ours = read(format!("/v1/{p}/replication_capabilities"), token, false).await;
        assert!(!ours.1.is_null());
        for extra in [false, true] {
            let signed = read(format!("/v1/{p}/replication_capabilities"), token, extra).await;
            assert_eq!(signed, ours, "{p} token {token:?} sdk headers {extra}");
            let cloud = read(format!("/v3/{p}/replication-capabilities"), token, extra).await;
            assert_eq!(cloud, ours, "{p} token {token:?} sdk headers {extra}");
        }
    }
    let (s, b) = read(
        format!("/v3/{}/replication-capabilities", project(0)),
        Some(TOKEN),
        true,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(!b["regions"].as_array().unwrap().is_empty());
    // The OpenAPI document lists both paths (schemathesis walks it).
    let (_, doc) = read("/openapi.json".into(), None, false).await;
    for path in [
        "/v1/{project_id}/replication_capabilities",
        "/v3/{project_id}/replication-capabilities",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} undocumented");
    }
}
