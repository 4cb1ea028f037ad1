//! What a message's JSON holds for the fields the contract names, captured
//! in one pass of the parser with no document built (issue 36: decoding
//! through a `serde_json::Value` cost ~3 µs of the ~14 µs an event took).
//! The capture keeps every rule the `Value` decoding had: the last of
//! duplicate keys wins, `null` is absent, numbers keep their JSON form, and
//! whatever else the message holds is parsed in full (so bad JSON anywhere
//! is `not_json`, as before) and then dropped. [`Slots::of_value`] fills the
//! same slots from a `Value`: the reference the capture is held to.
//!
//! One difference, on purpose: with serde_json's `raw_value` feature (which
//! axum turns on in the tracker binary), a `Value` read an object whose
//! first key is serde_json's private `$serde_json::private::RawValue` token
//! as the JSON text in its value. The contract knows no such key: the
//! capture reads it as any other unknown key.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Number;

use crate::identity::Field;

/// The top-level fields the contract names, in slot order.
pub(super) const TOP: [&str; 9] = [
    "schema_version",
    "event_id",
    "type",
    "record_id",
    "occurred_at",
    "attempt",
    "progress",
    "fail_code",
    "fail_reason",
];

/// `record`'s fields: the identity fields in [`Field::ALL`] order, then
/// `auto_trigger`.
const RECORD_FIELDS: usize = Field::ALL.len() + 1;

fn record_slot(name: &str) -> Option<usize> {
    if name == "auto_trigger" {
        return Some(Field::ALL.len());
    }
    Field::ALL.iter().position(|f| f.name() == name)
}

/// One field's value, `null` (absent) aside.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Slot<'a> {
    Str(Cow<'a, str>),
    Num(Number),
    Bool(bool),
    /// An array or an object where the contract wants neither.
    Other,
}

/// What `record` holds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum RecordSlot<'a> {
    Object(Box<RecordFields<'a>>),
    NotObject,
}

/// A message's fields, as the contract names them.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Slots<'a> {
    top: [Option<Slot<'a>>; TOP.len()],
    record: Option<RecordSlot<'a>>,
}

impl<'a> Slots<'a> {
    /// Captures the fields of the JSON `text`: `Ok(None)` when it is JSON
    /// but not an object, `Err` when it is not JSON.
    pub(super) fn capture(text: &'a str) -> Result<Option<Slots<'a>>, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(text);
        let slots = de.deserialize_any(TopVisitor)?;
        de.end()?;
        Ok(slots)
    }

    pub(super) fn get(&self, name: &str) -> Option<&Slot<'a>> {
        let i = TOP.iter().position(|n| *n == name)?;
        self.top[i].as_ref()
    }

    pub(super) fn record(&self) -> Option<&RecordSlot<'a>> {
        self.record.as_ref()
    }
}

/// `record`'s fields, by [`record_slot`].
pub(super) type RecordFields<'a> = [Option<Slot<'a>>; RECORD_FIELDS];

/// An identity field of `record`, or with `None`, `auto_trigger`.
pub(super) fn record_field<'s, 'a>(
    fields: &'s RecordFields<'a>,
    f: Option<Field>,
) -> Option<&'s Slot<'a>> {
    fields[f.map_or(Field::ALL.len(), |f| f as usize)].as_ref()
}

/// A string, borrowed from the text when it has no escapes.
struct Str<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, parsed in full as a `Value` would be (strings and keys
/// unescaped and checked, numbers in range) and dropped.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor).map(|_| Skip)
    }
}

/// One value: a [`Slot`], `None` for `null`; arrays and objects are
/// parsed in full and become [`Slot::Other`].
struct AnyVisitor;

impl<'de> Visitor<'de> for AnyVisitor {
    type Value = Option<Slot<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Some(Slot::Bool(b)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Some(Slot::Num(n.into())))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Some(Slot::Num(n.into())))
    }
    fn visit_f64<E>(self, n: f64) -> Result<Self::Value, E> {
        // As a `Value` holds it: a float JSON can write is always finite.
        Ok(Some(Number::from_f64(n).map_or(Slot::Other, Slot::Num)))
    }
    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Slot::Str(Cow::Borrowed(s))))
    }
    fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
        Ok(Some(Slot::Str(Cow::Owned(s.to_owned()))))
    }
    fn visit_string<E>(self, s: String) -> Result<Self::Value, E> {
        Ok(Some(Slot::Str(Cow::Owned(s))))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Some(Slot::Other))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_key::<Str>()?.is_some() {
            map.next_value::<Skip>()?;
        }
        Ok(Some(Slot::Other))
    }
}

/// One field's value, by [`AnyVisitor`].
struct Any<'de>(Option<Slot<'de>>);

impl<'de> Deserialize<'de> for Any<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AnyVisitor).map(Any)
    }
}

/// The message: its slots when it is an object, `None` when it is another
/// JSON value (parsed in full all the same).
struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Option<Slots<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slots = Slots::default();
        while let Some(Str(key)) = map.next_key::<Str>()? {
            if key == "record" {
                slots.record = map.next_value_seed(RecordSeed)?;
            } else if let Some(i) = TOP.iter().position(|n| *n == key) {
                slots.top[i] = map.next_value::<Any>()?.0;
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(Some(slots))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        AnyVisitor.visit_seq(seq).map(|_| None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// `record`'s value: its fields when it is an object.
struct RecordSeed;

impl<'de> DeserializeSeed<'de> for RecordSeed {
    type Value = Option<RecordSlot<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed {
    type Value = Option<RecordSlot<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Box<RecordFields<'de>> = Box::default();
        while let Some(Str(key)) = map.next_key::<Str>()? {
            match record_slot(&key) {
                Some(i) => fields[i] = map.next_value::<Any>()?.0,
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(Some(RecordSlot::Object(fields)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        AnyVisitor
            .visit_seq(seq)
            .map(|_| Some(RecordSlot::NotObject))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Some(RecordSlot::NotObject))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Some(RecordSlot::NotObject))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Some(RecordSlot::NotObject))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Some(RecordSlot::NotObject))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Some(RecordSlot::NotObject))
    }
}

/// The reference: the same slots from a parsed `Value`.
#[cfg(any(test, feature = "testkit"))]
impl<'a> Slots<'a> {
    pub(super) fn of_value(v: &'a serde_json::Value) -> Option<Slots<'a>> {
        use serde_json::Value;
        fn slot(v: &Value) -> Option<Slot<'_>> {
            match v {
                Value::Null => None,
                Value::Bool(b) => Some(Slot::Bool(*b)),
                Value::Number(n) => Some(Slot::Num(n.clone())),
                Value::String(s) => Some(Slot::Str(Cow::Borrowed(s))),
                Value::Array(_) | Value::Object(_) => Some(Slot::Other),
            }
        }
        let obj = v.as_object()?;
        let mut slots = Slots::default();
        for (i, name) in TOP.iter().enumerate() {
            slots.top[i] = obj.get(*name).and_then(slot);
        }
        slots.record = match obj.get("record") {
            None | Some(Value::Null) => None,
            Some(Value::Object(r)) => {
                let mut fields: Box<RecordFields<'_>> = Box::default();
                for (k, v) in r {
                    if let Some(i) = record_slot(k) {
                        fields[i] = slot(v);
                    }
                }
                Some(RecordSlot::Object(fields))
            }
            Some(_) => Some(RecordSlot::NotObject),
        };
        Some(slots)
    }
}
