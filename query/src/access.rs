//! What every handler does before its own work: authenticate, check the
//! project scope and that the projection is serving, name a bad path, and
//! run store reads on the blocking pool. Authentication comes first, so
//! 401/403 never reveal whether a record exists.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::http::HeaderMap;
use axum::Json;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::AppState;
use common::Store;

pub(crate) fn authenticate<'a>(
    s: &'a AppState,
    headers: &HeaderMap,
) -> Result<&'a Principal, ApiError> {
    s.auth.authenticate(headers)
}

/// Checks the project scope and that the projection is serving.
pub(crate) fn authorize(s: &AppState, p: &Principal, project: &str) -> Result<(), ApiError> {
    if !p.may_read(project) {
        return Err(ApiError::ProjectForbidden(
            project.chars().take(128).collect(),
        ));
    }
    serving(s)
}

/// Until ingest has caught up once after start-up (or the start-up grace
/// elapsed), lists would be misleading.
pub(crate) fn serving(s: &AppState) -> Result<(), ApiError> {
    match &s.ingest {
        Some(p) if !p.serving() => Err(ApiError::NotReady),
        _ => Ok(()),
    }
}

pub(crate) fn path_error(e: PathRejection) -> ApiError {
    ApiError::invalid(
        "project_id",
        format!(
            "bad path: {}",
            e.body_text().chars().take(100).collect::<String>()
        ),
    )
}

pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::Failed {
            unavailable: false,
            detail: format!("a store read panicked: {e}"),
        })?
}

/// One of the `max_streams` slots change feeds and exports share, held
/// until the stream ends; none free is a 503.
pub(crate) fn stream_slot(s: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    s.streams
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::TooManyStreams(s.limits.max_streams))
}

pub(crate) type ApiResult<T> = Result<Json<T>, ApiError>;
