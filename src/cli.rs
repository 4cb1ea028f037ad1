//! The command line: every command and its flags (the settings shared by
//! several commands are in `config.rs`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::cluster::ClusterArgs;
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
    /// Ingest and query in one process (the default: its flags may be given
    /// without it, `tracker --listen …`). Without brokers: the embedded demo.
    Run {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        #[command(flatten)]
        http: HttpArgs,
        #[command(flatten)]
        cluster: ClusterArgs,
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
        /// The rebuilt store's cache budget in MiB (a quarter to sled's page cache, the rest to decoded blocks). Default: 256
        #[arg(long, env = "TRACKER_CACHE_MB", value_parser = crate::config::cache_mb)]
        cache_mb: Option<u64>,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Rebuild the projection as of this time (event time,
        /// `occurred_at`): only events that occurred before it are folded,
        /// whatever order they arrived in. `YYYY-MM-DDTHH:MM:SS[.ffffff]`
        /// (UTC) or RFC 3339. The store is stamped with it: `query` serves
        /// it, `run` and `ingest` refuse it.
        #[arg(long, value_parser = until_time)]
        until: Option<common::Micros>,
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
        /// Compare with a running cluster, project by project: any node's
        /// url (http://host:port).
        #[arg(long, conflicts_with_all = ["replay", "against"])]
        cluster: Option<String>,
        /// An operator token (scope *) for `--cluster`.
        #[arg(long, env = "TRACKER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[command(flatten)]
        kafka: KafkaArgs,
    },
    /// Accept an offset gap on a partition held at one: record the skipped range in the store
    /// and resume ingest after it (the tracker must not be running on the store).
    AcceptGap {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// The partition held at the gap (`/health/ready` names it).
        #[arg(long)]
        partition: i32,
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
    /// Write a project's records that match the list's filters to a file,
    /// from a stopped store, a copy or a replay's output (as the export
    /// endpoint does): NDJSON with a trailer line, or CSV.
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// The project whose records are exported.
        #[arg(long)]
        project: String,
        /// A list filter or the sort, named and written as in the API
        /// (`--filter status=fail --filter created_after=2024-03-01T00:00:00
        /// --filter sort=id:asc`); repeat for several.
        #[arg(long = "filter", value_name = "NAME=VALUE")]
        filters: Vec<String>,
        /// `ndjson` (a record per line, then a trailer: count, SHA-256 of
        /// the record lines, offsets) or `csv`.
        #[arg(long, default_value = "ndjson")]
        format: String,
        /// The file to write, whole or not at all (`-`: standard output).
        #[arg(long)]
        out: PathBuf,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Print the SHA-256 to put in the config for a token (or generate a new token).
    HashToken {
        /// The token; omitted = generate a random one.
        token: Option<String>,
    },
}

/// `--until`: a time as the API takes it.
fn until_time(v: &str) -> Result<common::Micros, String> {
    common::Micros::parse_api(v).ok_or_else(|| {
        format!(
            "`{v}` is not a time (YYYY-MM-DDTHH:MM:SS[.ffffff] in UTC, or RFC 3339 with an offset)"
        )
    })
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

/// The command line with `run` put where the command goes when a flag
/// comes first (`tracker --listen X` is `tracker run --listen X`: `run` is
/// the default command); help and version asked for alone are left alone.
pub fn with_default_command(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut i = 1;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        match a {
            "--config" => i += 2,
            _ if a.starts_with("--config=") => i += 1,
            "-h" | "--help" | "-V" | "--version" => return args,
            _ if a.starts_with('-') => {
                let mut args = args;
                args.insert(i, "run".into());
                return args;
            }
            _ => return args,
        }
    }
    args
}

impl Command {
    /// The store settings of a command that opens a store by them.
    pub fn store_args(&self) -> Option<&StoreArgs> {
        match self {
            Command::Run { store, .. }
            | Command::Ingest { store, .. }
            | Command::Query { store, .. }
            | Command::Verify { store, .. }
            | Command::AcceptGap { store, .. }
            | Command::Export { store, .. }
            | Command::Digest { store } => Some(store),
            Command::Replay { .. } | Command::Publish { .. } | Command::HashToken { .. } => None,
        }
    }
}

impl Cli {
    /// The command given, or `run` with its settings from the environment
    /// only (bare `tracker`).
    pub fn command_or_run(self) -> Command {
        self.command.unwrap_or_else(|| Command::Run {
            store: StoreArgs::parse_env(),
            kafka: KafkaArgs::parse_env(),
            http: HttpArgs::parse_env(),
            cluster: ClusterArgs::parse_env(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;

    #[test]
    fn a_flag_first_means_run() {
        let with = |args: &[&str]| -> Vec<String> {
            let argv = args.iter().map(std::ffi::OsString::from).collect();
            with_default_command(argv)
                .into_iter()
                .map(|a| a.into_string().unwrap())
                .collect()
        };
        assert_eq!(with(&["t", "--listen", "x"]), ["t", "run", "--listen", "x"]);
        assert_eq!(
            with(&["t", "--config", "c", "--listen", "x"]),
            ["t", "--config", "c", "run", "--listen", "x"]
        );
        assert_eq!(
            with(&["t", "--config=c", "-q"]),
            ["t", "--config=c", "run", "-q"]
        );
        for unchanged in [
            &["t"][..],
            &["t", "digest", "--data-dir", "d"],
            &["t", "--help"],
            &["t", "--version"],
            &["t", "--config", "c", "query"],
        ] {
            assert_eq!(with(unchanged), unchanged);
        }
    }

    fn parts(c: &Command) -> (Option<&StoreArgs>, Option<&KafkaArgs>, Option<&HttpArgs>) {
        match c {
            Command::Run {
                store, kafka, http, ..
            } => (Some(store), Some(kafka), Some(http)),
            Command::Ingest { store, kafka } => (Some(store), Some(kafka), None),
            Command::Query { store, http } => (Some(store), None, Some(http)),
            Command::Replay { kafka, .. } | Command::Publish { kafka, .. } => {
                (None, Some(kafka), None)
            }
            Command::Verify { store, kafka, .. } | Command::AcceptGap { store, kafka, .. } => {
                (Some(store), Some(kafka), None)
            }
            Command::Digest { store } | Command::Export { store, .. } => (Some(store), None, None),
            Command::HashToken { .. } => (None, None, None),
        }
    }

    /// Every command that takes a setting reads it from every source, with
    /// flag > variable > file > default (regression: bare `tracker` ignored
    /// TRACKER_DATA_DIR and TRACKER_CACHE_MB). One test owns the TRACKER_*
    /// variables of this process.
    #[test]
    fn every_command_reads_every_setting_from_every_source() {
        let commands: [&[&str]; 11] = [
            &[],
            &["run"],
            &["ingest"],
            &["query"],
            &["replay", "--out", "o"],
            &["verify"],
            &["digest"],
            &["export", "--project", "p", "--out", "o"],
            &["accept-gap", "--partition", "0"],
            &["publish", "f"],
            &["hash-token"],
        ];
        let file: FileConfig = toml::from_str(
            "data_dir = \"/file\"\ncache_mb = 3\n[kafka]\nbrokers = \"file:9092\"\n[http]\nlisten = \"file:1\"\n",
        )
        .unwrap();
        let vars = [
            ("TRACKER_DATA_DIR", "/env"),
            ("TRACKER_CACHE_MB", "2"),
            ("TRACKER_BROKERS", "env:9092"),
            ("TRACKER_LISTEN", "env:1"),
        ];
        let flags = |c: &Command| {
            let (s, k, h) = parts(c);
            let mut f: Vec<&str> = Vec::new();
            if s.is_some() {
                f.extend(["--data-dir", "/flag", "--cache-mb", "1"]);
            }
            if k.is_some() {
                f.extend(["--brokers", "flag:9092"]);
            }
            if h.is_some() {
                f.extend(["--listen", "flag:1"]);
            }
            f
        };
        let default = FileConfig::default();
        for args in commands {
            let parse = |extra: &[&str]| {
                let mut argv = vec!["tracker"];
                argv.extend_from_slice(args);
                argv.extend_from_slice(extra);
                Cli::try_parse_from(argv).unwrap().command_or_run()
            };
            // (flags given, variables set, file) → the source that must win.
            for (with_flags, with_vars, file, want) in [
                (false, false, &default, "default"),
                (false, false, &file, "file"),
                (false, true, &file, "env"),
                (true, true, &file, "flag"),
            ] {
                for (k, v) in vars {
                    if with_vars {
                        std::env::set_var(k, v);
                    } else {
                        std::env::remove_var(k);
                    }
                }
                let plain = parse(&[]);
                let extra = if with_flags {
                    flags(&plain)
                } else {
                    Vec::new()
                };
                if with_flags && args.is_empty() {
                    continue; // bare `tracker` takes no flags
                }
                let c = parse(&extra);
                let (s, k, h) = parts(&c);
                let case = format!("{args:?} from {want}");
                if let Some(s) = s {
                    let (dir, mb) = match want {
                        "default" => ("data", 256),
                        "file" => ("/file", 3),
                        "env" => ("/env", 2),
                        _ => ("/flag", 1),
                    };
                    assert_eq!(s.data_dir(file).to_str(), Some(dir), "{case}");
                    assert_eq!(s.cache_bytes(file), mb << 20, "{case}");
                }
                if let Some(k) = k {
                    let brokers = match want {
                        "default" => None,
                        w => Some(format!("{w}:9092")),
                    };
                    assert_eq!(k.brokers(file), brokers, "{case}");
                }
                if let Some(h) = h {
                    let listen = match want {
                        "default" => "127.0.0.1:8080".to_owned(),
                        w => format!("{w}:1"),
                    };
                    assert_eq!(h.listen(file), listen, "{case}");
                }
            }
        }
        for (k, _) in vars {
            std::env::remove_var(k);
        }
    }
}
