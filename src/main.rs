//! `tracker`: the replication tracker's one binary. By default it runs the
//! ingest worker and the query service as two tasks of one process over one
//! store (sled locks its directory, so they cannot be two processes); each can
//! also run alone. Also: replay, verify, publish and token hashing.

mod config;

// sled copies tree nodes on every insert: allocation is a large share of the
// apply path, and mimalloc is markedly faster at it than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rand::Rng;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use common::progress::IngestProgress;
use common::Store;
use config::{FileConfig, HttpArgs, KafkaArgs, StoreArgs};
use query::{AppState, Auth, TokenConfig};

#[derive(Parser)]
#[command(name = "tracker", version, about = "Event-sourced replication tracker")]
struct Cli {
    /// TOML config file (see config/tracker.example.toml). Flags and env vars win over it.
    #[arg(long, env = "TRACKER_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Ingest and query in one process (the default). Without brokers: the embedded demo.
    Run {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Only the ingest worker (headless).
    Ingest {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Only the query service, over an existing store (e.g. a frozen copy for an audit).
    Query {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Rebuild the projection from the start of the topic into a fresh directory; print its digest.
    Replay {
        /// Fresh (absent or empty) directory for the rebuilt store.
        #[arg(long)]
        out: PathBuf,
        /// sled page cache of the rebuilt store in MiB. Default: 512
        #[arg(long, env = "TRACKER_CACHE_MB")]
        cache_mb: Option<u64>,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Compare a store with another store, or with a fresh replay of the topic.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// The other store's directory.
        #[arg(long, conflicts_with = "replay")]
        against: Option<PathBuf>,
        /// Compare with a fresh replay of the topic instead.
        #[arg(long)]
        replay: bool,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Print a store's digest and totals (the tracker must not be running on it).
    Digest {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Publish a JSON-lines file of events to the topic, keyed by record_id.
    Publish {
        /// JSON-lines file; `-` reads standard input.
        file: PathBuf,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Print the SHA-256 to put in the config for a token (or generate a new token).
    HashToken {
        /// The token; omitted = generate a random one.
        token: Option<String>,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    common::telemetry::init();
    let cli = Cli::parse();
    let file = FileConfig::load(cli.config.as_deref())?;
    // The default command reads every setting as `run` does (flags aside).
    let command = cli.command.unwrap_or_else(|| Command::Run {
        store: StoreArgs::parse_env(),
        kafka: KafkaArgs::parse_env(),
        http: HttpArgs::parse_env(),
    });
    let done = match command {
        Command::Run { store, kafka, http } => {
            runtime()?.block_on(run(file, Some(store), Some(kafka), Some(http)))
        }
        Command::Ingest { store, kafka } => {
            runtime()?.block_on(run(file, Some(store), Some(kafka), None))
        }
        Command::Query { store, http } => {
            runtime()?.block_on(run(file, Some(store), None, Some(http)))
        }
        Command::Replay {
            out,
            cache_mb,
            kafka,
            quiet,
        } => {
            let brokers = kafka.brokers(&file).context("replay needs --brokers")?;
            let cache = StoreArgs {
                data_dir: None,
                cache_mb,
                change_retention: None,
            }
            .cache_bytes(&file);
            let r = ingest::replay::replay(
                kafka.ingest_config(&file, &brokers),
                &out,
                cache,
                !quiet,
                &shutdown_token()?,
            )?;
            println!("digest {}", r.digest);
            println!(
                "records {} applied {} duplicates {} quarantined {}",
                r.records, r.applied, r.duplicates, r.quarantined
            );
            Ok(())
        }
        Command::Verify {
            store,
            against,
            replay,
            kafka,
        } => return verify(&file, &store, against, replay, &kafka),
        Command::Digest { store } => {
            let s = Store::open(&store.data_dir(&file), store.cache_bytes(&file))?;
            let t = s.totals();
            println!("digest {}", s.digest()?);
            println!(
                "records {} applied {} duplicates {} quarantined {}",
                t.records, t.applied, t.duplicates, t.quarantined
            );
            Ok(())
        }
        Command::Publish { file: path, kafka } => {
            let brokers = kafka.brokers(&file).context("publish needs --brokers")?;
            let text = if path.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
            };
            let n = ingest::publish::publish(
                &brokers,
                &kafka.topic(&file),
                &ingest::publish::read_lines(&text),
            )?;
            println!("published {n} messages to {}", kafka.topic(&file));
            Ok(())
        }
        Command::HashToken { token } => {
            let token = token.unwrap_or_else(new_token);
            println!("token  {token}");
            println!("sha256 {}", hex::encode(query::hash_token(&token)));
            Ok(())
        }
    };
    done.map(|()| ExitCode::SUCCESS)
}

trait ParseEnv {
    fn parse_env() -> Self;
}

/// Bare `tracker` = `tracker run` with flags from the environment only.
impl<T: clap::Args> ParseEnv for T {
    fn parse_env() -> T {
        #[derive(Parser)]
        struct Wrap<A: clap::Args> {
            #[command(flatten)]
            a: A,
        }
        Wrap::<T>::parse_from(["tracker"]).a
    }
}

/// Store reads run on the blocking pool. Tokio's default of 512 threads lets
/// a burst of requests spawn hundreds, each keeping its own allocator caches;
/// a few threads per core serve a CPU-bound store just as fast.
const BLOCKING_THREADS: usize = 16;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()?)
}

fn new_token() -> String {
    hex::encode(rand::rng().random::<[u8; 24]>())
}

/// A token cancelled by ctrl-c or SIGTERM (for the synchronous commands).
fn shutdown_token() -> anyhow::Result<CancellationToken> {
    let token = CancellationToken::new();
    let rt = runtime()?;
    let t = token.clone();
    std::thread::spawn(move || {
        rt.block_on(async move {
            wait_for_signal().await;
            t.cancel()
        })
    });
    Ok(token)
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run(
    file: FileConfig,
    store_args: Option<StoreArgs>,
    kafka: Option<KafkaArgs>,
    http: Option<HttpArgs>,
) -> anyhow::Result<()> {
    let store_args = store_args.expect("every mode has a store");
    let brokers = kafka.as_ref().and_then(|k| k.brokers(&file));
    let embedded_mode = kafka.is_some() && brokers.is_none();
    let mut tokens: Vec<TokenConfig> = file.tokens.clone();
    let mut demo_token = None;

    // The embedded demo: an in-memory broker, so the projection is in memory too
    // (its offsets restart at 0 on every start).
    let mut _embedded = None;
    let (store, brokers) = if embedded_mode {
        warn!("NO BROKERS CONFIGURED: starting the EMBEDDED DEMO broker (librdkafka mock cluster). It keeps everything in memory and is NOT DURABLE. Set --brokers / TRACKER_BROKERS for real use.");
        let topic = kafka.as_ref().expect("kafka args").topic(&file);
        let broker = ingest::embedded::EmbeddedBroker::start(&topic, 3)?;
        let bootstrap = broker.bootstrap_servers();
        let sample = ingest::embedded::sample_messages();
        let (b, t) = (bootstrap.clone(), topic.clone());
        let n = tokio::task::spawn_blocking(move || ingest::publish::publish(&b, &t, &sample))
            .await??;
        info!(
            messages = n,
            topic, "published the built-in sample stream to the embedded broker"
        );
        _embedded = Some(broker);
        let token = new_token();
        tokens.push(TokenConfig {
            name: "demo".into(),
            sha256: hex::encode(query::hash_token(&token)),
            projects: vec!["*".into()],
        });
        demo_token = Some(token);
        (Arc::new(Store::temporary()?), Some(bootstrap))
    } else {
        let dir = store_args.data_dir(&file);
        let store = Store::open(&dir, store_args.cache_bytes(&file)).with_context(|| {
            format!(
                "opening the store in {} (is another tracker using it?)",
                dir.display()
            )
        })?;
        info!(data_dir = %dir.display(), records = store.totals().records, "store open");
        (Arc::new(store), brokers)
    };

    store.set_change_retention(store_args.change_retention(&file));
    let cancel = CancellationToken::new();
    let progress = kafka
        .as_ref()
        .map(|k| Arc::new(IngestProgress::new(&k.topic(&file))));

    if let (true, Some(b), Some(k)) = (embedded_mode, &brokers, &kafka) {
        let (b, t, c) = (b.clone(), k.topic(&file), cancel.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = ingest::embedded::trickle(&b, &t, &c) {
                warn!(error = %e, "the demo's live trickle stopped");
            }
        });
    }

    let worker = match (&kafka, &brokers, &progress) {
        (Some(k), Some(b), Some(p)) => {
            let w = ingest::Worker::new(k.ingest_config(&file, b), store.clone(), p.clone())?;
            let c = cancel.clone();
            Some(tokio::task::spawn_blocking(move || w.run(c)))
        }
        _ => None,
    };

    let server = match &http {
        Some(h) => {
            let auth = Auth::new(&tokens)?;
            if auth.is_empty() {
                warn!("no tokens configured: every /v1 request will be refused (add [[tokens]] to the config file)");
            }
            if let Some(p) = &progress {
                let (p, grace) = (p.clone(), h.startup_grace(&file));
                tokio::spawn(async move {
                    tokio::time::sleep(grace).await;
                    if !p.caught_up_once() {
                        warn!(grace = ?grace, lag = p.snapshot().lag(), "ingest has not caught up after the start-up grace; serving the projection as is");
                        p.mark_caught_up();
                    }
                });
            }
            let mut state = AppState::new(store.clone(), auth, progress.clone())
                .with_limits(h.limits(&file))
                .with_regions(file.regions.clone())
                .with_stuck(h.stuck(&file)?)
                .with_closing(cancel.clone());
            state.max_ready_lag = h.max_ready_lag(&file);
            let addr = h.listen(&file);
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let addr = listener.local_addr()?;
            info!(%addr, "query service listening");
            if let Some(t) = &demo_token {
                println!();
                println!("  replication tracker demo is up: http://{addr}");
                println!("  dashboard: http://{addr}/#token={t}");
                println!("  demo token (scope *): {t}");
                println!("  try: curl -H 'X-Auth-Token: {t}' 'http://{addr}/v1/{}/replication_records?limit=5&with_count=true'", common::sample::project_id(0));
                println!();
            }
            let c = cancel.clone();
            let limits = state.limits;
            Some(tokio::spawn(query::serve(
                listener,
                query::app(state),
                limits,
                async move { c.cancelled().await },
            )))
        }
        None => None,
    };

    tokio::select! {
        _ = wait_for_signal() => info!("shutdown requested"),
        _ = cancel.cancelled() => {}
    }
    cancel.cancel();
    if let Some(s) = server {
        match tokio::time::timeout(Duration::from_secs(15), s).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => error!(error = %e, "query service failed"),
            Ok(Err(e)) => error!(error = %e, "query service panicked"),
            Err(_) => warn!("query service did not drain within 15 s"),
        }
    }
    if let Some(w) = worker {
        match tokio::time::timeout(Duration::from_secs(30), w).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => error!(error = %e, "ingest worker failed"),
            Ok(Err(e)) => error!(error = %e, "ingest worker panicked"),
            Err(_) => warn!("ingest worker did not stop within 30 s"),
        }
    }
    store.flush()?;
    info!("stopped");
    Ok(())
}

fn verify(
    file: &FileConfig,
    store: &StoreArgs,
    against: Option<PathBuf>,
    replay: bool,
    kafka: &KafkaArgs,
) -> anyhow::Result<ExitCode> {
    let a = Store::open(&store.data_dir(file), store.cache_bytes(file))
        .context("opening the store (stop the tracker first, or verify a copy)")?;
    let (b, _tmp);
    if replay {
        let brokers = kafka
            .brokers(file)
            .context("verify --replay needs --brokers")?;
        // Removed when dropped, on every way out of this function.
        let tmp = tempfile::Builder::new()
            .prefix("tracker-verify-")
            .tempdir()?;
        let dir = tmp.path().join("replay");
        let cache = store.cache_bytes(file);
        ingest::replay::replay(
            kafka.ingest_config(file, &brokers),
            &dir,
            cache,
            true,
            &shutdown_token()?,
        )?;
        b = Store::open(&dir, cache)?;
        _tmp = Some(tmp);
    } else {
        let Some(other) = against else {
            bail!("give --against DIR or --replay")
        };
        b = Store::open(&other, store.cache_bytes(file))?;
        _tmp = None;
    }
    let c = common::store::verify::compare(&a, &b, 20)?;
    println!("digest a {}  ({} records)", c.digest_a, c.records_a);
    println!("digest b {}  ({} records)", c.digest_b, c.records_b);
    if c.equal() {
        println!("EQUAL: the stores hold the same projection");
        return Ok(ExitCode::SUCCESS);
    }
    println!("DIFFERENT: {} record differences", c.differences);
    for id in &c.only_in_a {
        println!("  only in a: {id}");
    }
    for id in &c.only_in_b {
        println!("  only in b: {id}");
    }
    for id in &c.differing {
        println!("  differs:   {id}");
    }
    for i in &c.inconsistencies {
        println!("  inconsistent index: {i}");
    }
    Ok(ExitCode::FAILURE)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// The load test's memory finding: the blocking pool must stay capped.
    #[test]
    fn blocking_pool_is_capped() {
        let rt = super::runtime().unwrap();
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let (active, peak) = (active.clone(), peak.clone());
                    tokio::task::spawn_blocking(move || {
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        active.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        let peak = peak.load(Ordering::SeqCst);
        assert!(
            peak <= super::BLOCKING_THREADS,
            "{peak} blocking tasks ran at once"
        );
        assert!(peak > 1, "the pool should still run tasks in parallel");
    }
}
