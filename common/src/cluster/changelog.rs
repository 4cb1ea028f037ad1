//! The record changelog's message: what a fold worker publishes for every
//! change of a record, keyed by project — an upsert for each project the
//! record is listed under, a removal for each project it left — and what a
//! listing shard applies. Each carries the record's whole fold state and
//! its version: the number of distinct events folded into it, which only
//! grows (all of a record's events are in one events partition, folded in
//! its order by one worker, so a version names one state). A shard keeps
//! the highest version it has seen, so applying is idempotent and
//! order-proof, and the fold worker may publish at least once.

use serde::{Deserialize, Serialize};

use crate::record::RecordState;

/// The first byte of every changelog value: its format. Bumped with any
/// change to the encoding; a shard quarantines a format it does not know.
pub const FORMAT: u8 = 1;

/// Values above this are refused (a record's state is a few KiB at most:
/// its events' stamps and the winning fields).
pub const MAX_BYTES: usize = 1 << 20;

/// One changelog message: `project` is its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub project: String,
    pub id: String,
    pub version: u64,
    pub state: RecordState,
}

/// Why a changelog message cannot be applied (it is quarantined).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("the message has no value")]
    Empty,
    #[error("the value is {0} bytes, over the changelog's {MAX_BYTES}")]
    Oversized(usize),
    #[error("format {0} is not the changelog format {FORMAT} this tracker reads")]
    Format(u8),
    #[error("the value does not decode: {0}")]
    Undecodable(String),
    #[error("the key is not the project `{0}` the value names")]
    KeyMismatch(String),
    #[error("version {found} is not the {events} events the state holds")]
    Version { found: u64, events: u64 },
}

impl Reject {
    /// The quarantine's reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Reject::Empty => "empty_message",
            Reject::Oversized(_) => "oversized",
            Reject::Format(_) => "unsupported_format",
            Reject::Undecodable(_) => "undecodable",
            Reject::KeyMismatch(_) => "key_mismatch",
            Reject::Version { .. } => "version_mismatch",
        }
    }
}

impl Change {
    /// The value: [`FORMAT`], then the postcard encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![FORMAT];
        v.extend(postcard::to_allocvec(self).expect("a change always serializes"));
        v
    }

    /// A message's key (when given: the log's recovery has only values)
    /// and value, checked.
    pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Change, Reject> {
        let v = value.filter(|v| !v.is_empty()).ok_or(Reject::Empty)?;
        if v.len() > MAX_BYTES {
            return Err(Reject::Oversized(v.len()));
        }
        if v[0] != FORMAT {
            return Err(Reject::Format(v[0]));
        }
        let c: Change =
            postcard::from_bytes(&v[1..]).map_err(|e| Reject::Undecodable(e.to_string()))?;
        if key.is_some_and(|k| k != c.project.as_bytes()) {
            return Err(Reject::KeyMismatch(c.project));
        }
        let events = c.state.events();
        if c.version != events {
            return Err(Reject::Version {
                found: c.version,
                events,
            });
        }
        Ok(c)
    }
}

/// A changelog message as published: its key (the project) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub project: String,
    pub value: Vec<u8>,
}

/// The messages a record's change from `before` to `after` publishes: an
/// upsert per project it is listed under, a removal per project it left —
/// each the [`Change::encode`] of that project's [`Change`], built from the
/// state encoded once (postcard lays a struct out as its fields one after
/// another, so the state's bytes end every message).
pub fn messages(id: &str, before: Option<&RecordState>, after: &RecordState) -> Vec<Outgoing> {
    let now = after.projects();
    let left = before
        .iter()
        .flat_map(|b| b.projects())
        .filter(|p| !now.contains(p));
    let state = after.encode();
    let version = after.events();
    now.iter()
        .copied()
        .chain(left)
        .map(|project| {
            let mut value = vec![FORMAT];
            value.extend(
                postcard::to_allocvec(&(project, id, version)).expect("strings always serialize"),
            );
            value.extend_from_slice(&state);
            Outgoing {
                project: project.to_owned(),
                value,
            }
        })
        .collect()
}
