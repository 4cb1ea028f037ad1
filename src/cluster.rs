//! A node's place in a cluster (issue 26): `--role fold|shard` and
//! `--node NAME` on `run`, resolved against the config file's `[cluster]`
//! map (the same file on every node). Without them, `run` is the single
//! node it always was.

use anyhow::Context;
use clap::{Args, ValueEnum};

use common::cluster::{ClusterMap, MapError, Node, Role};

use crate::config::FileConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// One process folds every event and answers every request (the default).
    Single,
    /// Folds its events partitions, publishes record changes to the changelog.
    Fold,
    /// Lists the projects of its changelog partitions and answers for them.
    Shard,
}

#[derive(Debug, Clone, Default, Args)]
pub struct ClusterArgs {
    /// The node's role in the config file's `[cluster]` map. Default: single
    #[arg(long, env = "TRACKER_ROLE", value_enum)]
    pub role: Option<RoleArg>,
    /// The node's name in the `[cluster]` map (its partitions and url).
    #[arg(long, env = "TRACKER_NODE")]
    pub node: Option<String>,
}

/// A cluster node, resolved: the map, its role and its own entry.
#[derive(Debug, Clone)]
pub struct Place {
    pub map: ClusterMap,
    pub role: Role,
    pub node: Node,
}

impl Place {
    /// The node's partitions, as the ingest worker takes them, with the
    /// count the topic must have.
    pub fn partitions(&self) -> (std::collections::BTreeSet<i32>, u32) {
        let mine = self.node.partitions.iter().map(|&p| p as i32).collect();
        let count = match self.role {
            Role::Fold => self.map.events_partitions,
            Role::Shard => self.map.changelog_partitions,
        };
        (mine, count)
    }
}

impl ClusterArgs {
    /// The node's place, or none for a single node. The map was checked
    /// when the config file was read.
    pub fn place(&self, file: &FileConfig) -> anyhow::Result<Option<Place>> {
        let asked = match (self.role, &self.node) {
            (None | Some(RoleArg::Single), None) => return Ok(None),
            (Some(RoleArg::Single), Some(_)) => {
                anyhow::bail!("--node names a cluster node: give --role fold or --role shard, or no --node")
            }
            (Some(r), None) => anyhow::bail!(
                "--role {} needs --node NAME (TRACKER_NODE): which node of the [cluster] map this is",
                if r == RoleArg::Fold { "fold" } else { "shard" }
            ),
            (r, Some(name)) => (r, name),
        };
        let map = file.cluster.clone().context(
            "--node needs the cluster map: a [cluster] section in the config file (README, \"A cluster\")",
        )?;
        let (role, node) = map.node(asked.1)?;
        let wanted = match asked.0 {
            Some(RoleArg::Fold) => Some(Role::Fold),
            Some(RoleArg::Shard) => Some(Role::Shard),
            _ => None,
        };
        if let Some(w) = wanted.filter(|w| *w != role) {
            return Err(MapError::WrongRole {
                name: asked.1.clone(),
                is: role.as_str(),
                asked: w.as_str(),
            }
            .into());
        }
        let node = node.clone();
        Ok(Some(Place { map, role, node }))
    }
}

/// `tracker verify --data-dir A --cluster URL`: a single node's stopped
/// store against a running cluster, project by project — the per-project
/// digests of A against those the cluster's listing shards hold
/// (`/v1/admin/cluster/digest`, asked of the node at URL with an operator
/// token). Exit 0 equal, 1 different, 2 could not compare.
pub fn verify(
    file: &FileConfig,
    store: &crate::config::StoreArgs,
    url: &str,
    token: Option<&str>,
) -> std::process::ExitCode {
    compare(file, store, url, token).unwrap_or_else(|e| {
        eprintln!("Error: could not compare: {}", crate::process::one_line(&e));
        std::process::ExitCode::from(2)
    })
}

fn compare(
    file: &FileConfig,
    store: &crate::config::StoreArgs,
    url: &str,
    token: Option<&str>,
) -> anyhow::Result<std::process::ExitCode> {
    use std::collections::BTreeMap;
    let token = token
        .context("verify --cluster needs an operator token (scope *): --token or TRACKER_TOKEN")?;
    let dir = store.data_dir(file);
    let s = common::Store::open_read_only(&dir, store.cache_bytes(file))
        .with_context(|| format!("opening the store in {}", dir.display()))?;
    let mine = s.view().project_digests()?;
    let answer = get_json(url, "/v1/admin/cluster/digest", token)?;
    let theirs: BTreeMap<String, String> = serde_json::from_value(answer["projects"].clone())
        .context("the cluster's digest names no projects")?;
    let digest = common::store::listing::listings_digest;
    println!("store   {}  ({} projects)", digest(&mine), mine.len());
    println!(
        "cluster {}  ({} projects, from {})",
        digest(&theirs),
        theirs.len(),
        answer["shards"]
            .as_array()
            .map(|s| s
                .iter()
                .filter_map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    println!(
        "checkpoints of the store {}",
        common::store::checkpoints_text(&s.checkpoints())
    );
    let mut differences = 0;
    for p in mine
        .keys()
        .chain(theirs.keys())
        .collect::<std::collections::BTreeSet<_>>()
    {
        let what = match (mine.get(p), theirs.get(p)) {
            (Some(a), Some(b)) if a == b => continue,
            (Some(_), Some(_)) => "differs",
            (Some(_), None) => "only in the store",
            (None, _) => "only in the cluster",
        };
        differences += 1;
        println!("  {what}: project {p}");
    }
    if differences == 0 {
        println!("EQUAL: the cluster lists every project as the store does");
        return Ok(std::process::ExitCode::SUCCESS);
    }
    println!(
        "DIFFERENT: {differences} projects (a store or cluster merely behind differs by what it has yet to read)"
    );
    Ok(std::process::ExitCode::FAILURE)
}

/// A GET of `path` at `url` (`http://host:port`, as the map names nodes)
/// over plain HTTP/1.1: its JSON body, or why not.
fn get_json(url: &str, path: &str, token: &str) -> anyhow::Result<serde_json::Value> {
    use std::io::{Read, Write};
    let host = url
        .strip_prefix("http://")
        .map(|h| h.trim_end_matches('/'))
        .filter(|h| !h.is_empty() && !h.contains('/'))
        .with_context(|| format!("--cluster {url}: give a node's url, http://host:port"))?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))?;
    let timeout = std::time::Duration::from_secs(60);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {url}"))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Auth-Token: {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .with_context(|| format!("reading {url}{path}"))?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("{url}{path} gave no HTTP answer"))?;
    let status = head.split_whitespace().nth(1).unwrap_or("?");
    let v: serde_json::Value = serde_json::from_str(body)
        .with_context(|| format!("{url}{path} answered {status}, not JSON"))?;
    if status != "200" {
        anyhow::bail!(
            "{url}{path} answered {status}: {}",
            v["error_msg"].as_str().unwrap_or("")
        );
    }
    Ok(v)
}
