//! The decoder's rules, one case each, and the one-pass capture held to
//! decoding through a `Value`.

use proptest::prelude::*;

use super::*;

/// A JSON value as text: scalars in every form the rules tell apart
/// (escaped strings, integers past u64, floats, exponents), arrays and
/// objects of them.
fn arb_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        proptest::sample::select(vec![
            "0",
            "1",
            "-1",
            "1.0",
            "1e0",
            "100",
            "101",
            "-0",
            "4294967295",
            "4294967296",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "1.5",
            "2",
            "1e400",
        ])
        .prop_map(str::to_owned),
        proptest::sample::select(vec![
            r#""queued""#,
            r#""failed""#,
            r#""started""#,
            r#""e""#,
            r#""""#,
            r#""2018-06-14T11:14:48Z""#,
            r#""2018-06-14 11:14""#,
            r#""\u0071ueued""#,
            r#""a\u0000b""#,
            r#""\ud800""#,
            r#""région""#,
            r#""\n""#,
            r#""x"#,
        ])
        .prop_map(str::to_owned),
        "[a-z]{0,3}".prop_map(|s| format!("{s:?}")),
    ];
    scalar.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((arb_key(), inner), 0..4).prop_map(|v| {
                let fields: Vec<String> = v.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// Object keys: the contract's (some escaped), `record`'s, others.
fn arb_key() -> impl Strategy<Value = String> {
    let mut names: Vec<String> = slots::TOP.iter().map(|n| format!("{n:?}")).collect();
    names.extend(Field::ALL.iter().map(|f| format!("{:?}", f.name())));
    names.extend(
        [
            r#""record""#,
            r#""auto_trigger""#,
            r#""\u0065vent_id""#,
            r#""extra""#,
            r#""""#,
        ]
        .map(str::to_owned),
    );
    proptest::sample::select(names)
}

/// A message: mostly an object of the contract's fields (duplicates,
/// nulls and wrong types included), sometimes another value, sometimes
/// cut short or with a byte changed.
fn arb_message() -> impl Strategy<Value = String> {
    let valid = r#""schema_version":1,"event_id":"e","type":"queued","record_id":"r","occurred_at":"2018-06-14T11:14:48Z""#;
    let object = (
        any::<bool>(),
        proptest::collection::vec((arb_key(), arb_value()), 0..8),
    )
        .prop_map(move |(base, fields)| {
            let mut parts: Vec<String> = base.then(|| valid.to_owned()).into_iter().collect();
            parts.extend(fields.iter().map(|(k, v)| format!("{k}:{v}")));
            format!("{{{}}}", parts.join(","))
        });
    let message = prop_oneof![6 => object, 1 => arb_value()];
    (message, any::<proptest::sample::Index>(), 0u8..8).prop_map(|(m, at, how)| {
        let mut m = m.into_bytes();
        let i = at.index(m.len().max(1)).min(m.len());
        match how {
            0 => m.truncate(i),
            1 => m.insert(i, b'}'),
            2 => m.insert(i, b' '),
            _ => {}
        }
        String::from_utf8_lossy(&m).into_owned()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]
    /// The one-pass capture decodes every message exactly as decoding
    /// through a `Value` did: the same event, or the same reason (the
    /// parser's message for JSON that is not JSON included).
    #[test]
    fn the_capture_decodes_as_the_value_did(text in arb_message()) {
        let bytes = Some(text.as_bytes());
        prop_assert_eq!(decode(None, bytes), decode_via_value(None, bytes), "{}", text);
    }
}

fn ok(v: &str) -> Event {
    decode(None, Some(v.as_bytes())).unwrap()
}
fn err(v: &str) -> Reject {
    decode(None, Some(v.as_bytes())).unwrap_err()
}
const BASE: &str =
    r#""schema_version":1,"event_id":"e","record_id":"r","occurred_at":"2018-06-14T11:14:48Z""#;

#[test]
fn decodes_the_spec_examples() {
    let e = ok(
        r#"{"schema_version":1,"event_id":"e-1","type":"queued","record_id":"30b9","occurred_at":"2018-06-14T11:14:48.946Z","record":{"source_region":"region-1","auto_trigger":true,"plan_id":null},"extra":{"x":1}}"#,
    );
    assert_eq!(e.kind, EventType::Queued);
    assert_eq!(e.attempt, 1);
    assert_eq!(e.identity.get(Field::SourceRegion), Some("region-1"));
    assert_eq!(e.identity.get(Field::PlanId), None);
    assert_eq!(e.identity.auto_trigger, Some(true));
}

#[test]
fn each_rule_has_its_reason() {
    let cases: Vec<(String, &str)> = vec![
        ("[1]".into(), "not_object"),
        ("{".into(), "not_json"),
        (r#"{"event_id":"e","type":"queued","record_id":"r","occurred_at":"2018-06-14T11:14:48Z"}"#.into(), "missing_field"),
        (format!(r#"{{{BASE},"type":"exploded"}}"#), "unknown_type"),
        (format!(r#"{{{BASE},"type":7}}"#), "wrong_type"),
        (format!(r#"{{{BASE},"type":"failed"}}"#), "missing_field"),
        (format!(r#"{{{BASE},"type":"started","progress":101}}"#), "out_of_range"),
        (format!(r#"{{{BASE},"type":"started","progress":-1}}"#), "out_of_range"),
        (format!(r#"{{{BASE},"type":"started","progress":1.5}}"#), "wrong_type"),
        (format!(r#"{{{BASE},"type":"started","attempt":0}}"#), "out_of_range"),
        (format!(r#"{{{BASE},"type":"started","record":[]}}"#), "wrong_type"),
        (format!(r#"{{{BASE},"type":"started","record":{{"auto_trigger":"yes"}}}}"#), "wrong_type"),
        (format!(r#"{{{BASE},"type":"started","record":{{"plan_id":"{}"}}}}"#, "x".repeat(129)), "out_of_range"),
        (format!(r#"{{{BASE},"type":"failed","fail_code":"{}"}}"#, "x".repeat(65)), "out_of_range"),
        (r#"{"schema_version":2,"event_id":"e","type":"queued","record_id":"r","occurred_at":"2018-06-14T11:14:48Z"}"#.into(), "unsupported_schema_version"),
        (r#"{"schema_version":"1","event_id":"e","type":"queued","record_id":"r","occurred_at":"2018-06-14T11:14:48Z"}"#.into(), "wrong_type"),
        (r#"{"schema_version":1,"event_id":"","type":"queued","record_id":"r","occurred_at":"2018-06-14T11:14:48Z"}"#.into(), "out_of_range"),
        (r#"{"schema_version":1,"event_id":"e","type":"queued","record_id":"r","occurred_at":"2018-06-14 11:14"}"#.into(), "invalid_timestamp"),
    ];
    for (input, code) in cases {
        assert_eq!(err(&input).code(), code, "{input}");
    }
}

#[test]
fn transport_rules() {
    assert_eq!(decode(None, None).unwrap_err(), Reject::EmptyMessage);
    assert_eq!(
        decode(None, Some(&[0xff, 0xfe])).unwrap_err(),
        Reject::InvalidUtf8
    );
    let big = vec![b' '; MAX_EVENT_BYTES + 1];
    assert_eq!(decode(None, Some(&big)).unwrap_err().code(), "oversized");
    let v = format!(r#"{{{BASE},"type":"queued"}}"#);
    assert_eq!(
        decode(Some(b"other"), Some(v.as_bytes())).unwrap_err(),
        Reject::KeyMismatch
    );
    assert!(decode(Some(b"r"), Some(v.as_bytes())).is_ok());
    let deep = "[".repeat(10_000);
    assert_eq!(
        decode(None, Some(deep.as_bytes())).unwrap_err().code(),
        "not_json"
    );
}
