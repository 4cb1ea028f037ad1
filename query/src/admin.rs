//! The cluster's operator pages (issue 26): `GET /v1/admin/cluster` — the
//! map, and each node's readiness and lag as it reports them — and
//! `GET /v1/admin/cluster/digest` — the listing shards' per-project
//! digests joined (one replica of each partition set), with the one digest
//! a single node of the same topic has too.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Json;
use http_body_util::BodyExt;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::{authenticate, ApiResult};
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::AppState;
use common::cluster::Node;

/// The most of a node's answer read here.
const ANSWER_BYTES: usize = 16 << 20;

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterBody {
    /// The node that answered.
    pub node: String,
    pub events_partitions: u32,
    pub changelog_topic: String,
    pub changelog_partitions: u32,
    pub nodes: Vec<NodeBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeBody {
    pub name: String,
    /// `fold` or `shard`.
    pub role: String,
    pub url: String,
    pub partitions: Vec<u32>,
    /// Its `/health/ready`: false when it says not ready or does not answer.
    pub ready: bool,
    /// Messages behind its topic's head (of the partitions it owns).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<i64>,
    /// Why it is not ready, when it did not answer at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterDigestBody {
    /// SHA-256 over `project digest` lines in project order: equal to a
    /// single node's `listings_digest` of the same topic.
    pub listings_digest: String,
    /// Per project, SHA-256 over its records as the API renders them.
    pub projects: BTreeMap<String, String>,
    /// The shard (one replica per partition set) each project's came from.
    pub shards: Vec<String>,
}

fn cluster_of(s: &AppState, headers: &HeaderMap) -> Result<std::sync::Arc<Cluster>, ApiError> {
    if !authenticate(s, headers)?.is_operator() {
        return Err(ApiError::OperatorOnly);
    }
    s.cluster.clone().ok_or_else(|| {
        ApiError::RouteNotFound("this tracker is a single node, not in a cluster".into())
    })
}

/// The cluster map, and each node's readiness and lag.
#[utoipa::path(get, path = "/v1/admin/cluster", tag = "operations",
    security(("token" = [])),
    responses((status = 200, body = ClusterBody), (status = 401, body = crate::bodies::ErrorBody),
        (status = 403, body = crate::bodies::ErrorBody), (status = 404, body = crate::bodies::ErrorBody)))]
pub(crate) async fn cluster(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<ClusterBody> {
    let c = cluster_of(&s, &headers)?;
    let roles = c
        .map
        .folds
        .iter()
        .map(|n| ("fold", n))
        .chain(c.map.shards.iter().map(|n| ("shard", n)));
    let asks = roles.map(|(role, n)| {
        let c = c.clone();
        async move {
            let (ready, lag, error) = match get(&c, n, "/health/ready", &HeaderMap::new()).await {
                Ok((status, v)) => (
                    status == StatusCode::OK,
                    v.get("lag").and_then(serde_json::Value::as_i64),
                    None,
                ),
                Err(e) => (false, None, Some(e)),
            };
            NodeBody {
                name: n.name.clone(),
                role: role.into(),
                url: n.url.clone(),
                partitions: n.partitions.clone(),
                ready,
                lag,
                error,
            }
        }
    });
    let nodes = futures_util::future::join_all(asks).await;
    Ok(Json(ClusterBody {
        node: c.node.clone(),
        events_partitions: c.map.events_partitions,
        changelog_topic: c.map.changelog_topic.clone(),
        changelog_partitions: c.map.changelog_partitions,
        nodes,
    }))
}

/// The listing shards' per-project digests joined.
#[utoipa::path(get, path = "/v1/admin/cluster/digest", tag = "operations",
    security(("token" = [])),
    responses((status = 200, body = ClusterDigestBody), (status = 401, body = crate::bodies::ErrorBody),
        (status = 403, body = crate::bodies::ErrorBody), (status = 404, body = crate::bodies::ErrorBody),
        (status = 503, body = crate::bodies::ErrorBody)))]
pub(crate) async fn cluster_digest(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<ClusterDigestBody> {
    let c = cluster_of(&s, &headers)?;
    let mut projects = BTreeMap::new();
    let mut shards = Vec::new();
    for (n, v) in from_each_shard(&c, "/v1/admin/digest", &headers).await? {
        let theirs: BTreeMap<String, String> = serde_json::from_value(
            v.get("projects").cloned().unwrap_or_default(),
        )
        .map_err(|e| ApiError::Failed {
            unavailable: true,
            detail: format!("{}'s digest has no projects: {e}", n.name),
        })?;
        projects.extend(theirs);
        shards.push(n.name.clone());
    }
    Ok(Json(ClusterDigestBody {
        listings_digest: common::store::listing::listings_digest(&projects),
        projects,
        shards,
    }))
}

/// GETs `path` (forwarded, with the caller's token) from one replica of
/// each listing shard's partition set — the first in the map's order that
/// answers 200 —, or names the set none of whose replicas did.
pub(crate) async fn from_each_shard<'a>(
    c: &'a Cluster,
    path: &str,
    headers: &HeaderMap,
) -> Result<Vec<(&'a Node, serde_json::Value)>, ApiError> {
    // The sets asked at once, each set's replicas in turn.
    let asks = c.map.shard_sets().into_iter().map(|replicas| async move {
        let mut why = Vec::new();
        for n in &replicas {
            match get(c, n, path, headers).await {
                Ok((StatusCode::OK, v)) => return Ok((*n, v)),
                Ok((status, v)) => why.push(format!(
                    "{}: {status} {}",
                    n.name,
                    v.get("error_msg").and_then(|m| m.as_str()).unwrap_or("")
                )),
                Err(e) => why.push(format!("{}: {e}", n.name)),
            }
        }
        Err(ApiError::NodeUnavailable {
            node: replicas
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            reason: why.join("; "),
        })
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .collect()
}

/// GETs `path` of `node` (forwarded, with the caller's token when given):
/// its status and JSON body.
async fn get(
    c: &Cluster,
    node: &Node,
    path: &str,
    headers: &HeaderMap,
) -> Result<(StatusCode, serde_json::Value), String> {
    let mut req = Request::new(Body::empty());
    *req.method_mut() = Method::GET;
    *req.uri_mut() = path.parse().map_err(|e| format!("{e}"))?;
    if let Some(t) = headers.get("x-auth-token") {
        req.headers_mut().insert("x-auth-token", t.clone());
    }
    let resp = tokio::time::timeout(std::time::Duration::from_secs(10), c.send(node, req))
        .await
        .map_err(|_| "no answer within 10 s".to_owned())??;
    let status = resp.status();
    let bytes = http_body_util::Limited::new(resp.into_body(), ANSWER_BYTES)
        .collect()
        .await
        .map_err(|e| format!("reading its answer: {e}"))?
        .to_bytes();
    let v = serde_json::from_slice(&bytes).map_err(|e| format!("its answer is not JSON: {e}"))?;
    Ok((status, v))
}
