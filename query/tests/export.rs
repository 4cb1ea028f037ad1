//! The export through the HTTP API (`oneshot` against a real store): the
//! list's pages concatenated in NDJSON and CSV, the trailer's count and
//! digest, the offsets header, gzip, and its 400s, 401 and 403.

use std::io::Read;
use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

use common::{sample, Store};
use query::{hash_token, AppState, Auth, TokenConfig};

mod support;

const TOKEN: &str = "auditor-token";

/// Two projects of ~1,300 records each: an export crosses the list's
/// 1,000-record pages.
fn store() -> Arc<Store> {
    static STORE: OnceLock<Arc<Store>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            Arc::new(support::store_of(&sample::events(&sample::Shape {
                records: 2600,
                projects: 2,
                regions: 3,
                seed: 11,
            })))
        })
        .clone()
}

fn state() -> AppState {
    let auth = Auth::new(&[TokenConfig {
        name: "auditor".into(),
        sha256: hash_token(TOKEN)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        projects: vec![sample::project_id(0)],
    }])
    .unwrap();
    AppState::new(store(), auth, None)
}

/// The status, headers and whole body of an export.
async fn export(
    qs: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let uri = format!(
        "/v1/{}/replication_records/export?{qs}",
        sample::project_id(0)
    );
    let mut h = vec![("X-Auth-Token", TOKEN)];
    h.extend_from_slice(headers);
    let resp = support::send(state(), &uri, &h).await;
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

/// Every record of the list for `qs`, page after page by marker.
async fn listed(qs: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut marker = String::new();
    loop {
        let uri = format!(
            "/v1/{}/replication_records?{qs}&limit=1000{marker}",
            sample::project_id(0)
        );
        let (s, b) = support::get(state(), &uri, Some(TOKEN)).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {b}");
        out.extend(b["replication_records"].as_array().unwrap().iter().cloned());
        match b["next_marker"].as_str() {
            Some(m) => marker = format!("&marker={m}"),
            None => return out,
        }
    }
}

fn flattened(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flattened(v, &key, out);
            }
        }
        Value::Null => out.push(String::new()),
        Value::String(s) => out.push(s.clone()),
        other => out.push(other.to_string()),
    }
}

const QUERIES: [&str; 4] = [
    "",
    "status=success",
    "sort=id:asc",
    "source_region=region-1&created_after=2024-01-01T00:00:00&sort=updated_at:asc",
];

#[tokio::test]
async fn the_export_is_the_lists_pages_with_a_trailer_that_checks() {
    for qs in QUERIES {
        let want = listed(qs).await;
        let (status, headers, body) = export(qs, &[]).await;
        assert_eq!(status, StatusCode::OK, "{qs}");
        assert_eq!(headers["content-type"], "application/x-ndjson");
        assert!(
            headers["x-export-offsets"]
                .to_str()
                .unwrap()
                .starts_with("t/0:"),
            "{headers:?}"
        );
        let text = String::from_utf8(body).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let (trailer, records) = lines.split_last().unwrap();
        let have: Vec<Value> = records
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(have.len(), want.len(), "{qs}");
        assert_eq!(have, want, "{qs}");
        let trailer: Value = serde_json::from_str(trailer).unwrap();
        let t = &trailer["export"];
        assert_eq!(t["records"], want.len(), "{trailer}");
        let body = &text[..text.len() - lines.last().unwrap().len() - 1];
        assert_eq!(t["sha256"], hex::encode(Sha256::digest(body.as_bytes())));
        assert_eq!(t["offsets"][0]["partition"], 0);
    }
    assert!(
        listed("").await.len() > 1000,
        "the export must cross a page"
    );
}

#[tokio::test]
async fn the_csv_export_holds_the_lists_records_flattened() {
    for qs in QUERIES {
        let want = listed(qs).await;
        let (status, headers, body) = export(&format!("{qs}&format=csv"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{qs}");
        assert_eq!(headers["content-type"], "text/csv; charset=utf-8");
        let mut rd = csv::Reader::from_reader(&body[..]);
        assert_eq!(rd.headers().unwrap().len(), 17);
        let rows: Vec<Vec<String>> = rd
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        let flat: Vec<Vec<String>> = want
            .iter()
            .map(|r| {
                let mut v = Vec::new();
                flattened(r, "", &mut v);
                v
            })
            .collect();
        assert_eq!(rows, flat, "{qs}");
    }
}

#[tokio::test]
async fn a_client_that_accepts_gzip_gets_the_same_export_compressed() {
    let (_, _, plain) = export("status=success", &[]).await;
    let (status, headers, gz) = export("status=success", &[("Accept-Encoding", "gzip")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-encoding"], "gzip");
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, plain);
    assert!(
        gz.len() * 3 < plain.len(),
        "{} of {}",
        gz.len(),
        plain.len()
    );
}

#[tokio::test]
async fn bad_requests_are_refused_naming_what_is_wrong() {
    for (qs, param) in [
        ("format=xml", "format"),
        ("limit=10", "limit"),
        ("marker=x", "marker"),
        ("status=nope", "status"),
        ("created_after=yesterday", "created_after"),
    ] {
        let (status, _, body) = export(qs, &[]).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{qs}: {body}");
        assert!(
            body["error_msg"].as_str().unwrap().contains(param),
            "{qs}: {body}"
        );
    }
    let other = format!("/v1/{}/replication_records/export", sample::project_id(1));
    let (s, _) = support::get(state(), &other, Some(TOKEN)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let own = format!("/v1/{}/replication_records/export", sample::project_id(0));
    let (s, _) = support::get(state(), &own, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
