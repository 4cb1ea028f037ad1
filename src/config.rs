//! Configuration: command-line flags, each also an environment variable, over
//! an optional TOML file (`config/tracker.example.toml` documents every key),
//! over built-in defaults.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde::Deserialize;

use query::{RegionBody, TokenConfig};

mod values;
pub use values::cache_mb;
use values::{non_blank, range, within};

/// The config file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub cache_mb: Option<u64>,
    pub memtable_mb: Option<u64>,
    pub change_retention: Option<u64>,
    pub background_nice: Option<u64>,
    #[serde(default)]
    pub kafka: KafkaFile,
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// The replication capabilities to report; when absent, those observed
    /// in each project's records.
    #[serde(default)]
    pub regions: Vec<RegionBody>,
    #[serde(default)]
    pub stuck: StuckFile,
    /// The cluster map (`[cluster]`, issue 26): the same on every node.
    pub cluster: Option<common::cluster::ClusterMap>,
}

/// `[stuck]`: how long a record may go without an event in each status
/// before it counts as stuck (`90s`, `45m`, `6h`, `2d`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StuckFile {
    pub replicating: Option<String>,
    pub waiting_replicate: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaFile {
    pub brokers: Option<String>,
    pub topic: Option<String>,
    pub group_id: Option<String>,
    pub advisory_commits: Option<bool>,
    pub max_batch: Option<usize>,
    pub max_batch_wait_ms: Option<u64>,
    pub connect_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub listen: Option<String>,
    pub max_ready_lag: Option<i64>,
    pub startup_grace_secs: Option<u64>,
    pub request_timeout_ms: Option<u64>,
    pub max_concurrent_requests: Option<usize>,
    pub max_streams: Option<usize>,
    pub send_timeout_secs: Option<u64>,
    pub cors_origins: Option<Vec<String>>,
}

/// The defaults this binary adds; the libraries' own (batch sizes, request
/// limits, retention, thresholds) are taken from them, never restated.
mod defaults {
    pub const DATA_DIR: &str = "data";
    pub const LISTEN: &str = "127.0.0.1:8080";
    pub const STARTUP_GRACE_SECS: u64 = 30;
}

impl FileConfig {
    /// Refuses values out of range, naming the key.
    fn check(&self) -> anyhow::Result<()> {
        if let Some(c) = &self.cluster {
            c.check()?;
        }
        let h = &self.http;
        let bounded = [
            ("cache_mb", self.cache_mb, range::CACHE_MB),
            (
                "kafka.max_batch_wait_ms",
                self.kafka.max_batch_wait_ms,
                range::MAX_BATCH_WAIT_MS,
            ),
            ("memtable_mb", self.memtable_mb, range::MEMTABLE_MB),
            (
                "background_nice",
                self.background_nice,
                range::BACKGROUND_NICE,
            ),
            (
                "change_retention",
                self.change_retention,
                range::CHANGE_RETENTION,
            ),
            (
                "kafka.max_batch",
                self.kafka.max_batch.map(|n| n as u64),
                range::MAX_BATCH,
            ),
            (
                "kafka.connect_timeout_secs",
                self.kafka.connect_timeout_secs,
                range::CONNECT_TIMEOUT_SECS,
            ),
            (
                "http.startup_grace_secs",
                h.startup_grace_secs,
                range::STARTUP_GRACE_SECS,
            ),
            (
                "http.request_timeout_ms",
                h.request_timeout_ms,
                range::REQUEST_TIMEOUT_MS,
            ),
            (
                "http.send_timeout_secs",
                h.send_timeout_secs,
                range::SEND_TIMEOUT_SECS,
            ),
            (
                "http.max_concurrent_requests",
                h.max_concurrent_requests.map(|n| n as u64),
                range::MAX_CONCURRENT_REQUESTS,
            ),
            (
                "http.max_streams",
                h.max_streams.map(|n| n as u64),
                range::MAX_STREAMS,
            ),
        ];
        for (key, v, (min, max)) in bounded {
            if v.is_some_and(|v| !(min..=max).contains(&v)) {
                anyhow::bail!("{key} must be from {min} to {max}");
            }
        }
        if self.http.max_ready_lag.is_some_and(|l| l < 0) {
            anyhow::bail!("http.max_ready_lag must not be negative");
        }
        for (key, v) in [
            ("kafka.brokers", &self.kafka.brokers),
            ("kafka.topic", &self.kafka.topic),
        ] {
            if v.as_deref().is_some_and(|v| v.trim().is_empty()) {
                anyhow::bail!("{key} must not be blank: remove it for the default");
            }
        }
        Ok(())
    }

    pub fn load(path: Option<&Path>) -> anyhow::Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        let mut f: FileConfig =
            toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))?;
        // A relative data_dir is the config file's neighbour, wherever the
        // tracker is started from (flags and variables stay relative to the
        // working directory, as a shell user expects).
        if let (Some(d), Some(base)) = (&f.data_dir, path.parent()) {
            if d.is_relative() {
                f.data_dir = Some(base.join(d));
            }
        }
        f.check()
            .with_context(|| format!("config {}", path.display()))?;
        Ok(f)
    }
}

#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Directory of the projection store (sled). Default: ./data
    #[arg(long, env = "TRACKER_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The store's cache budget in MiB: a quarter to sled's page cache (memory ~1.1x it), three quarters to decoded blocks. Default: 256
    #[arg(long, env = "TRACKER_CACHE_MB", value_parser = cache_mb)]
    pub cache_mb: Option<u64>,
    /// The store's memtable in MiB: past it, what recent batches wrote is
    /// flushed as a sorted run (in the background). Default: 64
    #[arg(long, env = "TRACKER_MEMTABLE_MB", value_parser = within::<u64, { range::MEMTABLE_MB.0 }, { range::MEMTABLE_MB.1 }>)]
    pub memtable_mb: Option<u64>,
    /// Changes kept so that a change-feed client can resume (Last-Event-ID);
    /// older resume points get `event: reset`. Default: 100000
    #[arg(long, env = "TRACKER_CHANGE_RETENTION", value_parser = within::<u64, { range::CHANGE_RETENTION.0 }, { range::CHANGE_RETENTION.1 }>)]
    pub change_retention: Option<u64>,
    /// The nice value ingest and the store's flushes and merges run at, so
    /// that requests are answered first when the CPU is short (0: the same
    /// as requests). Default: 10
    #[arg(long, env = "TRACKER_BACKGROUND_NICE", value_parser = within::<u64, { range::BACKGROUND_NICE.0 }, { range::BACKGROUND_NICE.1 }>)]
    pub background_nice: Option<u64>,
}

impl StoreArgs {
    pub fn data_dir(&self, f: &FileConfig) -> PathBuf {
        self.data_dir
            .clone()
            .or_else(|| f.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(defaults::DATA_DIR))
    }
    pub fn cache_bytes(&self, f: &FileConfig) -> u64 {
        self.cache_mb
            .or(f.cache_mb)
            .unwrap_or(common::store::DEFAULT_CACHE_MB)
            << 20
    }
    pub fn memtable_bytes(&self, f: &FileConfig) -> u64 {
        self.memtable_mb
            .or(f.memtable_mb)
            .unwrap_or(common::store::DEFAULT_MEMTABLE_MB)
            << 20
    }
    pub fn background_nice(&self, f: &FileConfig) -> i32 {
        self.background_nice
            .or(f.background_nice)
            .map_or(common::priority::DEFAULT_BACKGROUND_NICE, |n| n as i32)
    }
    pub fn change_retention(&self, f: &FileConfig) -> u64 {
        self.change_retention
            .or(f.change_retention)
            .unwrap_or(common::store::changes::DEFAULT_RETENTION)
            .max(1)
    }
}

#[derive(Debug, Clone, Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers. When unset (and unset in the config file), `run`
    /// starts the embedded, in-memory demo broker. A blank value is refused.
    #[arg(long, env = "TRACKER_BROKERS", value_parser = non_blank)]
    pub brokers: Option<String>,
    /// Topic of replication events. Default: replication-events
    #[arg(long, env = "TRACKER_TOPIC", value_parser = non_blank)]
    pub topic: Option<String>,
    /// Consumer group id, used only for advisory commits. Default: replication-tracker
    #[arg(long, env = "TRACKER_GROUP_ID")]
    pub group_id: Option<String>,
    /// Also commit applied offsets to Kafka (advisory, for lag tools).
    #[arg(long, env = "TRACKER_ADVISORY_COMMITS")]
    pub advisory_commits: Option<bool>,
    /// Largest batch, in messages. Default: 5000
    #[arg(long, env = "TRACKER_MAX_BATCH", value_parser = within::<usize, { range::MAX_BATCH.0 }, { range::MAX_BATCH.1 }>)]
    pub max_batch: Option<usize>,
    /// Longest a batch stays open after its first message, in ms (at most
    /// 60000; a stop closes it at once). Default: 200
    #[arg(long, env = "TRACKER_MAX_BATCH_WAIT_MS", value_parser = within::<u64, { range::MAX_BATCH_WAIT_MS.0 }, { range::MAX_BATCH_WAIT_MS.1 }>)]
    pub max_batch_wait_ms: Option<u64>,
    /// `replay` and `verify --replay` give up on a broker or topic they
    /// cannot reach after this many seconds. Default: 30
    #[arg(long, env = "TRACKER_CONNECT_TIMEOUT_SECS", value_parser = within::<u64, { range::CONNECT_TIMEOUT_SECS.0 }, { range::CONNECT_TIMEOUT_SECS.1 }>)]
    pub connect_timeout_secs: Option<u64>,
}

impl KafkaArgs {
    pub fn brokers(&self, f: &FileConfig) -> Option<String> {
        // Blank values are refused where they are read (`non_blank`,
        // `FileConfig::check`).
        self.brokers.clone().or_else(|| f.kafka.brokers.clone())
    }
    /// The topic a flag, variable or the config file names, if any.
    pub fn configured_topic(&self, f: &FileConfig) -> Option<String> {
        self.topic.clone().or_else(|| f.kafka.topic.clone())
    }
    pub fn topic(&self, f: &FileConfig) -> String {
        self.configured_topic(f)
            .unwrap_or_else(|| "replication-events".into())
    }
    pub fn ingest_config(&self, f: &FileConfig, brokers: &str) -> ingest::IngestConfig {
        let mut c = ingest::IngestConfig::new(brokers, &self.topic(f));
        if let Some(g) = self.group_id.clone().or_else(|| f.kafka.group_id.clone()) {
            c.group_id = g;
        }
        c.advisory_commits = self
            .advisory_commits
            .or(f.kafka.advisory_commits)
            .unwrap_or(false);
        c.max_batch = self
            .max_batch
            .or(f.kafka.max_batch)
            .unwrap_or(c.max_batch)
            .max(1);
        if let Some(ms) = self.max_batch_wait_ms.or(f.kafka.max_batch_wait_ms) {
            c.max_batch_wait = Duration::from_millis(ms);
        }
        if let Some(s) = self.connect_timeout_secs.or(f.kafka.connect_timeout_secs) {
            c.connect_timeout = Duration::from_secs(s);
        }
        c
    }
}

#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Address the query service listens on, `host:port` (a name such as
    /// `localhost` is resolved). Default: 127.0.0.1:8080
    #[arg(long, env = "TRACKER_LISTEN")]
    pub listen: Option<String>,
    /// Readiness fails above this ingest lag, in messages. Default: 1000
    #[arg(long, env = "TRACKER_MAX_READY_LAG", value_parser = clap::value_parser!(i64).range(0..))]
    pub max_ready_lag: Option<i64>,
    /// Lists answer 503 until ingest first catches up, or until this many
    /// seconds pass (a dead broker must not keep the API down). Default: 30
    #[arg(long, env = "TRACKER_STARTUP_GRACE_SECS", value_parser = within::<u64, { range::STARTUP_GRACE_SECS.0 }, { range::STARTUP_GRACE_SECS.1 }>)]
    pub startup_grace_secs: Option<u64>,
    /// Per-request timeout in ms. Default: 10000
    #[arg(long, env = "TRACKER_REQUEST_TIMEOUT_MS", value_parser = within::<u64, { range::REQUEST_TIMEOUT_MS.0 }, { range::REQUEST_TIMEOUT_MS.1 }>)]
    pub request_timeout_ms: Option<u64>,
    /// Requests served at once; more get 503. Default: 256
    #[arg(long, env = "TRACKER_MAX_CONCURRENT_REQUESTS", value_parser = within::<usize, { range::MAX_CONCURRENT_REQUESTS.0 }, { range::MAX_CONCURRENT_REQUESTS.1 }>)]
    pub max_concurrent_requests: Option<usize>,
    /// Change-feed streams open at once; more get 503. Default: 256
    #[arg(long, env = "TRACKER_MAX_STREAMS", value_parser = within::<usize, { range::MAX_STREAMS.0 }, { range::MAX_STREAMS.1 }>)]
    pub max_streams: Option<usize>,
    /// A connection whose client accepts no output for this many seconds
    /// is closed, freeing a stalled change feed's slot. Default: 30
    #[arg(long, env = "TRACKER_SEND_TIMEOUT_SECS", value_parser = within::<u64, { range::SEND_TIMEOUT_SECS.0 }, { range::SEND_TIMEOUT_SECS.1 }>)]
    pub send_timeout_secs: Option<u64>,
    /// Origins whose pages may call the API from a browser (CORS), e.g.
    /// https://dash.example; repeat or separate with commas. Default: none
    #[arg(
        long = "cors-origin",
        env = "TRACKER_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// A `replicating` record with no event for this long is stuck (90s,
    /// 45m, 6h, 2d; at most 3650d). Default: 6h
    #[arg(long, env = "TRACKER_STUCK_REPLICATING")]
    pub stuck_replicating: Option<String>,
    /// A `waiting_replicate` record with no event for this long is stuck.
    /// Default: 24h
    #[arg(long, env = "TRACKER_STUCK_WAITING_REPLICATE")]
    pub stuck_waiting_replicate: Option<String>,
}

impl HttpArgs {
    pub fn listen(&self, f: &FileConfig) -> String {
        self.listen
            .clone()
            .or_else(|| f.http.listen.clone())
            .unwrap_or_else(|| defaults::LISTEN.into())
    }
    pub fn max_ready_lag(&self, f: &FileConfig) -> i64 {
        self.max_ready_lag
            .or(f.http.max_ready_lag)
            .unwrap_or(query::DEFAULT_MAX_READY_LAG)
    }
    pub fn startup_grace(&self, f: &FileConfig) -> Duration {
        Duration::from_secs(
            self.startup_grace_secs
                .or(f.http.startup_grace_secs)
                .unwrap_or(defaults::STARTUP_GRACE_SECS),
        )
    }
    /// The stuck thresholds, against the system clock; a bad value is an
    /// error naming its setting.
    pub fn stuck(&self, f: &FileConfig) -> anyhow::Result<query::StuckPolicy> {
        let mut p = query::StuckPolicy::default();
        for (value, setting, slot) in [
            (
                self.stuck_replicating.as_ref().or(f.stuck.replicating.as_ref()),
                "stuck.replicating (--stuck-replicating, TRACKER_STUCK_REPLICATING)",
                &mut p.replicating,
            ),
            (
                self.stuck_waiting_replicate
                    .as_ref()
                    .or(f.stuck.waiting_replicate.as_ref()),
                "stuck.waiting_replicate (--stuck-waiting-replicate, TRACKER_STUCK_WAITING_REPLICATE)",
                &mut p.waiting_replicate,
            ),
        ] {
            if let Some(v) = value {
                *slot = query::stuck::parse_threshold(v)
                    .map_err(|e| anyhow::anyhow!("{setting}: {e}"))?;
            }
        }
        Ok(p)
    }

    /// The CORS origins, each checked as a header value.
    pub fn cors_origins(&self, f: &FileConfig) -> anyhow::Result<Vec<axum::http::HeaderValue>> {
        let given = if self.cors_origins.is_empty() {
            f.http.cors_origins.clone().unwrap_or_default()
        } else {
            self.cors_origins.clone()
        };
        given
            .iter()
            .map(|o| {
                let o = o.trim();
                // A browser's `Origin` is scheme://host[:port], never a
                // path, query or fragment: such a setting could never match.
                let host = o
                    .strip_prefix("http://")
                    .or_else(|| o.strip_prefix("https://"))
                    .map(|h| h.strip_suffix('/').unwrap_or(h));
                if host.is_none_or(|h| h.is_empty() || h.contains(['/', '?', '#'])) {
                    anyhow::bail!("cors origin `{o}` (--cors-origin, TRACKER_CORS_ORIGINS, http.cors_origins) must be scheme://host[:port], as browsers send it: no path, query or fragment");
                }
                axum::http::HeaderValue::from_str(o.trim_end_matches('/'))
                    .map_err(|_| anyhow::anyhow!("cors origin `{o}` is not a valid header value"))
            })
            .collect()
    }

    pub fn limits(&self, f: &FileConfig) -> query::Limits {
        let d = query::Limits::default();
        query::Limits {
            request_timeout: self
                .request_timeout_ms
                .or(f.http.request_timeout_ms)
                .map_or(d.request_timeout, Duration::from_millis),
            max_concurrent: self
                .max_concurrent_requests
                .or(f.http.max_concurrent_requests)
                .unwrap_or(d.max_concurrent)
                .max(1),
            max_streams: self
                .max_streams
                .or(f.http.max_streams)
                .unwrap_or(d.max_streams),
            send_timeout: self
                .send_timeout_secs
                .or(f.http.send_timeout_secs)
                .map_or(d.send_timeout, Duration::from_secs),
            ..d
        }
    }
}

#[cfg(test)]
mod tests;
