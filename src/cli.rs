//! The command line: every command and its flags (the settings shared by
//! several commands are in `config.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{HttpArgs, KafkaArgs, StoreArgs};

#[derive(Parser)]
#[command(name = "tracker", version, about = "Event-sourced replication tracker")]
pub struct Cli {
    /// TOML config file (see config/tracker.example.toml). Flags and env vars win over it.
    #[arg(long, env = "TRACKER_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
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
        #[arg(long, env = "TRACKER_CACHE_MB", value_parser = crate::config::cache_mb)]
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

pub trait ParseEnv {
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
