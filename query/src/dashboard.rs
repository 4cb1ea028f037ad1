//! The dashboard's endpoints beside the list: summaries (counts by status
//! and regions, per hour or day) and replication capabilities (the seed's
//! `region` structure). Both are answered from counts; only `stuck` makes
//! summaries read records, the few stuck ones.

use std::collections::BTreeMap;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;

use crate::access::{authenticate, authorize, blocking, path_error, serving, ApiResult};
use crate::bodies::{
    CapabilitiesBody, ErrorBody, ProjectsBody, RegionBody, SummariesBody, SummaryItem,
    SummaryParams,
};
use crate::{params, AppState};
use common::store::GroupField;
use common::Status;

/// Counts of a project's records by status and regions, per hour or day.
#[utoipa::path(get, path = "/v1/{project_id}/replication_summaries", tag = "dashboard",
    params(("project_id" = String, Path, description = "Project id"), SummaryParams),
    security(("token" = [])),
    responses(
        (status = 200, body = SummariesBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn summaries(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> ApiResult<SummariesBody> {
    let principal = authenticate(&s, &headers)?;
    let Path(project) = path.map_err(path_error)?;
    authorize(&s, principal, &project)?;
    let q = params::parse_summary(raw.as_deref(), &s.stuck)?;
    let group_by = q.group_by.clone();
    let rows = blocking(&s.store, move |st| Ok(st.view().summaries(&project, &q)?)).await?;
    let mut body = SummariesBody {
        summaries: Vec::with_capacity(rows.len()),
        total: 0,
    };
    for row in rows {
        let mut item = SummaryItem {
            status: None,
            source_region: None,
            destination_region: None,
            start: row.start.map(|t| t.render()),
            count: row.count,
        };
        for (f, v) in group_by.iter().zip(row.group) {
            match f {
                GroupField::Status => item.status = v.as_deref().and_then(Status::parse),
                GroupField::SourceRegion => item.source_region = Some(v),
                GroupField::DestinationRegion => item.destination_region = Some(v),
            }
        }
        body.total += row.count;
        body.summaries.push(item);
    }
    Ok(Json(body))
}

/// Which regions replicate to which: from `[[regions]]` in the config when
/// given, else from the source → destination pairs seen in the project.
#[utoipa::path(get, path = "/v1/{project_id}/replication_capabilities", tag = "dashboard",
    params(("project_id" = String, Path, description = "Project id")),
    security(("token" = [])),
    responses(
        (status = 200, body = CapabilitiesBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn capabilities(
    State(s): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<CapabilitiesBody> {
    let principal = authenticate(&s, &headers)?;
    let Path(project) = path.map_err(path_error)?;
    authorize(&s, principal, &project)?;
    let mut regions = match &s.regions {
        Some(configured) => configured.to_vec(),
        None => {
            let pairs = blocking(&s.store, move |st| Ok(st.view().region_pairs(&project)?)).await?;
            let mut by_source: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (src, dst) in pairs {
                by_source.entry(src).or_default().push(dst);
            }
            by_source
                .into_iter()
                .map(|(name, replication_destinations)| RegionBody {
                    name,
                    replication_destinations,
                })
                .collect()
        }
    };
    regions.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(CapabilitiesBody { regions }))
}

/// [`capabilities`] at the path Huawei Cloud's backup service serves it
/// (`ShowReplicationCapabilities`), which its SDKs call: the same body,
/// token rules and errors. The SDKs' signing headers (`Authorization:
/// SDK-HMAC-SHA256 …`, `X-Sdk-Date`) are neither required nor refused.
#[utoipa::path(get, path = "/v3/{project_id}/replication-capabilities", tag = "dashboard",
    params(("project_id" = String, Path, description = "Project id")),
    security(("token" = [])),
    responses(
        (status = 200, body = CapabilitiesBody),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn cloud_capabilities(
    state: State<AppState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<CapabilitiesBody> {
    capabilities(state, path, headers).await
}

/// The projects the token may read that have records, sorted: the
/// dashboard's project picker.
#[utoipa::path(get, path = "/v1/projects", tag = "dashboard",
    security(("token" = [])),
    responses(
        (status = 200, body = ProjectsBody),
        (status = 401, body = ErrorBody), (status = 500, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn projects(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<ProjectsBody> {
    let principal = authenticate(&s, &headers)?.clone();
    // In a cluster each listing shard knows its own projects: asked once
    // each (a forwarded request answers for this node alone).
    if let Some(c) = s.cluster.clone() {
        if !headers.contains_key(crate::cluster::FORWARDED) {
            let mut all = std::collections::BTreeSet::new();
            for (_, v) in crate::admin::from_each_shard(&c, "/v1/projects", &headers).await? {
                let theirs = v["projects"].as_array().cloned().unwrap_or_default();
                all.extend(
                    theirs
                        .into_iter()
                        .filter_map(|p| p.as_str().map(str::to_owned)),
                );
            }
            return Ok(Json(ProjectsBody {
                projects: all.into_iter().collect(),
            }));
        }
    }
    serving(&s)?;
    let projects = blocking(&s.store, move |st| {
        Ok(st
            .view()
            .projects()?
            .into_iter()
            .filter(|p| principal.may_read(p))
            .collect())
    })
    .await?;
    Ok(Json(ProjectsBody { projects }))
}
