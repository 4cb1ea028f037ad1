//! The query service: the axum application that answers the replication
//! records API (`docs/api.md`) from the projection store — routes, token
//! authentication, parameter parsing, the one [`ApiError`], health and
//! metrics, the change feed and the dashboard page. It reads the store and
//! the ingest progress; it knows nothing of Kafka.

mod access;
mod admin;
mod app;
pub mod auth;
pub mod bodies;
pub mod cluster;
mod dashboard;
pub mod error;
mod export;
mod feed;
mod layers;
mod lenient;
pub mod metrics;
pub mod openapi;
pub mod params;
mod routes;
mod send_timeout;
pub mod stuck;
mod web;

use std::sync::Arc;
use std::time::Duration;

use common::progress::IngestProgress;
use common::Store;

pub use app::app;
pub use auth::{hash_token, Auth, TokenConfig};
pub use bodies::RegionBody;
pub use error::ApiError;
pub use stuck::StuckPolicy;

/// Readiness fails above this ingest lag, in messages, unless configured.
pub const DEFAULT_MAX_READY_LAG: i64 = 1000;

/// The send timeout unless configured (nginx's default is 60 s; a feed's
/// client that stops reading holds a slot this long once its buffers fill).
pub const DEFAULT_SEND_TIMEOUT_SECS: u64 = 30;

/// Limits that keep one slow or abusive client from starving the others.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A handler taking longer answers 408.
    pub request_timeout: Duration,
    /// Requests in flight; more answer 503 at once rather than queue.
    pub max_concurrent: usize,
    pub max_body_bytes: usize,
    /// A client must finish sending its request head within this time, or
    /// its connection is closed (slow-header clients hold no slot for long).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers); more answers 431.
    pub max_header_bytes: usize,
    /// Change-feed streams open at once; more answer 503. Streams are not
    /// requests in flight: they have no timeout and their own cap.
    pub max_streams: usize,
    /// A change feed sends a comment this often when it has nothing else,
    /// so proxies and clients see it alive.
    pub keep_alive: Duration,
    /// A connection whose client accepts no output for this long is closed
    /// (a stalled change feed frees its slot), like nginx's `send_timeout`.
    pub send_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            request_timeout: Duration::from_secs(10),
            max_concurrent: 256,
            max_body_bytes: 16 * 1024,
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 32 * 1024,
            max_streams: 256,
            keep_alive: Duration::from_secs(15),
            send_timeout: Duration::from_secs(DEFAULT_SEND_TIMEOUT_SECS),
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
    /// `[[regions]]` from the config: the replication capabilities to
    /// report instead of those observed in the records.
    pub regions: Option<Arc<Vec<RegionBody>>>,
    /// What `stuck=` means, and the clock it is measured against.
    pub stuck: StuckPolicy,
    /// Change-feed streams open, capped at `limits.max_streams`.
    pub streams: Arc<tokio::sync::Semaphore>,
    /// Cancelled at shutdown: open change feeds end.
    pub closing: tokio_util::sync::CancellationToken,
    /// Origins whose pages may call the API from a browser (CORS); none by
    /// default.
    pub cors_origins: Arc<Vec<axum::http::HeaderValue>>,
    /// This node's place in a cluster (none: a single node).
    pub cluster: Option<Arc<cluster::Cluster>>,
}

impl AppState {
    pub fn with_limits(mut self, limits: Limits) -> AppState {
        self.inflight = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent));
        self.streams = Arc::new(tokio::sync::Semaphore::new(limits.max_streams));
        self.limits = limits;
        self
    }

    pub fn new(store: Arc<Store>, auth: Auth, ingest: Option<Arc<IngestProgress>>) -> AppState {
        AppState {
            store,
            auth: Arc::new(auth),
            ingest,
            metrics: Arc::default(),
            max_ready_lag: DEFAULT_MAX_READY_LAG,
            limits: Limits::default(),
            inflight: Arc::new(tokio::sync::Semaphore::new(
                Limits::default().max_concurrent,
            )),
            regions: None,
            stuck: StuckPolicy::default(),
            streams: Arc::new(tokio::sync::Semaphore::new(Limits::default().max_streams)),
            closing: Default::default(),
            cors_origins: Arc::default(),
            cluster: None,
        }
    }

    /// Lets pages from these origins call the API (`https://dash.example`).
    pub fn with_cors(mut self, origins: Vec<axum::http::HeaderValue>) -> AppState {
        self.cors_origins = Arc::new(origins);
        self
    }

    /// Ends the open change feeds when `closing` is cancelled.
    pub fn with_closing(mut self, closing: tokio_util::sync::CancellationToken) -> AppState {
        self.closing = closing;
        self
    }

    pub fn with_cluster(mut self, cluster: cluster::Cluster) -> AppState {
        self.cluster = Some(Arc::new(cluster));
        self
    }

    pub fn with_stuck(mut self, stuck: StuckPolicy) -> AppState {
        self.stuck = stuck;
        self
    }

    /// Reports these replication capabilities (`[[regions]]`) instead of
    /// the observed ones; an empty list means "observe".
    pub fn with_regions(mut self, regions: Vec<RegionBody>) -> AppState {
        self.regions = (!regions.is_empty()).then(|| Arc::new(regions));
        self
    }
}

/// Serves [`app`] over HTTP/1.1 on `listener` until `shutdown` resolves,
/// then lets open connections finish (at most 10 s). Each connection gets the
/// head-size, head-timeout and send-timeout limits (stalls counted in the
/// metrics); the router adds the per-request ones.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let (limits, metrics) = (state.limits, state.metrics.clone());
    let router = app(state);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                // Out of file descriptors and the like: back off, keep serving.
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            // Twice the documented limit: up to it the router answers 431 in
            // the API's error shape; beyond, hyper answers 431 by itself.
            .max_buf_size((2 * limits.max_header_bytes).max(8192));
        let conn = builder.serve_connection(
            TokioIo::new(send_timeout::SendTimeout::new(
                lenient::Lenient::new(stream),
                limits.send_timeout,
                metrics.clone(),
                peer,
            )),
            // The client's address, for the access log.
            TowerToHyperService::new(
                tower::ServiceBuilder::new()
                    .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                        req.extensions_mut()
                            .insert(axum::extract::ConnectInfo(peer));
                        req
                    })
                    .service(router.clone()),
            ),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("open connections did not finish within 10 s");
    }
    Ok(())
}
