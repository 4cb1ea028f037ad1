//! The query service: the axum application that answers the replication
//! records API (`spec/api.md`) from the projection store — routes, token
//! authentication, parameter parsing, the one [`ApiError`], health and
//! metrics. It reads the store and the ingest progress; it knows nothing of
//! Kafka.

pub mod auth;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod params;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use common::progress::IngestProgress;
use common::Store;

pub use auth::{hash_token, Auth, TokenConfig};
pub use error::ApiError;
pub use routes::app;

/// Limits that keep one slow or abusive client from starving the others.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub request_timeout: Duration,
    pub max_concurrent: usize,
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_timeout: Duration::from_secs(10),
            max_concurrent: 256,
            max_body_bytes: 16 * 1024,
        }
    }
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub auth: Arc<Auth>,
    /// Present when this process also runs the ingest worker.
    pub ingest: Option<Arc<IngestProgress>>,
    pub metrics: Arc<metrics::Metrics>,
    /// Readiness requires the ingest lag to be at most this many messages.
    pub max_ready_lag: i64,
    pub limits: Limits,
    /// Requests in flight, capped at `limits.max_concurrent`.
    pub inflight: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    pub fn with_limits(mut self, limits: Limits) -> AppState {
        self.inflight = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent));
        self.limits = limits;
        self
    }

    pub fn new(store: Arc<Store>, auth: Auth, ingest: Option<Arc<IngestProgress>>) -> AppState {
        AppState {
            store,
            auth: Arc::new(auth),
            ingest,
            metrics: Arc::default(),
            max_ready_lag: 1000,
            limits: Limits::default(),
            inflight: Arc::new(tokio::sync::Semaphore::new(
                Limits::default().max_concurrent,
            )),
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
