//! The serving modes (`run`, `ingest`, `query`): the ingest worker and the
//! query service over one store, as tasks of one process. Everything that
//! can be refused — tokens, thresholds, the listen address — is checked, and
//! the socket bound, before the store opens or ingest starts: a bad setting
//! stops the process with its reason instead of leaving half of it running.
//! Once running, the end of either part (an error, a panic) ends the whole.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cluster::{ClusterArgs, Place};
use crate::config::{FileConfig, HttpArgs, KafkaArgs, StoreArgs};
use common::cluster::Role;
use common::progress::IngestProgress;
use common::Store;
use query::{AppState, Auth, TokenConfig};

/// Which parts run.
pub enum Mode {
    Run {
        store: StoreArgs,
        kafka: KafkaArgs,
        http: HttpArgs,
        cluster: ClusterArgs,
    },
    Ingest {
        store: StoreArgs,
        kafka: KafkaArgs,
    },
    Query {
        store: StoreArgs,
        http: HttpArgs,
    },
}

impl Mode {
    fn parts(&self) -> (&StoreArgs, Option<&KafkaArgs>, Option<&HttpArgs>) {
        match self {
            Mode::Run {
                store, kafka, http, ..
            } => (store, Some(kafka), Some(http)),
            Mode::Ingest { store, kafka } => (store, Some(kafka), None),
            Mode::Query { store, http } => (store, None, Some(http)),
        }
    }
}

/// The query service, its settings resolved and checked and its socket
/// bound, waiting for its store.
struct Http {
    listener: tokio::net::TcpListener,
    auth: Auth,
    limits: query::Limits,
    stuck: query::StuckPolicy,
    cors: Vec<axum::http::HeaderValue>,
    max_ready_lag: i64,
    startup_grace: Duration,
}

impl Http {
    async fn prepare(
        h: &HttpArgs,
        file: &FileConfig,
        tokens: &[TokenConfig],
    ) -> anyhow::Result<Http> {
        let auth = Auth::new(tokens).context("the [[tokens]] of the config file")?;
        if auth.is_empty() {
            warn!("no tokens configured: every /v1 request will be refused (add [[tokens]] to the config file)");
        }
        for name in auth.example_tokens() {
            warn!(token = name, "TOKEN `{name}` IS THE EXAMPLE CONFIG'S PUBLISHED TOKEN: anyone can use it. Make your own with `tracker hash-token` and replace its sha256");
        }
        let (stuck, cors) = (h.stuck(file)?, h.cors_origins(file)?);
        let addr = h.listen(file);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("binding {addr} (--listen, TRACKER_LISTEN, http.listen)"))?;
        Ok(Http {
            listener,
            auth,
            limits: h.limits(file),
            stuck,
            cors,
            max_ready_lag: h.max_ready_lag(file),
            startup_grace: h.startup_grace(file),
        })
    }
}

/// How long start-up asks the broker about the topic's settings before
/// going on without an answer.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn run(file: FileConfig, mode: Mode) -> anyhow::Result<()> {
    let signals = crate::process::StopSignals::register();
    let (store_args, kafka, http) = mode.parts();
    let place = match &mode {
        Mode::Run { cluster, .. } => cluster.place(&file)?,
        _ => None,
    };
    let brokers = kafka.and_then(|k| k.brokers(&file));
    let embedded = kafka.is_some() && brokers.is_none();
    if let (Some(p), true) = (&place, embedded) {
        anyhow::bail!(
            "cluster node `{}` needs --brokers (TRACKER_BROKERS, kafka.brokers): a cluster shares only Kafka",
            p.node.name
        );
    }
    // A listing shard consumes the changelog, not the events topic.
    let topic = |k: &KafkaArgs| match &place {
        Some(p) if p.role == Role::Shard => p.map.changelog_topic.clone(),
        _ => k.topic(&file),
    };
    if embedded && http.is_none() {
        anyhow::bail!(
            "ingest needs --brokers (TRACKER_BROKERS, kafka.brokers): the embedded demo runs only with `run`"
        );
    }
    // A config file with tokens is a deployment: serving the demo's fake
    // records to its tokens, with a new scope-* token beside them, would
    // hide a missing broker setting.
    if embedded && !file.tokens.is_empty() {
        anyhow::bail!(
            "no brokers configured (--brokers, TRACKER_BROKERS, kafka.brokers), but the config file configures tokens: \
             the embedded demo runs only without configured tokens; set the brokers"
        );
    }
    // A topic that must not be consumed is refused before the port is
    // bound and the store created, when the broker answers at once; one
    // that is down is no reason to wait: the worker checks when it can.
    if let (Some(k), Some(b)) = (kafka, &brokers) {
        let (b, topic) = (b.clone(), topic(k));
        tokio::task::spawn_blocking(move || {
            ingest::topic_config::check(&b, &topic, PREFLIGHT_TIMEOUT)
        })
        .await??;
    }
    let mut tokens: Vec<TokenConfig> = file.tokens.clone();
    let demo_token = embedded.then(crate::process::new_token);
    if let Some(t) = &demo_token {
        tokens.push(TokenConfig {
            name: "demo".into(),
            sha256: hex::encode(query::hash_token(t)),
            projects: vec!["*".into()],
        });
    }
    // A store in use is said before the port is bound (a second tracker
    // held its port, answering nothing, until it found out).
    if !embedded {
        let dir = store_args.data_dir(&file);
        Store::check_not_in_use(&dir)
            .with_context(|| format!("opening the store in {}", dir.display()))?;
    }
    let http = match http {
        Some(h) => Some(Http::prepare(h, &file, &tokens).await?),
        None => None,
    };

    // The embedded demo: an in-memory broker, so the projection is in memory
    // too (its offsets restart at 0 on every start).
    let mut _demo_broker = None;
    let (store, brokers) = match (kafka, brokers) {
        (Some(k), None) => {
            let (broker, bootstrap) = start_demo(&k.topic(&file), store_args, &file).await?;
            _demo_broker = Some(broker);
            (Arc::new(Store::temporary()?), Some(bootstrap))
        }
        (_, brokers) => {
            let dir = store_args.data_dir(&file);
            // Ingest builds a store; the query service alone serves one.
            let open = match kafka {
                Some(_) => Store::open,
                None => Store::open_read_only,
            };
            let store = open(&dir, store_args.cache_bytes(&file))
                .with_context(|| format!("opening the store in {}", dir.display()))?;
            if let (Some(_), Some(t)) = (kafka, store.until()) {
                anyhow::bail!(
                    "the store in {} is the projection as of {} (made by `tracker replay --until`): \
                     ingest would fold later events into it; serve it read-only with `tracker \
                     query --data-dir {}`",
                    dir.display(),
                    t.render(),
                    dir.display()
                );
            }
            if let Some(p) = place.as_ref().filter(|p| p.role == Role::Shard) {
                let (owned, partitions) = p.partitions();
                let listing = common::store::listing::Listing {
                    partitions,
                    owned: owned.into_iter().map(|p| p as u32).collect(),
                };
                store
                    .bind_listing(&listing)
                    .with_context(|| format!("listing shard `{}`", p.node.name))?;
            }
            if let (
                Some(l),
                None
                | Some(Place {
                    role: Role::Fold, ..
                }),
                Some(_),
            ) = (store.listing(), &place, kafka)
            {
                anyhow::bail!(
                    "the store in {} is a listing shard's (changelog partitions {}): it folds no events; \
                     give this node its own data directory",
                    dir.display(),
                    l.describe()
                );
            }
            if let Some(p) = place.as_ref().filter(|p| p.role == Role::Fold) {
                store.fold_partitions(p.map.events_partitions);
            }
            info!(data_dir = %dir.display(), records = store.totals().records, "store open");
            (Arc::new(store), brokers)
        }
    };
    store
        .feed()
        .set_change_retention(store_args.change_retention(&file));
    store.set_memtable_bytes(store_args.memtable_bytes(&file));

    let cancel = CancellationToken::new();
    let progress = kafka.map(|k| Arc::new(IngestProgress::new(&topic(k))));
    let worker = match (kafka, &brokers, &progress) {
        (Some(k), Some(b), Some(p)) => {
            let mut cfg = k.ingest_config(&file, b);
            // The demo's in-memory broker does not answer DescribeConfigs
            // (a 5 s wait for nothing), and its topic is ours.
            cfg.check_topic_settings = !embedded;
            cfg.topic = topic(k);
            cfg.partitions = place.as_ref().map(Place::partitions);
            let mut w = ingest::Worker::new(cfg, store.clone(), p.clone())?;
            if let Some(p) = place.as_ref().filter(|p| p.role == Role::Fold) {
                let m = &p.map;
                w = w.publishing(ingest::changelog::Publisher::new(
                    b,
                    &m.changelog_topic,
                    m.changelog_partitions,
                )?);
                info!(node = %p.node.name, partitions = ?p.node.partitions, changelog = %m.changelog_topic, "fold worker");
            }
            let c = cancel.clone();
            // A thread of its own: it runs at the background's priority.
            let (done, ended) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("ingest".into())
                .spawn(move || {
                    // The worker's end, returned or panicked, ends the process.
                    let _end = c.clone().drop_guard();
                    common::priority::Background::default().keep();
                    let _ = done.send(w.run(c));
                })?;
            Some(ended)
        }
        _ => None,
    };
    let server = match http {
        Some(h) => Some(serve(
            h,
            &file,
            store.clone(),
            progress.clone(),
            &cancel,
            demo_token.as_deref(),
            place.clone(),
        )?),
        None => None,
    };
    if let (true, Some(b), Some(k)) = (embedded, &brokers, kafka) {
        let (b, t, c) = (b.clone(), k.topic(&file), cancel.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = ingest::embedded::trickle(&b, &t, &c) {
                warn!(error = %e, "the demo's live trickle stopped");
            }
        });
    }

    tokio::select! {
        _ = signals.recv() => info!("shutdown requested"),
        _ = cancel.cancelled() => {}
    }
    cancel.cancel();
    // The first failure is what the process reports; later ones are logged.
    let mut failed: Option<anyhow::Error> = None;
    let mut fail = |e: anyhow::Error| match &failed {
        None => failed = Some(e),
        Some(_) => error!(error = %e, "also failed"),
    };
    if let Some(s) = server {
        match tokio::time::timeout(Duration::from_secs(15), s).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => fail(anyhow::anyhow!("the query service failed: {e}")),
            Ok(Err(e)) => fail(anyhow::anyhow!("the query service panicked: {e}")),
            Err(_) => warn!("query service did not drain within 15 s"),
        }
    }
    let mut stuck = false;
    if let Some(w) = worker {
        match tokio::time::timeout(Duration::from_secs(30), w).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => fail(anyhow::anyhow!("the ingest worker failed: {e}")),
            Ok(Err(_)) => fail(anyhow::anyhow!(
                "the ingest worker panicked (its message is on stderr above)"
            )),
            // Not back from a store write (sled can block its writers on a
            // full disk): the process ends anyway, naming why.
            Err(_) => fail({
                stuck = true;
                match progress.as_ref().and_then(|p| p.snapshot().store_error) {
                    Some(e) => anyhow::anyhow!(
                        "the ingest worker did not stop within 30 s; its last store error: {e}"
                    ),
                    None => anyhow::anyhow!("the ingest worker did not stop within 30 s"),
                }
            }),
        }
    }
    // A stuck worker holds the writer (and sled may block any write): a
    // flush would wait for it. What the worker wrote before is in sled's
    // log; what it was writing is not checkpointed, so a restart redoes it.
    if !stuck {
        if let Err(e) = store.close() {
            fail(anyhow::anyhow!("the final flush failed: {e}"));
        }
    }
    match failed {
        Some(e) => {
            error!(error = %e, "stopped");
            Err(e)
        }
        None => {
            info!("stopped");
            Ok(())
        }
    }
}

/// Starts the demo broker and publishes the sample stream to it.
async fn start_demo(
    topic: &str,
    store_args: &StoreArgs,
    file: &FileConfig,
) -> anyhow::Result<(ingest::embedded::EmbeddedBroker, String)> {
    warn!("NO BROKERS CONFIGURED: starting the EMBEDDED DEMO broker (librdkafka mock cluster). It keeps everything in memory and is NOT DURABLE. Set --brokers / TRACKER_BROKERS for real use.");
    if store_args.data_dir.is_some() || file.data_dir.is_some() {
        warn!("the embedded demo keeps its projection in memory: the configured data directory is not used");
    }
    let broker = ingest::embedded::EmbeddedBroker::start(topic, 3)?;
    let bootstrap = broker.bootstrap_servers();
    let sample = ingest::embedded::sample_messages();
    let (b, t) = (bootstrap.clone(), topic.to_owned());
    let n =
        tokio::task::spawn_blocking(move || ingest::publish::publish(&b, &t, &sample)).await??;
    info!(
        messages = n,
        topic, "published the built-in sample stream to the embedded broker"
    );
    Ok((broker, bootstrap))
}

/// Starts the query service on its bound socket. Its end cancels `cancel`.
fn serve(
    h: Http,
    file: &FileConfig,
    store: Arc<Store>,
    progress: Option<Arc<IngestProgress>>,
    cancel: &CancellationToken,
    demo_token: Option<&str>,
    place: Option<Place>,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let Http {
        listener,
        auth,
        limits,
        stuck,
        cors,
        max_ready_lag,
        startup_grace: grace,
    } = h;
    if let Some(p) = progress.as_ref().filter(|_| grace.is_zero()) {
        // No grace: serving as is from the first request (a timer, even of
        // 0 s, would let the first requests through as not ready).
        p.end_grace();
    } else if let Some(p) = &progress {
        let p = p.clone();
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            if !p.caught_up_once() {
                warn!(grace_secs = grace.as_secs(), lag = p.snapshot().lag(), "ingest has not caught up after the start-up grace; serving the projection as is");
            }
            p.end_grace();
        });
    }
    let mut state = AppState::new(store, auth, progress)
        .with_limits(limits)
        .with_regions(file.regions.clone())
        .with_stuck(stuck)
        .with_cors(cors)
        .with_closing(cancel.clone());
    state.max_ready_lag = max_ready_lag;
    if let Some(p) = place {
        info!(node = %p.node.name, role = p.role.as_str(), "cluster node: requests other nodes own are forwarded to them");
        state = state.with_cluster(query::cluster::Cluster::new(p.map, &p.node.name, p.role));
    }
    let addr = listener.local_addr()?;
    info!(%addr, "query service listening");
    if let Some(t) = demo_token {
        println!();
        println!("  replication tracker demo is up: http://{addr}");
        println!("  dashboard: http://{addr}/#token={t}");
        println!("  demo token (scope *): {t}");
        println!("  try: curl -H 'X-Auth-Token: {t}' 'http://{addr}/v1/{}/replication_records?limit=5&with_count=true'", common::sample::project_id(0));
        println!();
    }
    let c = cancel.clone();
    let stop = cancel.clone();
    Ok(tokio::spawn(async move {
        let r = query::serve(listener, state, async move { stop.cancelled().await }).await;
        c.cancel(); // the service ended: so does the process
        r
    }))
}
