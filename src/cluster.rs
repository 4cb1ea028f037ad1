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
