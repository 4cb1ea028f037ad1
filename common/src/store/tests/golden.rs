//! The store's bytes, pinned. What a store of this layout holds must read
//! back the same under the next build: a reordered enum (postcard writes a
//! variant's index), a changed key builder or status byte fails here, and
//! is then a new layout ([`LAYOUT`]), never a store silently misread.

use sha2::{Digest, Sha256};

use super::*;
use crate::event::EventType;
use crate::record::Status;

/// The codes written into keys and values, one by one.
#[test]
fn every_on_disk_code_is_pinned() {
    let status: Vec<u8> = Status::ALL.iter().map(|s| index::status_byte(*s)).collect();
    assert_eq!(
        Status::ALL.map(Status::as_str),
        [
            "replicating",
            "success",
            "fail",
            "skip",
            "waiting_replicate"
        ]
    );
    assert_eq!(status, [0, 1, 2, 3, 4]);
    let fields = [
        index::IndexField::Status,
        index::IndexField::SourceRegion,
        index::IndexField::DestinationRegion,
        index::IndexField::Route,
    ];
    assert_eq!(fields.map(|f| f as u8), [1, 2, 3, 4]);
    let orders = [
        index::OrderField::UpdatedAt,
        index::OrderField::Id,
        index::OrderField::PlanId,
        index::OrderField::Live,
    ];
    assert_eq!(orders.map(|o| o as u8), [0, 1, 2, 3]);
    let sides = [
        index::CheckpointSide::Source,
        index::CheckpointSide::Destination,
    ];
    assert_eq!(sides.map(|s| s as u8), [0, 1]);
    // Postcard writes an enum as its variant's index.
    let effects = [
        EventEffect::Changed,
        EventEffect::Unchanged,
        EventEffect::Duplicate,
    ];
    assert_eq!(effects.map(|e| encode(&e)), [[0], [1], [2]]);
    let kinds: Vec<Vec<u8>> = EventType::ALL.iter().map(encode).collect();
    assert_eq!(
        EventType::ALL.map(EventType::as_str),
        [
            "queued",
            "started",
            "progress",
            "succeeded",
            "failed",
            "skipped"
        ]
    );
    assert_eq!(kinds, [[0], [1], [2], [3], [4], [5]]);
    let spaces = [
        keys::space::RECORD_ID,
        keys::space::RECORD,
        keys::space::NUMBERED,
        keys::space::POSTING,
        keys::space::COUNT,
        keys::space::HOUR_COUNT,
        keys::space::ORDER,
        keys::space::CHECKPOINT_ITEM,
        keys::space::EVENT_LOG,
        keys::space::CHECKPOINT,
        keys::space::QUARANTINE,
        keys::space::CHANGE,
        keys::space::GAP,
        keys::space::GAP_ACCEPTED,
        keys::space::META,
        keys::space::LIST_NAME,
        keys::space::STATUS_COUNT,
    ];
    assert_eq!(&spaces, b"rduinhokecqxgamls");
    assert_eq!(keys::status_count(Status::Fail), *b"s\x02");
    // Interned lists: the space, the id big-endian; the id that names
    // nothing.
    assert_eq!(keys::interned(b'i', 0x0102_0304), *b"i\x01\x02\x03\x04");
    assert_eq!(names::NO_LIST, u32::MAX);
    // Integer entries: an instant, then a number; checkpoint items by
    // FNV-1a (its published test vectors).
    assert_eq!(
        keys::instant_number([1, 2, 3, 4, 5, 6, 7, 8], 0x0a0b_0c0d),
        *b"\x01\x02\x03\x04\x05\x06\x07\x08\x0a\x0b\x0c\x0d"
    );
    assert_eq!(keys::checkpoint_hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(keys::checkpoint_hash("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(keys::checkpoint_hash("foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(
        keys::checkpoint_items(index::CheckpointSide::Destination, "a"),
        *b"k\x01\xaf\x63\xdc\x4c\x86\x01\xec\x8c"
    );
}

/// Every key and value a store holds after the spec's events and a
/// quarantined message, but for what is compressed (event-log chunks are
/// listed decoded), random (the feed id) or the engine's own (runs, the
/// manifest: `lsm`'s tests): one line each, hashed. On a difference the
/// listing is printed, to show what changed.
#[test]
fn the_bytes_a_store_holds_are_pinned() {
    let store = Store::temporary().unwrap();
    let mut batch = messages(&super::spec_events());
    batch.push(Message {
        topic: "t".into(),
        partition: 0,
        offset: batch.len() as i64,
        key: Some(b"k".to_vec()),
        payload: Some(b"{not json".to_vec()),
    });
    store.apply_batch(&batch).unwrap();
    let mut lines = Vec::new();
    for kv in store.view().snap().range(
        std::ops::Bound::Unbounded,
        std::ops::Bound::Unbounded,
        false,
    ) {
        let (k, v) = kv.unwrap();
        let v = match v {
            crate::lsm::Value::Bytes(b) => hex::encode(b),
            crate::lsm::Value::Count(n) => format!("count {n}"),
        };
        lines.push(format!("{} = {v}", hex::encode(&k)));
    }
    for kv in store.tree.iter() {
        let (k, v) = kv.unwrap();
        if k.first().is_some_and(u8::is_ascii_uppercase) || &k[..] == keys::META_FEED_ID {
            continue;
        }
        let v = match keys::read_event_log(&k) {
            Some(_) => encode(&read::log_chunk(&k, &v).unwrap()),
            None => v.to_vec(),
        };
        lines.push(format!("{} = {}", hex::encode(&k), hex::encode(v)));
    }
    let listing = lines.join("\n");
    let digest = hex::encode(Sha256::digest(listing.as_bytes()));
    assert_eq!(
        digest, "7ec0b555d4954471197fe541a230a1fcd9b731e07a65ade84ebd7a80456dfc08",
        "the store's bytes changed (a new layout?):\n{listing}"
    );
}
