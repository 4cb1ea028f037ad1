//! The event contract (`docs/events.md`): decoding and validation of one Kafka
//! message into an [`Event`], with a typed [`Reject`] for every rule a message
//! can break. Rejections are what the quarantine shows, so each has a stable
//! code and a message naming the field.

mod slots;

use serde_json::{Map, Value};

use crate::identity::{Field, Identity};
use crate::instant::Micros;
use slots::{record_field, RecordFields, RecordSlot, Slot, Slots};

/// Largest accepted message value.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
const MAX_ID_CHARS: usize = 128;
const MAX_FIELD_CHARS: usize = 128;
const MAX_FAIL_CODE_CHARS: usize = 64;
const MAX_FAIL_REASON_CHARS: usize = 1024;

crate::vocabulary! {
    #[derive(
        Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
    )]
    pub enum EventType {
        Queued = "queued",
        Started = "started",
        Progress = "progress",
        Succeeded = "succeeded",
        Failed = "failed",
        Skipped = "skipped",
    }
}

impl EventType {
    /// Status rank: queued 0, started/progress 1, terminal 2.
    pub fn rank(self) -> u8 {
        match self {
            EventType::Queued => 0,
            EventType::Started | EventType::Progress => 1,
            EventType::Succeeded | EventType::Failed | EventType::Skipped => 2,
        }
    }
}

/// A validated event. Strings are owned: events outlive the Kafka message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub event_id: String,
    pub kind: EventType,
    pub record_id: String,
    pub occurred_at: Micros,
    pub attempt: u32,
    pub identity: Identity,
    pub progress: Option<u8>,
    pub fail_code: Option<String>,
    pub fail_reason: Option<String>,
}

/// Why a message was quarantined. `code()` is stable (operators filter on it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("message has no value (tombstone)")]
    EmptyMessage,
    #[error("message value is {len} bytes, over the {MAX_EVENT_BYTES}-byte limit")]
    Oversized { len: usize },
    #[error("message value is not valid UTF-8")]
    InvalidUtf8,
    #[error("message value is not JSON: {0}")]
    NotJson(String),
    #[error("message value is JSON but not an object")]
    NotObject,
    #[error("required field `{0}` is missing")]
    MissingField(&'static str),
    #[error("field `{field}` must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("field `{field}` is out of range: {rule}")]
    OutOfRange {
        field: &'static str,
        rule: &'static str,
    },
    #[error("schema_version {0} is not supported (expected 1)")]
    UnsupportedSchemaVersion(String),
    #[error("type `{0}` is not one of queued, started, progress, succeeded, failed, skipped")]
    UnknownType(String),
    #[error("occurred_at `{0}` is not an RFC 3339 timestamp with offset")]
    InvalidTimestamp(String),
    #[error("message key does not equal record_id")]
    KeyMismatch,
}

impl Reject {
    pub fn code(&self) -> &'static str {
        match self {
            Reject::EmptyMessage => "empty_message",
            Reject::Oversized { .. } => "oversized",
            Reject::InvalidUtf8 => "invalid_utf8",
            Reject::NotJson(_) => "not_json",
            Reject::NotObject => "not_object",
            Reject::MissingField(_) => "missing_field",
            Reject::WrongType { .. } => "wrong_type",
            Reject::OutOfRange { .. } => "out_of_range",
            Reject::UnsupportedSchemaVersion(_) => "unsupported_schema_version",
            Reject::UnknownType(_) => "unknown_type",
            Reject::InvalidTimestamp(_) => "invalid_timestamp",
            Reject::KeyMismatch => "key_mismatch",
        }
    }
}

/// Echoed values are cut so a hostile event cannot bloat the quarantine reason.
fn echo(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Decodes one Kafka message (key, value) per `docs/events.md`.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Event, Reject> {
    let text = text(value)?;
    let slots = Slots::capture(text).map_err(|e| Reject::NotJson(e.to_string()))?;
    validate(key, &slots.ok_or(Reject::NotObject)?)
}

/// [`decode`] through a `serde_json::Value`, as layout 7 decoded: the
/// reference the capture is held to (a property test, a fuzz target).
#[cfg(any(test, feature = "testkit"))]
pub fn decode_via_value(key: Option<&[u8]>, value: Option<&[u8]>) -> Result<Event, Reject> {
    let text = text(value)?;
    let json: Value = serde_json::from_str(text).map_err(|e| Reject::NotJson(e.to_string()))?;
    validate(key, &Slots::of_value(&json).ok_or(Reject::NotObject)?)
}

/// The message value as text: present, within the size limit, UTF-8.
fn text(value: Option<&[u8]>) -> Result<&str, Reject> {
    let bytes = value.ok_or(Reject::EmptyMessage)?;
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(Reject::Oversized { len: bytes.len() });
    }
    std::str::from_utf8(bytes).map_err(|_| Reject::InvalidUtf8)
}

/// The contract's rules over a message's fields, in the order they are
/// checked (the first broken one is the reason).
fn validate(key: Option<&[u8]>, obj: &Slots<'_>) -> Result<Event, Reject> {
    match obj.get("schema_version") {
        None => return Err(Reject::MissingField("schema_version")),
        Some(Slot::Num(n)) if n.as_u64() == Some(1) => {}
        Some(Slot::Num(n)) if n.is_i64() || n.is_u64() => {
            return Err(Reject::UnsupportedSchemaVersion(n.to_string()))
        }
        Some(_) => return Err(wrong("schema_version", "an integer")),
    }
    let event_id = bounded_str(obj.get("event_id"), "event_id", 1, MAX_ID_CHARS)?
        .ok_or(Reject::MissingField("event_id"))?;
    let kind = match obj.get("type") {
        None => return Err(Reject::MissingField("type")),
        Some(Slot::Str(s)) => EventType::parse(s).ok_or_else(|| Reject::UnknownType(echo(s)))?,
        Some(_) => return Err(wrong("type", "a string")),
    };
    let record_id = bounded_str(obj.get("record_id"), "record_id", 1, MAX_ID_CHARS)?
        .ok_or(Reject::MissingField("record_id"))?;
    let occurred_at = match obj.get("occurred_at") {
        None => return Err(Reject::MissingField("occurred_at")),
        Some(Slot::Str(s)) => {
            Micros::parse_rfc3339(s).ok_or_else(|| Reject::InvalidTimestamp(echo(s)))?
        }
        Some(_) => return Err(wrong("occurred_at", "an RFC 3339 string")),
    };
    let attempt = match int(
        obj.get("attempt"),
        "attempt",
        1,
        u64::from(u32::MAX),
        "must be between 1 and 4294967295",
    )? {
        Some(a) => a as u32,
        None => 1,
    };
    let progress = int(
        obj.get("progress"),
        "progress",
        0,
        100,
        "must be between 0 and 100",
    )?
    .map(|p| p as u8);
    let fail_code = bounded_str(obj.get("fail_code"), "fail_code", 0, MAX_FAIL_CODE_CHARS)?;
    let fail_reason = bounded_str(
        obj.get("fail_reason"),
        "fail_reason",
        0,
        MAX_FAIL_REASON_CHARS,
    )?;
    if kind == EventType::Failed && fail_code.is_none() {
        return Err(Reject::MissingField("fail_code"));
    }
    let identity = match obj.record() {
        None => Identity::default(),
        Some(RecordSlot::Object(r)) => identity(r)?,
        Some(RecordSlot::NotObject) => return Err(wrong("record", "an object")),
    };
    if let Some(k) = key {
        if k != record_id.as_bytes() {
            return Err(Reject::KeyMismatch);
        }
    }
    Ok(Event {
        event_id,
        kind,
        record_id,
        occurred_at,
        attempt,
        identity,
        progress,
        fail_code,
        fail_reason,
    })
}

fn identity(r: &RecordFields<'_>) -> Result<Identity, Reject> {
    let mut id = Identity::default();
    for f in Field::ALL {
        let slot = record_field(r, Some(f));
        id.fields[f as usize] = bounded_str(slot, f.record_path(), 0, MAX_FIELD_CHARS)?;
    }
    id.auto_trigger = match record_field(r, None) {
        None => None,
        Some(Slot::Bool(b)) => Some(*b),
        Some(_) => return Err(wrong("record.auto_trigger", "a boolean")),
    };
    Ok(id)
}

fn wrong(field: &'static str, expected: &'static str) -> Reject {
    Reject::WrongType { field, expected }
}

fn bounded_str(
    slot: Option<&Slot<'_>>,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<Option<String>, Reject> {
    match slot {
        None => Ok(None),
        Some(Slot::Str(s)) => {
            let n = s.chars().count();
            if n < min || n > max {
                let rule = match (min, max) {
                    (1, 128) => "must be 1-128 characters",
                    (0, 128) => "must be at most 128 characters",
                    (0, 64) => "must be at most 64 characters",
                    _ => "must be at most 1024 characters",
                };
                return Err(Reject::OutOfRange { field, rule });
            }
            Ok(Some(s.to_string()))
        }
        Some(_) => Err(wrong(field, "a string")),
    }
}

fn int(
    slot: Option<&Slot<'_>>,
    field: &'static str,
    min: u64,
    max: u64,
    rule: &'static str,
) -> Result<Option<u64>, Reject> {
    match slot {
        None => Ok(None),
        Some(Slot::Num(n)) => match n.as_u64() {
            Some(v) if (min..=max).contains(&v) => Ok(Some(v)),
            Some(_) => Err(Reject::OutOfRange { field, rule }),
            None if n.is_i64() => Err(Reject::OutOfRange { field, rule }),
            None => Err(wrong(field, "an integer")),
        },
        Some(_) => Err(wrong(field, "an integer")),
    }
}

impl Event {
    /// The event as a producer would publish it (the inverse of [`decode`]).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("schema_version".into(), 1.into());
        o.insert("event_id".into(), self.event_id.clone().into());
        o.insert("type".into(), self.kind.as_str().into());
        o.insert("record_id".into(), self.record_id.clone().into());
        o.insert(
            "occurred_at".into(),
            format!("{}Z", self.occurred_at.render()).into(),
        );
        o.insert("attempt".into(), self.attempt.into());
        let mut r = Map::new();
        for f in Field::ALL {
            if let Some(v) = self.identity.get(f) {
                r.insert(f.name().into(), v.into());
            }
        }
        if let Some(b) = self.identity.auto_trigger {
            r.insert("auto_trigger".into(), b.into());
        }
        if !r.is_empty() {
            o.insert("record".into(), Value::Object(r));
        }
        if let Some(p) = self.progress {
            o.insert("progress".into(), p.into());
        }
        if let Some(c) = &self.fail_code {
            o.insert("fail_code".into(), c.clone().into());
        }
        if let Some(r) = &self.fail_reason {
            o.insert("fail_reason".into(), r.clone().into());
        }
        Value::Object(o)
    }
}

#[cfg(test)]
mod tests;
