//! The bad-input corpus: one message for every rule of `docs/events.md` a
//! producer can break (and then some), plus random bytes. None may crash or
//! stall the partition; each must be quarantined with the right reason, and
//! the event after them must still be applied.

use common::event::MAX_EVENT_BYTES;
use common::{decode, Message, Store};
use proptest::prelude::*;

const OK: &str =
    r#""schema_version":1,"event_id":"e","record_id":"r","occurred_at":"2018-06-14T11:14:48Z""#;

fn with(extra: &str) -> String {
    format!("{{{OK},{extra}}}")
}

fn without(field: &str, kind: &str) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&with(&format!(r#""type":"{kind}""#))).unwrap();
    v.as_object_mut().unwrap().remove(field);
    v.to_string()
}

/// (what, key, value, expected reason code)
type Case = (&'static str, Option<Vec<u8>>, Option<Vec<u8>>, &'static str);

fn corpus() -> Vec<Case> {
    let s = |x: String| Some(x.into_bytes());
    let long = |n: usize| "x".repeat(n);
    let mut oversized = with(r#""type":"queued","fail_reason":""#).into_bytes();
    oversized.truncate(oversized.len() - 2);
    oversized.extend(std::iter::repeat_n(b'x', MAX_EVENT_BYTES));
    oversized.extend(b"\"}");
    vec![
        ("tombstone", None, None, "empty_message"),
        ("empty bytes", None, Some(vec![]), "not_json"),
        ("not json", None, s("{oops".into()), "not_json"),
        (
            "trailing garbage",
            None,
            s(with(r#""type":"queued""#) + " x"),
            "not_json",
        ),
        (
            "byte order mark",
            None,
            Some(
                [
                    b"\xef\xbb\xbf".as_slice(),
                    with(r#""type":"queued""#).as_bytes(),
                ]
                .concat(),
            ),
            "not_json",
        ),
        ("deeply nested", None, s("[".repeat(10_000)), "not_json"),
        (
            "huge number",
            None,
            s(with(r#""type":"queued","attempt":1e400"#)),
            "not_json",
        ),
        (
            "invalid utf-8",
            None,
            Some(vec![b'{', 0xff, 0xfe, b'}']),
            "invalid_utf8",
        ),
        ("oversized", None, Some(oversized), "oversized"),
        ("array", None, s("[1,2]".into()), "not_object"),
        ("string", None, s("\"hello\"".into()), "not_object"),
        ("number", None, s("42".into()), "not_object"),
        ("null", None, s("null".into()), "not_object"),
        (
            "no schema_version",
            None,
            s(without("schema_version", "queued")),
            "missing_field",
        ),
        (
            "no event_id",
            None,
            s(without("event_id", "queued")),
            "missing_field",
        ),
        (
            "no type",
            None,
            s(without("type", "queued")),
            "missing_field",
        ),
        (
            "no record_id",
            None,
            s(without("record_id", "queued")),
            "missing_field",
        ),
        (
            "no occurred_at",
            None,
            s(without("occurred_at", "queued")),
            "missing_field",
        ),
        (
            "failed without fail_code",
            None,
            s(with(r#""type":"failed""#)),
            "missing_field",
        ),
        (
            "schema_version as string",
            None,
            s(without("schema_version", "queued").replacen('{', r#"{"schema_version":"1","#, 1)),
            "wrong_type",
        ),
        (
            "schema_version as float",
            None,
            s(without("schema_version", "queued").replacen('{', r#"{"schema_version":1.0,"#, 1)),
            "wrong_type",
        ),
        (
            "schema_version 2",
            None,
            s(without("schema_version", "queued").replacen('{', r#"{"schema_version":2,"#, 1)),
            "unsupported_schema_version",
        ),
        (
            "event_id as number",
            None,
            s(without("event_id", "queued").replacen('{', r#"{"event_id":7,"#, 1)),
            "wrong_type",
        ),
        (
            "event_id empty",
            None,
            s(without("event_id", "queued").replacen('{', r#"{"event_id":"","#, 1)),
            "out_of_range",
        ),
        (
            "event_id too long",
            None,
            s(without("event_id", "queued").replacen(
                '{',
                &format!(r#"{{"event_id":"{}","#, long(129)),
                1,
            )),
            "out_of_range",
        ),
        (
            "unknown type",
            None,
            s(with(r#""type":"exploded""#)),
            "unknown_type",
        ),
        (
            "type as array",
            None,
            s(with(r#""type":["queued"]"#)),
            "wrong_type",
        ),
        (
            "record_id too long",
            None,
            s(without("record_id", "queued").replacen(
                '{',
                &format!(r#"{{"record_id":"{}","#, long(129)),
                1,
            )),
            "out_of_range",
        ),
        (
            "record_id as object",
            None,
            s(without("record_id", "queued").replacen('{', r#"{"record_id":{},"#, 1)),
            "wrong_type",
        ),
        (
            "occurred_at garbage",
            None,
            s(without("occurred_at", "queued").replacen('{', r#"{"occurred_at":"yesterday","#, 1)),
            "invalid_timestamp",
        ),
        (
            "occurred_at without offset",
            None,
            s(without("occurred_at", "queued").replacen(
                '{',
                r#"{"occurred_at":"2018-06-14T11:14:48","#,
                1,
            )),
            "invalid_timestamp",
        ),
        (
            "occurred_at as number",
            None,
            s(without("occurred_at", "queued").replacen('{', r#"{"occurred_at":1528974888,"#, 1)),
            "wrong_type",
        ),
        (
            "attempt 0",
            None,
            s(with(r#""type":"queued","attempt":0"#)),
            "out_of_range",
        ),
        (
            "attempt negative",
            None,
            s(with(r#""type":"queued","attempt":-3"#)),
            "out_of_range",
        ),
        (
            "attempt over u32",
            None,
            s(with(r#""type":"queued","attempt":4294967296"#)),
            "out_of_range",
        ),
        (
            "attempt as string",
            None,
            s(with(r#""type":"queued","attempt":"2""#)),
            "wrong_type",
        ),
        (
            "progress 101",
            None,
            s(with(r#""type":"progress","progress":101"#)),
            "out_of_range",
        ),
        (
            "progress float",
            None,
            s(with(r#""type":"progress","progress":50.5"#)),
            "wrong_type",
        ),
        (
            "record as string",
            None,
            s(with(r#""type":"queued","record":"r""#)),
            "wrong_type",
        ),
        (
            "record field as number",
            None,
            s(with(r#""type":"queued","record":{"source_region":5}"#)),
            "wrong_type",
        ),
        (
            "record field too long",
            None,
            s(with(&format!(
                r#""type":"queued","record":{{"plan_id":"{}"}}"#,
                long(129)
            ))),
            "out_of_range",
        ),
        (
            "auto_trigger as string",
            None,
            s(with(r#""type":"queued","record":{"auto_trigger":"true"}"#)),
            "wrong_type",
        ),
        (
            "fail_code too long",
            None,
            s(with(&format!(
                r#""type":"failed","fail_code":"{}""#,
                long(65)
            ))),
            "out_of_range",
        ),
        (
            "fail_reason too long",
            None,
            s(with(&format!(
                r#""type":"skipped","fail_reason":"{}""#,
                long(1025)
            ))),
            "out_of_range",
        ),
        (
            "fail_reason as bool",
            None,
            s(with(r#""type":"skipped","fail_reason":false"#)),
            "wrong_type",
        ),
        (
            "key differs from record_id",
            Some(b"other".to_vec()),
            s(with(r#""type":"queued""#)),
            "key_mismatch",
        ),
    ]
}

/// `docs/event.schema.json`, the schema producers validate against, agrees
/// with the decoder: every sample event and every event of the fold's
/// specification passes it, and every corpus message the decoder rejects for
/// a reason JSON can show fails it.
#[test]
fn the_published_json_schema_agrees_with_the_decoder() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/event.schema.json")).unwrap();
    let schema = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let events = common::sample::events(&common::sample::Shape {
        records: 300,
        projects: 3,
        regions: 4,
        seed: 5,
    });
    for e in &events {
        let json = e.to_json();
        assert!(
            schema.is_valid(&json),
            "sample event fails the schema: {json}"
        );
    }
    let spec: serde_json::Value = serde_json::from_str(include_str!("fold_spec.json")).unwrap();
    let mut checked = 0;
    for case in spec["cases"].as_array().unwrap() {
        for e in case["events"].as_array().unwrap() {
            let mut e = e.clone();
            let o = e.as_object_mut().unwrap();
            o.entry("schema_version").or_insert(1.into());
            o.entry("record_id").or_insert("r".into());
            let bytes = serde_json::to_vec(&e).unwrap();
            assert!(decode(None, Some(&bytes)).is_ok(), "{e}");
            assert!(schema.is_valid(&e), "spec event fails the schema: {e}");
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
    // Rejections about the message, not its JSON, the schema cannot show;
    // nor can it tell 1.0 from 1 (JSON Schema's integers include 1.0).
    let beyond_json = [
        "empty_message",
        "oversized",
        "invalid_utf8",
        "not_json",
        "key_mismatch",
    ];
    let mut rejected = 0;
    for (what, _, value, code) in corpus() {
        let Some(json) = value.and_then(|v| serde_json::from_slice::<serde_json::Value>(&v).ok())
        else {
            continue;
        };
        if beyond_json.contains(&code) || what == "schema_version as float" {
            continue;
        }
        assert!(
            !schema.is_valid(&json),
            "{what} ({code}) passes the schema: {json}"
        );
        rejected += 1;
    }
    assert!(rejected > 30, "{rejected}");
}

#[test]
fn every_kind_of_bad_input_is_quarantined_with_its_reason_and_ingest_goes_on() {
    let corpus = corpus();
    assert!(corpus.len() >= 30);
    let store = Store::temporary().unwrap();
    let mut messages: Vec<Message> = corpus
        .iter()
        .enumerate()
        .map(|(i, (_, key, value, _))| Message {
            topic: "t".into(),
            partition: 0,
            offset: i as i64,
            key: key.clone(),
            payload: value.clone(),
        })
        .collect();
    let good = with(r#""type":"queued","record":{"source_project_id":"p"}"#);
    messages.push(Message {
        topic: "t".into(),
        partition: 0,
        offset: corpus.len() as i64,
        key: Some(b"r".to_vec()),
        payload: Some(good.into_bytes()),
    });
    let out = store.apply_batch(&messages).unwrap();
    assert_eq!((out.quarantined as usize, out.applied), (corpus.len(), 1));
    assert_eq!(
        store.checkpoints()[&("t".to_owned(), 0)],
        corpus.len() as i64 + 1
    );
    let mut q = store.view().quarantine(0, 1000).unwrap();
    q.reverse(); // oldest first
    assert_eq!(q.len(), corpus.len());
    for ((what, key, value, code), entry) in corpus.iter().zip(&q) {
        assert_eq!(entry.reason_code, *code, "{what}: {}", entry.reason);
        assert_eq!(&entry.key, key, "{what}");
        let raw = value.clone().unwrap_or_default();
        assert_eq!(entry.raw, raw[..raw.len().min(MAX_EVENT_BYTES)], "{what}");
        assert!(!entry.reason.is_empty());
    }
    assert_eq!(store.totals().quarantined as usize, corpus.len());
    store.assert_internally_consistent();
}

proptest! {
    /// Random bytes never panic the decoder, and a batch of them is fully
    /// accounted for: every message is applied or quarantined, the checkpoint
    /// passes them all.
    #[test]
    fn random_bytes_are_accounted_for(values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..40)) {
        for v in &values {
            let _ = decode(None, Some(v));
        }
        let store = Store::temporary().unwrap();
        let messages: Vec<Message> = values.iter().enumerate()
            .map(|(i, v)| Message { topic: "t".into(), partition: 3, offset: 100 + i as i64, key: None, payload: Some(v.clone()) })
            .collect();
        let out = store.apply_batch(&messages).unwrap();
        prop_assert_eq!((out.applied + out.duplicates + out.quarantined) as usize, values.len());
        prop_assert_eq!(store.checkpoints()[&("t".to_owned(), 3)], 100 + values.len() as i64);
    }
}
