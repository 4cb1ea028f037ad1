//! The specification test of the fold: every case of
//! `common/tests/fold_spec.json` (written by hand from the event contract) is
//! folded in every order, with duplicates, by the real fold and by the
//! reference fold, and each must give exactly the expected record.

use serde_json::{json, Map, Value};

use super::reference;
use crate::event::{decode, Event};
use crate::record::fold_all;
use crate::sample::Rng;

const SPEC: &str = include_str!("../../tests/fold_spec.json");

struct Case {
    name: String,
    id: String,
    events: Vec<Event>,
    expect: Value,
}

fn cases() -> Vec<Case> {
    let spec: Value = serde_json::from_str(SPEC).expect("fold_spec.json is JSON");
    let cases = spec["cases"].as_array().expect("a `cases` array");
    cases.iter().map(case).collect()
}

fn case(c: &Value) -> Case {
    let name = c["name"].as_str().expect("a case has a name").to_owned();
    let mut id = None;
    let events: Vec<Event> = c["events"]
        .as_array()
        .expect("a case has events")
        .iter()
        .map(|e| {
            let mut e = e.as_object().expect("an event is an object").clone();
            e.entry("schema_version").or_insert(json!(1));
            e.entry("record_id").or_insert(json!("r"));
            id = e["record_id"].as_str().map(str::to_owned);
            let bytes = serde_json::to_vec(&e).unwrap();
            decode(None, Some(&bytes))
                .unwrap_or_else(|r| panic!("case `{name}`: event does not decode: {r}"))
        })
        .collect();
    let id = id.expect("at least one event");
    // Absent in `expect` = the contract's default for that field.
    let mut expect = json!({
        "id": id,
        "source_region": null, "source_project_id": null, "source_checkpoint_id": null,
        "source_checkpoint_item_id": null, "destination_region": null,
        "destination_project_id": null, "destination_checkpoint_id": null,
        "destination_checkpoint_item_id": null, "status": null, "plan_id": null,
        "created_at": null, "updated_at": null,
        "extra_info": {"auto_trigger": false, "progress": 0, "fail_reason": "", "fail_code": ""}
    });
    let given: &Map<String, Value> = c["expect"].as_object().expect("a case has `expect`");
    for k in ["status", "created_at", "updated_at"] {
        assert!(given.contains_key(k), "case `{name}`: `expect` needs `{k}`");
    }
    for (k, v) in given {
        let slot = expect
            .get_mut(k)
            .unwrap_or_else(|| panic!("case `{name}`: unknown field `{k}` in `expect`"));
        match (k.as_str(), v) {
            ("extra_info", Value::Object(extra)) => {
                for (k, v) in extra {
                    let slot = slot
                        .get_mut(k)
                        .unwrap_or_else(|| panic!("case `{name}`: unknown field `extra_info.{k}`"));
                    *slot = v.clone();
                }
            }
            _ => *slot = v.clone(),
        }
    }
    Case {
        name,
        id,
        events,
        expect,
    }
}

/// Every order of the events (or 50 random ones past 7 events), each with
/// two redeliveries mixed in.
fn deliveries(events: &[Event]) -> Vec<Vec<&Event>> {
    let n = events.len();
    let mut orders: Vec<Vec<usize>> = Vec::new();
    if n <= 7 {
        permutations(&mut (0..n).collect(), 0, &mut orders);
    } else {
        let mut rng = Rng::new(n as u64);
        for _ in 0..50 {
            let mut o: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                o.swap(i, rng.below(i as u64 + 1) as usize);
            }
            orders.push(o);
        }
    }
    orders
        .iter()
        .enumerate()
        .map(|(k, o)| {
            let mut seq: Vec<&Event> = o.iter().map(|&i| &events[i]).collect();
            seq.insert(k % (n + 1), &events[o[(k / 3) % n]]);
            seq.push(&events[o[0]]);
            seq
        })
        .collect()
}

fn permutations(xs: &mut Vec<usize>, from: usize, out: &mut Vec<Vec<usize>>) {
    if from == xs.len() {
        out.push(xs.clone());
        return;
    }
    for i in from..xs.len() {
        xs.swap(from, i);
        permutations(xs, from + 1, out);
        xs.swap(from, i);
    }
}

/// Runs `fold` on every delivery of every case; returns the failures.
fn check(fold: impl Fn(&str, &[&Event]) -> Value) -> Vec<String> {
    let mut failures = Vec::new();
    for c in cases() {
        for seq in deliveries(&c.events) {
            let got = fold(&c.id, &seq);
            if got != c.expect {
                let order: Vec<&str> = seq.iter().map(|e| e.event_id.as_str()).collect();
                failures.push(format!(
                    "case `{}`, order {order:?}:\n  expected {}\n  got      {}",
                    c.name, c.expect, got
                ));
                break;
            }
        }
    }
    failures
}

#[test]
fn spec_has_at_least_forty_cases() {
    assert!(cases().len() >= 40, "{} cases", cases().len());
}

#[test]
fn the_fold_meets_every_case_of_the_spec_in_every_order() {
    let failures = check(|id, seq| {
        let state = fold_all(seq.iter().copied()).expect("events");
        serde_json::to_value(state.view(id)).unwrap()
    });
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_reference_fold_meets_every_case_of_the_spec_in_every_order() {
    let failures = check(|id, seq| serde_json::to_value(reference::fold(id, seq)).unwrap());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
