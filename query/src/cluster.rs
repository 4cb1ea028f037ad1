//! Routing in a cluster (issue 26): any node answers any per-project
//! request. The project's listing shard (Kafka's default partitioner over
//! the changelog's partitions, then the cluster map) answers lists,
//! counts, summaries, stuck, capabilities, the change feed, the export and
//! one record; a record's event trail and its state `as_of` a time are its
//! fold worker's (the one that keeps its event log). A request another
//! node owns is forwarded once, marked so, and answered there or failed —
//! never forwarded again; the token is checked here and again there. An
//! owner that is down or not caught up is a 503 with `Retry-After` naming
//! it (replicas are tried in the map's order first).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, RawPathParams, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use common::cluster::{ClusterMap, Node, Role};

use crate::error::ApiError;
use crate::AppState;

/// Marks a forwarded request, with the name of the node that forwarded it.
pub const FORWARDED: HeaderName = HeaderName::from_static("x-tracker-forwarded");
/// Names the node that answered a forwarded request.
pub const ANSWERED_BY: HeaderName = HeaderName::from_static("x-tracker-node");

/// How long a forward may take to connect: a node that does not accept
/// by then is down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The most of an owner's 503 body read to name why.
const REFUSAL_BYTES: usize = 16 << 10;

/// This node's place in the cluster, and the client it forwards with.
pub struct Cluster {
    pub map: ClusterMap,
    pub node: String,
    pub role: Role,
    client: Client<HttpConnector, Body>,
}

impl Cluster {
    /// `node` must be in the map (checked by the caller with the map).
    pub fn new(map: ClusterMap, node: &str, role: Role) -> Cluster {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        Cluster {
            map,
            node: node.to_owned(),
            role,
            client: Client::builder(TokioExecutor::new()).build(http),
        }
    }

    /// Sends `req` to `node`'s `path_and_query`, marked as forwarded.
    pub(crate) async fn send(&self, node: &Node, mut req: Request) -> Result<Response, String> {
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let uri: Uri = format!("{}{}", node.url.trim_end_matches('/'), path)
            .parse()
            .map_err(|e| format!("bad url {}: {e}", node.url))?;
        *req.uri_mut() = uri;
        let headers = req.headers_mut();
        headers.remove(header::HOST);
        headers.remove(header::CONNECTION);
        headers.insert(
            FORWARDED,
            HeaderValue::from_str(&self.node).map_err(|e| e.to_string())?,
        );
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| format!("unreachable at {}: {}", node.url, source_chain(&e)))?;
        let mut resp = resp.map(Body::new);
        // Hop-by-hop: this connection's own, set again by our server.
        for h in [header::CONNECTION, header::TRANSFER_ENCODING] {
            resp.headers_mut().remove(h);
        }
        Ok(resp)
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Who answers a request: this node, or the owners to forward it to.
enum Owner<'a> {
    Here,
    There(Vec<&'a Node>),
}

/// The owner of a matched route: per-project routes by project, a trail
/// or `as_of` read by record; everything else (the dashboard's files,
/// `/v1/projects`, operator routes, probes) here.
fn owner<'a>(c: &'a Cluster, route: &str, params: &[(&str, &str)], query: &str) -> Owner<'a> {
    let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let Some(project) = param("project_id") else {
        return Owner::Here;
    };
    let by_record = route.ends_with("/{id}/events")
        || (route.ends_with("/{id}")
            && form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "as_of"));
    let owners: Vec<&Node> = match (by_record, param("id")) {
        (true, Some(id)) => c.map.fold_for(id).into_iter().collect(),
        _ => c.map.shards_for(project),
    };
    if owners.iter().any(|n| n.name == c.node) {
        Owner::Here
    } else {
        Owner::There(owners)
    }
}

/// The routing layer: answers here what this node owns, forwards the rest
/// once, after checking the token's scope as the owner will.
pub(crate) async fn route(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(c) = s.cluster.clone() else {
        return next.run(req).await;
    };
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let (mut parts, body) = req.into_parts();
    use axum::extract::FromRequestParts;
    let params = match RawPathParams::from_request_parts(&mut parts, &()).await {
        Ok(p) => p,
        Err(_) => return next.run(Request::from_parts(parts, body)).await,
    };
    let params: Vec<(&str, &str)> = params.iter().collect();
    let query = parts.uri.query().unwrap_or("").to_owned();
    let owners = match owner(&c, &route, &params, &query) {
        Owner::Here => return next.run(Request::from_parts(parts, body)).await,
        Owner::There(owners) => owners,
    };
    if let Some(from) = parts.headers.get(FORWARDED) {
        let from = String::from_utf8_lossy(from.as_bytes()).into_owned();
        return ApiError::Misrouted(from).into_response();
    }
    // The token and its scope, here: a client with no right to the project
    // learns nothing of where it lives.
    let project = params
        .iter()
        .find(|(k, _)| *k == "project_id")
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let checked = crate::access::authenticate(&s, &parts.headers).and_then(|p| {
        p.may_read(&project)
            .then_some(())
            .ok_or_else(|| ApiError::ProjectForbidden(project.chars().take(128).collect()))
    });
    if let Err(e) = checked {
        return e.into_response();
    }
    forward(&c, owners, Request::from_parts(parts, body)).await
}

/// Forwards to the first owner that answers and is caught up; a replica
/// that refuses is passed over for the next. The body of a GET is empty,
/// so the request is rebuilt for each try.
async fn forward(c: &Arc<Cluster>, owners: Vec<&Node>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let mut why: Vec<(String, String)> = Vec::new();
    for node in &owners {
        let mut try_req = Request::new(Body::empty());
        *try_req.method_mut() = parts.method.clone();
        *try_req.uri_mut() = parts.uri.clone();
        *try_req.headers_mut() = parts.headers.clone();
        match c.send(node, try_req).await {
            Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                why.push((node.name.clone(), refusal(resp).await));
            }
            Ok(mut resp) => {
                if let Ok(v) = HeaderValue::from_str(&node.name) {
                    resp.headers_mut().insert(ANSWERED_BY, v);
                }
                return resp;
            }
            Err(e) => why.push((node.name.clone(), e)),
        }
    }
    let node = why
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let reason = match why.as_slice() {
        [] => "the cluster map names no node for it".to_owned(),
        [(_, r)] => r.clone(),
        many => many
            .iter()
            .map(|(n, r)| format!("{n}: {r}"))
            .collect::<Vec<_>>()
            .join("; "),
    };
    ApiError::NodeUnavailable { node, reason }.into_response()
}

/// What an owner's 503 says, in its own words.
async fn refusal(resp: Response) -> String {
    let body = resp.into_body();
    let bytes = match http_body_util::Limited::new(body, REFUSAL_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(_) => return "503".into(),
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("error_msg")?.as_str().map(str::to_owned))
        .unwrap_or_else(|| "503".into())
}
