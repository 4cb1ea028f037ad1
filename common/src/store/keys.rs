//! Key layout of the store. Everything lives in ONE sled tree so that one
//! `apply_batch` — sled's atomic unit — can carry a whole ingest batch; the
//! first byte of a key names its keyspace.
//!
//! Strings are written order-preserving and self-delimiting (0x00 is escaped
//! as 00 FF, the end is 00 01), so `a < b` as bytes iff their encodings compare
//! the same way, and a prefix scan on one value never runs into the next.
//! Optional values get a tag byte: absent (0x00) sorts before any value.
//! Numbers are big-endian; instants have their sign bit flipped.

mod entries;
pub use entries::*;

/// Keyspace prefixes (the "trees" of the layout).
pub mod space {
    /// `r` id → record number (u32): the id map, which a record's events
    /// and the API find it by
    pub const RECORD_ID: u8 = b'r';
    /// `d` record number → StoredRecord (postcard): records under the dense
    /// number given at first sight, so records seen together are stored
    /// together
    pub const RECORD: u8 = b'd';
    /// `u` → count: the records numbered so far, the next number. In the
    /// engine beside the records, so recovery at open finds it as of the
    /// engine's last flush, where it starts folding again
    pub const NUMBERED: u8 = b'u';
    /// `i list created_at number → ∅` : postings, sorted by (created_at,
    /// record number) — fixed-width integers; readers order records of one
    /// `created_at` by id from the records themselves. `list` is the
    /// interned id (`store/names.rs`) of the name `i project field value`
    pub const POSTING: u8 = b'i';
    /// `n` project field value → u64 : size of the matching posting list
    pub const COUNT: u8 = b'n';
    /// `h list hour → u64` : the entries of a status or route posting list
    /// (`list`: its interned id, as its `i` entries have it) per hour of
    /// created_at
    pub const HOUR_COUNT: u8 = b'h';
    /// `s` status → u64 : records in each status, store-wide — each record
    /// once, whatever projects it is listed under (`/metrics`)
    pub const STATUS_COUNT: u8 = b's';
    /// `o list …` : other sort orders; `list` is the interned id of the
    /// name `o project order`. `updated_at number → created_at` and, for
    /// the records still under way, `created_at number → updated_at` (the
    /// `Live` lists) are integers like postings; `id → created_at number`
    /// and `plan created_at id → created_at number` keep the id whole (ties
    /// on a prefix of it would be read from the records)
    pub const ORDER: u8 = b'o';
    /// `l name → list id` (u32): the dictionary of interned lists, a name
    /// being a list's keyspace byte and what identifies it there
    pub const LIST_NAME: u8 = b'l';
    /// `k side hash number → ∅` : the global checkpoint-item index, by
    /// [`checkpoint_hash`] of the value; a reader confirms the value on
    /// the record
    pub const CHECKPOINT_ITEM: u8 = b'k';
    /// `e` chunk seq → [EventLogEntry] : the audit trail, in chunks of a batch;
    /// each record keeps references to its entries
    pub const EVENT_LOG: u8 = b'e';
    /// `c` topic partition → next offset : the ingest checkpoint
    pub const CHECKPOINT: u8 = b'c';
    /// `q` seq → QuarantineEntry
    pub const QUARANTINE: u8 = b'q';
    /// `x` first-seq → [record id] : the change sequence of one batch
    /// (bounded retention), for resuming the live feed
    pub const CHANGE: u8 = b'x';
    /// `g` topic partition → Gap : a partition held at an offset gap
    pub const GAP: u8 = b'g';
    /// `a` seq → AcceptedGap : the offset ranges an operator accepted to skip
    pub const GAP_ACCEPTED: u8 = b'a';
    /// `m` name → store-wide totals and sequences
    pub const META: u8 = b'm';
}

pub fn push_str(k: &mut Vec<u8>, s: &[u8]) {
    k.reserve(s.len() + 2);
    // Whole runs between NULs at once (most strings have none).
    let mut parts = s.split(|&b| b == 0);
    if let Some(first) = parts.next() {
        k.extend_from_slice(first);
    }
    for part in parts {
        k.extend_from_slice(&[0, 0xff]);
        k.extend_from_slice(part);
    }
    k.extend_from_slice(&[0, 1]);
}

pub fn push_opt(k: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => k.push(0),
        Some(s) => {
            k.push(1);
            push_str(k, s.as_bytes());
        }
    }
}

/// Reads one string written by [`push_str`]; returns it and the rest.
pub fn read_str(k: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let mut out = Vec::new();
    let mut rest = k;
    // Whole runs between escapes at once (a walk of an order parses an id
    // per entry; most have no NUL).
    loop {
        let at = rest.iter().position(|&b| b == 0)?;
        out.extend_from_slice(&rest[..at]);
        match rest.get(at + 1)? {
            0xff => out.push(0),
            1 => return Some((out, &rest[at + 2..])),
            _ => return None,
        }
        rest = &rest[at + 2..];
    }
}

/// Reads one optional string written by [`push_opt`], skipping it.
pub fn skip_opt(k: &[u8]) -> Option<&[u8]> {
    match k.first()? {
        0 => Some(&k[1..]),
        1 => read_str(&k[1..]).map(|(_, rest)| rest),
        _ => None,
    }
}

pub fn record_id(id: &str) -> Vec<u8> {
    let mut k = vec![space::RECORD_ID];
    push_str(&mut k, id.as_bytes());
    k
}

pub fn record(number: u32) -> [u8; 5] {
    let n = number.to_be_bytes();
    [space::RECORD, n[0], n[1], n[2], n[3]]
}

/// The engine's count of records numbered so far ([`space::NUMBERED`]).
pub const NUMBERED: &[u8] = &[space::NUMBERED];

/// A record number as an id map entry holds it.
pub fn read_number(v: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(v.try_into().ok()?))
}

pub fn event_log(chunk: u64) -> Vec<u8> {
    let mut k = vec![space::EVENT_LOG];
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// Past every event-log key.
pub fn event_log_end() -> Vec<u8> {
    vec![space::EVENT_LOG + 1]
}

pub fn read_event_log(k: &[u8]) -> Option<u64> {
    match k {
        [space::EVENT_LOG, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

pub fn checkpoint(topic: &str, partition: i32) -> Vec<u8> {
    let mut k = vec![space::CHECKPOINT];
    push_str(&mut k, topic.as_bytes());
    k.extend_from_slice(&((partition as u32) ^ (1 << 31)).to_be_bytes());
    k
}

pub fn read_checkpoint(k: &[u8]) -> Option<(String, i32)> {
    let (topic, rest) = read_str(k.strip_prefix(&[space::CHECKPOINT])?)?;
    let p: [u8; 4] = rest.try_into().ok()?;
    Some((
        String::from_utf8(topic).ok()?,
        (u32::from_be_bytes(p) ^ (1 << 31)) as i32,
    ))
}

pub fn gap(topic: &str, partition: i32) -> Vec<u8> {
    let mut k = checkpoint(topic, partition);
    k[0] = space::GAP;
    k
}

pub fn read_gap(k: &[u8]) -> Option<(String, i32)> {
    let rest = k.strip_prefix(&[space::GAP])?;
    read_checkpoint(&[&[space::CHECKPOINT], rest].concat())
}

pub fn gap_accepted(seq: u64) -> Vec<u8> {
    let mut k = vec![space::GAP_ACCEPTED];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub fn read_gap_accepted(k: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(
        k.strip_prefix(&[space::GAP_ACCEPTED])?.try_into().ok()?,
    ))
}

pub fn quarantine(seq: u64) -> Vec<u8> {
    let mut k = vec![space::QUARANTINE];
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub const META_TOTALS: &[u8] = b"mtotals";
/// The layout version the store was written with (u32, big-endian).
pub const META_LAYOUT: &[u8] = b"mlayout";
/// Change numbers reserved up to (u64, big-endian): a reopened store
/// continues above it.
pub const META_CHANGES_RESERVED: &[u8] = b"mchanges_reserved";
/// The topic this store holds the projection of (UTF-8).
pub const META_TOPIC: &[u8] = b"mtopic";
/// The [`super::FOLD_VERSION`] that derived the store's engine state (u32).
pub const META_FOLD: &[u8] = b"mfold";
/// The store's identity in its change ids (ASCII hex, made at first use).
pub const META_FEED_ID: &[u8] = b"mfeed_id";
/// A store made by `replay --until T`: T in microseconds (i64,
/// big-endian); it folds only events that occurred before T.
pub const META_UNTIL: &[u8] = b"muntil";
/// A listing shard's store: the changelog partitions it lists
/// (postcard of [`super::listing::Listing`]; issue 26).
pub const META_LISTING: &[u8] = b"mlisting";
/// A fold worker's store: changelog messages published so far (u64,
/// big-endian), written with the checkpoints of the batches whose changes
/// they are — published before the batch was written.
pub const META_PUBLISHED: &[u8] = b"mpublished";

/// The change log's batch whose first change is `first`.
pub fn change(first: u64) -> [u8; 9] {
    let mut k = [space::CHANGE; 9];
    k[1..].copy_from_slice(&first.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_encoding_preserves_order_and_roundtrips() {
        let xs: [&[u8]; 7] = [b"", b"\0", b"\0\0", b"\0a", b"a", b"a\0", b"ab"];
        let enc: Vec<Vec<u8>> = xs
            .iter()
            .map(|x| {
                let mut k = Vec::new();
                push_str(&mut k, x);
                k
            })
            .collect();
        for w in enc.windows(2) {
            assert!(w[0] < w[1]);
        }
        for (x, e) in xs.iter().zip(&enc) {
            let (back, rest) = read_str(e).unwrap();
            assert_eq!(&back, x);
            assert!(rest.is_empty());
        }
    }

    #[test]
    fn checkpoint_keys_roundtrip() {
        for p in [0, 1, 7, i32::MAX] {
            assert_eq!(
                read_checkpoint(&checkpoint("t\0x", p)),
                Some(("t\0x".into(), p))
            );
        }
    }
}
