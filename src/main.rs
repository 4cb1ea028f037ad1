//! `tracker`: the replication tracker's one binary. By default it runs the
//! ingest worker and the query service as two tasks of one process over one
//! store (sled locks its directory, so they cannot be two processes); each can
//! also run alone. Also: replay, verify, publish and token hashing.

mod config;
mod serve;

// sled copies tree nodes on every insert: allocation is a large share of the
// apply path, and mimalloc is markedly faster at it than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use common::Store;
use config::{FileConfig, HttpArgs, KafkaArgs, StoreArgs};
use serve::Mode;

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
        #[arg(long, env = "TRACKER_CACHE_MB", value_parser = config::cache_mb)]
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
        /// Refuse to publish when a line is not a JSON object with a
        /// `record_id` (by default such lines are sent, with a warning, and
        /// the tracker quarantines them).
        #[arg(long)]
        strict: bool,
    },
    /// Print the SHA-256 to put in the config for a token (or generate a new token).
    HashToken {
        /// The token; omitted = generate a random one.
        token: Option<String>,
    },
}

/// Errors reach the operator as one line: the error and its causes, without
/// a backtrace (whatever RUST_BACKTRACE says) or Rust debug output.
fn main() -> ExitCode {
    match tracker() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `a: b: c`, leaving out a cause whose words the
/// message already holds (many errors quote their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn tracker() -> anyhow::Result<ExitCode> {
    common::telemetry::init().map_err(anyhow::Error::msg)?;
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
            runtime()?.block_on(serve::run(file, Mode::Run { store, kafka, http }))
        }
        Command::Ingest { store, kafka } => {
            runtime()?.block_on(serve::run(file, Mode::Ingest { store, kafka }))
        }
        Command::Query { store, http } => {
            runtime()?.block_on(serve::run(file, Mode::Query { store, http }))
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
        } => {
            // 0 equal, 1 different, 2 could not compare (a store missing or
            // locked, a replay that failed or was interrupted).
            return Ok(
                verify(&file, &store, against, replay, &kafka).unwrap_or_else(|e| {
                    eprintln!("Error: could not compare: {}", one_line(&e));
                    ExitCode::from(2)
                }),
            );
        }
        Command::Digest { store } => {
            let s = Store::open_existing(&store.data_dir(&file), store.cache_bytes(&file))?;
            let t = s.totals();
            println!("digest {}", s.digest()?);
            println!(
                "records {} applied {} duplicates {} quarantined {}",
                t.records, t.applied, t.duplicates, t.quarantined
            );
            Ok(())
        }
        Command::Publish {
            file: path,
            kafka,
            strict,
        } => {
            let brokers = kafka.brokers(&file).context("publish needs --brokers")?;
            let text = if path.as_os_str() == "-" {
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut v)?;
                v
            } else {
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?
            };
            let lines = ingest::publish::read_lines(&text);
            if let Some(first) = lines.unkeyed.first() {
                let what = format!(
                    "{} of {} lines are not a JSON object with a record_id (the first: line {first})",
                    lines.unkeyed.len(),
                    lines.messages.len()
                );
                if strict {
                    bail!("{what}; --strict publishes nothing");
                }
                tracing::warn!("{what}: sent without a key; the tracker will quarantine them");
            }
            let n = ingest::publish::publish(&brokers, &kafka.topic(&file), &lines.messages)?;
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

pub(crate) fn new_token() -> String {
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

pub(crate) async fn wait_for_signal() {
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

fn verify(
    file: &FileConfig,
    store: &StoreArgs,
    against: Option<PathBuf>,
    replay: bool,
    kafka: &KafkaArgs,
) -> anyhow::Result<ExitCode> {
    let a = Store::open_existing(&store.data_dir(file), store.cache_bytes(file))
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
        b = Store::open_existing(&other, store.cache_bytes(file))?;
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
