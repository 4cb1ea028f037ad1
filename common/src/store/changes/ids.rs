//! Change ids on the wire: a store's feed id and a change's number, and
//! the feed id stamped in the store.

use super::super::{keys, StoreError};

/// A change's id on the wire (`id:` of a server-sent event): the store's
/// feed id and the change's number, `3f9a0c12d4e5-1042`. The feed id makes a
/// resume point from another store (one rebuilt by `tracker replay --out`,
/// whose numbers start again) a reset rather than a silent jump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventId<'a> {
    /// `None` for a bare number (clients from before the feed id).
    pub feed: Option<&'a str>,
    pub seq: u64,
}

impl<'a> EventId<'a> {
    /// `feed-seq`, or a bare `seq`; `None` for anything else.
    pub fn parse(s: &'a str) -> Option<EventId<'a>> {
        let (feed, seq) = match s.split_once('-') {
            Some((f, n)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_hexdigit()) => {
                (Some(f), n)
            }
            Some(_) => return None,
            None => (None, s),
        };
        let seq = seq
            .parse()
            .ok()
            .filter(|_| seq.bytes().all(|b| b.is_ascii_digit()))?;
        Some(EventId { feed, seq })
    }
}

impl std::fmt::Display for EventId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.feed {
            Some(feed) => write!(f, "{feed}-{}", self.seq),
            None => write!(f, "{}", self.seq),
        }
    }
}

/// The store's feed id: the stamped one, or a new random one (stamped when
/// the store is writable; a read-only store's lasts until it closes, and
/// its clients reload after a restart).
pub(in crate::store) fn feed_id(tree: &sled::Tree, writable: bool) -> Result<String, StoreError> {
    if let Some(v) = tree.get(keys::META_FEED_ID)? {
        return String::from_utf8(v.to_vec())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| StoreError::corrupt(keys::META_FEED_ID, "not a feed id"));
    }
    let id = hex::encode(rand::random::<[u8; 6]>());
    if writable {
        tree.insert(keys::META_FEED_ID, id.as_bytes())?;
    }
    Ok(id)
}
