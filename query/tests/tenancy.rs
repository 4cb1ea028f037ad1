//! Tenancy: for random tokens, scopes and requests, no response ever carries a
//! record outside the token's projects, and 401/403 answers are the same
//! whether or not the record exists.

use std::sync::{Arc, OnceLock};

use axum::http::StatusCode;
use proptest::prelude::*;
use serde_json::Value;

use std::collections::BTreeMap;

use common::testkit::{adversarial, reference};
use common::{sample, Event, Record, Store};
use query::{hash_token, AppState, Auth, TokenConfig};

mod support;

const PROJECTS: usize = 4;

/// Sample records plus adversarial ones that move between projects.
fn events() -> Vec<Event> {
    let mut events = sample::events(&sample::Shape {
        records: 120,
        projects: PROJECTS,
        regions: 3,
        seed: 99,
    });
    let projects: Vec<String> = (0..PROJECTS).map(sample::project_id).collect();
    events.extend(adversarial::events(40, &projects, 99));
    events
}

fn store() -> Arc<Store> {
    static STORE: OnceLock<Arc<Store>> = OnceLock::new();
    STORE
        .get_or_init(|| Arc::new(support::store_of(&events())))
        .clone()
}

fn record_ids() -> &'static Vec<String> {
    static IDS: OnceLock<Vec<String>> = OnceLock::new();
    IDS.get_or_init(|| store().view().records().map(|r| r.unwrap().0).collect())
}

/// Whether record `id` is listed under `project`, by the reference fold of
/// the same events.
fn listed(id: &str, project: &str) -> bool {
    static RECORDS: OnceLock<BTreeMap<String, Record>> = OnceLock::new();
    let records = RECORDS.get_or_init(|| reference::fold_events(&events()));
    reference::listed_under(&records[id], project)
}

async fn get(state: AppState, uri: &str, token: &str) -> (StatusCode, Value) {
    support::get(state, uri, Some(token)).await
}

fn listed_under(r: &Value, projects: &[String]) -> bool {
    projects
        .iter()
        .any(|p| r["source_project_id"] == p.as_str() || r["destination_project_id"] == p.as_str())
}

#[derive(Debug, Clone)]
enum Req {
    List {
        project: usize,
        query: &'static str,
    },
    Record {
        project: usize,
        record: usize,
        exists: bool,
    },
    Events {
        project: usize,
        record: usize,
    },
}

fn arb_req() -> impl Strategy<Value = Req> {
    prop_oneof![
        (
            0..PROJECTS + 1,
            proptest::sample::select(vec![
                "",
                "status=success",
                "source_region=region-1",
                "sort=id:asc&limit=7",
                "with_count=true&offset=3"
            ])
        )
            .prop_map(|(project, query)| Req::List { project, query }),
        (0..PROJECTS + 1, 0usize..1000, any::<bool>()).prop_map(|(project, record, exists)| {
            Req::Record {
                project,
                record,
                exists,
            }
        }),
        (0..PROJECTS + 1, 0usize..1000)
            .prop_map(|(project, record)| Req::Events { project, record }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn responses_never_cross_tenants(scope in proptest::collection::btree_set(0..PROJECTS + 1, 1..3), req in arb_req(), known_token in any::<bool>()) {
        let projects: Vec<String> = scope.iter().map(|&p| sample::project_id(p)).collect();
        let auth = Auth::new(&[TokenConfig { name: "t".into(), sha256: hex::encode(hash_token("tok")), projects: projects.clone() }]).unwrap();
        let state = AppState::new(store(), auth, None);
        let token = if known_token { "tok" } else { "stranger" };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let ids = record_ids();
        let (uri, project) = match &req {
            Req::List { project, query } => (format!("/v1/{}/replication_records?{query}", sample::project_id(*project)), *project),
            Req::Record { project, record, exists } => {
                let id = if *exists { ids[record % ids.len()].clone() } else { format!("missing-{record}") };
                (format!("/v1/{}/replication_records/{id}", sample::project_id(*project)), *project)
            }
            Req::Events { project, record } => {
                (format!("/v1/{}/replication_records/{}/events", sample::project_id(*project), ids[record % ids.len()]), *project)
            }
        };
        let (status, body) = rt.block_on(get(state, &uri, token));
        let allowed = projects.contains(&sample::project_id(project));
        if !known_token {
            prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
            prop_assert_eq!(&body["error_code"], "TRK.INVALID_TOKEN");
        } else if !allowed {
            // Same answer whether the record exists or not.
            prop_assert_eq!(status, StatusCode::FORBIDDEN);
            prop_assert_eq!(&body["error_code"], "TRK.PROJECT_FORBIDDEN");
        } else {
            prop_assert!(status == StatusCode::OK || status == StatusCode::NOT_FOUND, "{} {}", status, body);
            let path_project = [sample::project_id(project)];
            // A record (or its events) is found exactly where it is listed;
            // elsewhere the 404 carries nothing of it.
            let asked = match &req {
                Req::Record { record, exists: true, .. } | Req::Events { record, .. } => Some(&ids[record % ids.len()]),
                _ => None,
            };
            if let Some(id) = asked {
                let here = listed(id, &path_project[0]);
                prop_assert_eq!(status == StatusCode::OK, here, "{} {} {}", uri, status, body);
                if !here {
                    // The error body and nothing else: no field of the record.
                    prop_assert_eq!(&body["error_code"], "TRK.RECORD_NOT_FOUND");
                    prop_assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{}", body);
                }
            }
            if let (Req::Events { .. }, true) = (&req, status == StatusCode::OK) {
                for e in body["events"].as_array().unwrap() {
                    prop_assert_eq!(&e["event"]["record_id"], asked.unwrap().as_str());
                }
            }
            let records: Vec<&Value> = match &req {
                Req::List { .. } => body["replication_records"].as_array().unwrap().iter().collect(),
                Req::Record { .. } if status == StatusCode::OK => vec![&body["replication_record"]],
                _ => vec![],
            };
            for r in records {
                prop_assert!(listed_under(r, &path_project), "record outside the project: {}", r);
                prop_assert!(listed_under(r, &projects), "record outside the token's projects: {}", r);
            }
        }
    }
}
