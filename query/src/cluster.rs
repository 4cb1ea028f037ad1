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
use futures_util::StreamExt;
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

/// Headers that belong to one connection (RFC 9110, 7.6.1), never
/// forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

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
        // This connection's own, and the body's (a forward sends none).
        for h in HOP_BY_HOP
            .iter()
            .chain([&header::HOST, &header::CONTENT_LENGTH])
        {
            headers.remove(h);
        }
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
        // That connection's own: ours sets its own.
        for h in &HOP_BY_HOP {
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

/// The owners of a matched route — per-project routes by project, a trail
/// or `as_of` read by record — and whether this node is one; none for
/// everything else (the dashboard's files, `/v1/projects`, operator routes,
/// probes), answered here.
fn owners<'a>(
    c: &'a Cluster,
    route: &str,
    params: &[(&str, &str)],
    query: &str,
) -> Option<(Vec<&'a Node>, bool)> {
    let param = |name: &str| params.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
    let project = param("project_id")?;
    let by_record = route.ends_with("/{id}/events")
        || (route.ends_with("/{id}")
            && form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "as_of"));
    let owners: Vec<&Node> = match (by_record, param("id")) {
        (true, Some(id)) => c.map.fold_for(id).into_iter().collect(),
        _ => c.map.shards_for(project),
    };
    let mine = owners.iter().any(|n| n.name == c.node);
    Some((owners, mine))
}

/// Why this node should not answer for what it owns now: not caught up
/// since start-up, or further behind its topic than `max_ready_lag` (a
/// single node answers from its projection meanwhile; a cluster node hands
/// over to a replica, or says so).
fn behind(s: &AppState) -> Option<String> {
    let p = s.ingest.as_ref()?;
    if !p.serving() {
        return Some("not caught up with its topic since start-up".into());
    }
    let lag = p.snapshot().lag();
    (lag > s.max_ready_lag).then(|| {
        format!(
            "{lag} messages behind its topic (max_ready_lag {})",
            s.max_ready_lag
        )
    })
}

/// The routing layer: answers here what this node owns (and is caught up
/// for), forwards the rest once, after checking the token's scope as the
/// owner will.
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
    let Some((owners, mine)) = owners(&c, &route, &params, &query) else {
        return next.run(Request::from_parts(parts, body)).await;
    };
    let lagging = if mine { behind(&s) } else { None };
    if mine && lagging.is_none() {
        return next.run(Request::from_parts(parts, body)).await;
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
    let why: Vec<(String, String)> = lagging.into_iter().map(|r| (c.node.clone(), r)).collect();
    if let Some(from) = parts.headers.get(FORWARDED) {
        if mine {
            return unavailable(why);
        }
        let from = String::from_utf8_lossy(from.as_bytes()).into_owned();
        return ApiError::Misrouted(from).into_response();
    }
    let others: Vec<&Node> = owners.into_iter().filter(|n| n.name != c.node).collect();
    let budget = s.limits.request_timeout / (others.len() as u32 + 1);
    let req = Request::from_parts(parts, body);
    forward(&c, others, req, why, budget, &s.closing).await
}

/// Forwards to the first owner that answers and is caught up; a replica
/// that refuses is passed over for the next. The body of a GET is empty,
/// so the request is rebuilt for each try.
async fn forward(
    c: &Arc<Cluster>,
    owners: Vec<&Node>,
    req: Request,
    mut why: Vec<(String, String)>,
    budget: Duration,
    closing: &tokio_util::sync::CancellationToken,
) -> Response {
    let (parts, _) = req.into_parts();
    for node in &owners {
        let mut try_req = Request::new(Body::empty());
        *try_req.method_mut() = parts.method.clone();
        *try_req.uri_mut() = parts.uri.clone();
        *try_req.headers_mut() = parts.headers.clone();
        // An owner that accepts but does not answer is passed over too.
        let sent = tokio::time::timeout(budget, c.send(node, try_req))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", budget.as_millis())));
        match sent {
            Ok(resp) if resp.status() == StatusCode::SERVICE_UNAVAILABLE => {
                why.push((node.name.clone(), refusal(resp).await));
            }
            Ok(resp) => {
                // A forwarded stream (a change feed, an export) ends when
                // this node closes, as its own streams do: a stop is not
                // held up by the clients reading through it.
                let (mut head, body) = resp.into_parts();
                if let Ok(v) = HeaderValue::from_str(&node.name) {
                    head.headers.insert(ANSWERED_BY, v);
                }
                let body = body
                    .into_data_stream()
                    .take_until(closing.clone().cancelled_owned());
                return Response::from_parts(head, Body::from_stream(body));
            }
            Err(e) => why.push((node.name.clone(), e)),
        }
    }
    unavailable(why)
}

/// The 503 naming every owner tried and why each could not answer.
fn unavailable(why: Vec<(String, String)>) -> Response {
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
