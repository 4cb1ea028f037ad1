//! The store's one error type: what an operation on the store can fail
//! with, each variant naming what an operator or a client needs to act.

use super::{FOLD_VERSION, LAYOUT};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store i/o: {0}")]
    Sled(#[from] sled::Error),
    #[error("store holds an undecodable value under key {key}: {reason}")]
    Corrupt { key: String, reason: String },
    #[error(
        "the store at {path} was written with layout v{found}; this tracker reads layout v{LAYOUT} \
         and never reinterprets or wipes a store. Rebuild it from the topic into a new directory \
         with `tracker replay --out <new dir>` and point --data-dir there"
    )]
    Layout { path: String, found: u32 },
    #[error(
        "no store at {path}: check the data directory (--data-dir, TRACKER_DATA_DIR, data_dir). \
         `tracker replay --out {path}` builds one from the topic"
    )]
    Missing { path: String },
    #[error(
        "the store at {path} is in use by another process (a running tracker?): stop it, \
         or give another data directory"
    )]
    Locked { path: String },
    #[error("the store at {path} is already open in this process: the same store is named twice")]
    OpenHere { path: String },
    #[error("{what} {path}: {source}")]
    Io {
        path: String,
        what: String,
        source: std::io::Error,
    },
    #[error(
        "the store at {path} is damaged ({file}): {reason}. The tracker neither repairs nor \
         wipes it: rebuild it from the topic into a new directory with `tracker replay --out \
         <new dir>` and point --data-dir there, or restore a backup"
    )]
    Damaged {
        path: String,
        file: String,
        reason: String,
    },
    #[error(
        "the store at {path} holds events after its engine's last flush that a tracker with \
         fold {found} derived; this tracker derives with fold v{FOLD_VERSION} and would \
         recover a different projection from them. Stop and start it once with the tracker \
         that wrote it (a clean stop flushes), or rebuild it with `tracker replay --out <new \
         dir>` and point --data-dir there"
    )]
    Fold { path: String, found: String },
    #[error(
        "the store at {path} was written with layout v{found}; this tracker upgrades it in \
         place, deriving its records and indexes again from its own event log, the first time \
         it opens it to write (`tracker run --data-dir {path}`, which then resumes ingest). \
         Opened only to read, it is left as it is"
    )]
    Upgrade { path: String, found: u32 },
    /// Record numbers are `u32`: a store holds at most that many records.
    #[error("the store has numbered {0} records, as many as one store holds")]
    Numbers(u64),
    /// The engine's background flush or merge failed (a full disk, say).
    #[error("the store's flush or merge failed: {0}")]
    Engine(String),
    /// A listing shard's store opened for other changelog partitions.
    #[error(
        "the store at {path} lists {found}; this node is given changelog partitions {asked}: \
         give it the store built for them, or a new data directory (it is rebuilt from the changelog)"
    )]
    Listing {
        path: String,
        found: String,
        asked: String,
    },
    /// A fold worker could not publish a batch's changes: the batch is not
    /// written (and retried).
    #[error("publishing the batch's changes to the changelog: {0}")]
    Publish(String),
    /// A request the store cannot answer as asked (a bad `marker`, say);
    /// `param` names the request parameter at fault.
    #[error("{param}: {reason}")]
    Query { param: &'static str, reason: String },
}

impl StoreError {
    pub(super) fn query(param: &'static str, reason: impl ToString) -> StoreError {
        StoreError::Query {
            param,
            reason: reason.to_string(),
        }
    }

    pub(super) fn corrupt(key: &[u8], reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.to_string(),
        }
    }
}
