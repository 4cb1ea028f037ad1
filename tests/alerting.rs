//! The operators' alert rules and dashboard (issue 28) against what a
//! running tracker exports: every metric name in `config/prometheus/alerts.yml`
//! and in each panel of `config/grafana/tracker.json` is in a scrape of
//! `/metrics`, parsed by a Prometheus text-format parser, and so is every
//! label name they match on (`{…}`) or group by (`by (…)`, `without (…)`,
//! `on (…)`, `ignoring (…)`, `group_left (…)`), so a renamed metric or label
//! breaks the build, not the pager. The scrape also passes `promtool check
//! metrics` when promtool is at hand. The rules' own behaviour is promtool's
//! to test (`alerts_test.yml`, run by scripts/test).

#[path = "alerting/promql.rs"]
mod promql;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prometheus_parse::{Scrape, Value as Sampled};
use promql::{uses, Uses};
use serde_json::Value;
use support::*;

const ALERTS: &str = include_str!("../config/prometheus/alerts.yml");
const DASHBOARD: &str = include_str!("../config/grafana/tracker.json");

/// Series the tracker does not export: Prometheus adds `up` to every target.
const FROM_PROMETHEUS: [&str; 1] = ["up"];

/// Labels Prometheus' scrape configuration puts on every series (the
/// target's), not in `/metrics`: matched and grouped on without a check.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Families exported without samples until something happens: a partition
/// held at an offset gap (the alert keys on its presence). The scrape must
/// still declare them (`# HELP`), so a rename is caught; their labels are not
/// in the scrape to check (an exception: the alert's unit tests in
/// alerts_test.yml spell them as `metrics.rs` writes them).
const DECLARED_ONLY: [&str; 1] = ["tracker_partition_gap"];

/// Every rule's `expr:`, one line or a `|` block.
fn alert_exprs() -> Vec<String> {
    let lines: Vec<&str> = ALERTS.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        if rest.trim() != "|" {
            out.push(rest.trim().to_owned());
            continue;
        }
        let block: Vec<&str> = lines[n + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || indent(l) > indent(line))
            .copied()
            .collect();
        out.push(block.join("\n"));
    }
    out
}

/// The dashboard's queries, checked for shape on the way: valid JSON, a
/// `${DS_PROMETHEUS}` input, every panel but the rows with targets, each
/// target with an `expr` on that datasource.
fn dashboard_exprs() -> Vec<(String, String)> {
    let d: Value = serde_json::from_str(DASHBOARD).expect("tracker.json is JSON");
    assert_eq!(
        d["__inputs"][0]["name"], "DS_PROMETHEUS",
        "importable as is"
    );
    assert_eq!(d["__inputs"][0]["pluginId"], "prometheus");
    let panels = d["panels"].as_array().expect("panels");
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let mut out = Vec::new();
    for p in panels.iter().filter(|p| p["type"] != "row") {
        let title = p["title"].as_str().expect("a title").to_owned();
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().filter(|t| !t.is_empty());
        for t in targets.unwrap_or_else(|| panic!("{title}: no targets")) {
            assert_eq!(t["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
            let expr = t["expr"].as_str().filter(|e| !e.trim().is_empty());
            out.push((
                title.clone(),
                expr.unwrap_or_else(|| panic!("{title}: a target without expr"))
                    .to_owned(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        let q = v["query"]["query"].as_str().unwrap();
        // label_values(m, l): the values `group by (l) (m)` has.
        let (metric, label) = q
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.split_once(','))
            .unwrap_or_else(|| panic!("variable query {q}"));
        let expr = format!("group by ({label}) ({metric})");
        out.push((format!("variable {}", v["name"]), expr));
    }
    out
}

/// Every (where, what it uses) of the rules and the dashboard.
fn used() -> Vec<(String, Uses)> {
    let alerts = alert_exprs();
    assert_eq!(
        alerts.len(),
        ALERTS.matches("- alert:").count(),
        "an expr per alert"
    );
    let queries = alerts
        .into_iter()
        .map(|e| ("alerts.yml".to_owned(), e))
        .chain(dashboard_exprs());
    let mut out = Vec::new();
    for (place, expr) in queries {
        let u = uses(&expr);
        assert!(!u.metrics.is_empty(), "{place}: no metric in {expr}");
        out.push((place, u));
    }
    out
}

/// Each series name a query can use, with the label names its samples
/// carry, as the scrape has them. The parser lists a histogram's buckets
/// under the family's name without `le` (its `_sum` and `_count` as they
/// are): they are put back as `NAME_bucket` with `le`, so that a query's
/// `_bucket` is accepted only for a histogram and `_sum`/`_count` only for
/// series that are exported.
fn exported(scrape: &Scrape) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &scrape.samples {
        let (name, extra) = match s.value {
            Sampled::Histogram(_) => (format!("{}_bucket", s.metric), Some("le")),
            Sampled::Summary(_) => (s.metric.clone(), Some("quantile")),
            _ => (s.metric.clone(), None),
        };
        let labels = out.entry(name).or_default();
        labels.extend(s.labels.keys().cloned());
        labels.extend(extra.map(str::to_owned));
    }
    out
}

/// What the queries use that the scrape does not export, each with where
/// it is used: a metric, a label of a metric's selector, a grouping label on
/// none of the expression's metrics. Prometheus' own (`up`, the target
/// labels) and the declared-only families' labels are exceptions.
fn missing(scrape: &Scrape, used: &[(String, Uses)]) -> BTreeSet<String> {
    let exported = exported(scrape);
    let target = |l: &String| TARGET_LABELS.contains(&l.as_str());
    let mut out = BTreeSet::new();
    for (place, u) in used {
        for (m, labels) in &u.metrics {
            if FROM_PROMETHEUS.contains(&m.as_str()) {
                continue;
            }
            if DECLARED_ONLY.contains(&m.as_str()) {
                if !scrape.docs.contains_key(m) {
                    out.insert(format!("{m} ({place})"));
                }
                continue;
            }
            let Some(has) = exported.get(m) else {
                out.insert(format!("{m} ({place})"));
                continue;
            };
            for l in labels.iter().filter(|l| !target(l) && !has.contains(*l)) {
                out.insert(format!("label {l} of {m} ({place})"));
            }
        }
        let on_some = |l: &String| {
            u.metrics
                .keys()
                .any(|m| exported.get(m).is_some_and(|has| has.contains(l)))
        };
        for l in u.grouping.iter().filter(|l| !target(l) && !on_some(l)) {
            out.insert(format!("grouping label {l} ({place})"));
        }
    }
    out
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("a valid exposition")
}

/// promtool, when at hand: `PROMTOOL` (scripts/test sets it), or what
/// scripts/install-promtool prints.
fn promtool() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("PROMTOOL") {
        return Some(p.into());
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new(format!("{root}/scripts/install-promtool"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let path = String::from_utf8(out.stdout).ok()?;
    Some(path.trim().into())
}

/// `promtool check metrics` over `text`: its exit code and what it said.
fn promtool_check_metrics(promtool: &std::path::Path, text: &str) -> (i32, String) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), said)
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_dashboard_has_a_query_on_every_panel_and_the_tokenizer_finds_metrics_and_labels() {
    let u = uses(
        "histogram_quantile(0.99, sum by (route, le) (rate(x_seconds_bucket{route!~\"/a|b\", le = \"+Inf\"}[5m])))\n\
         / on(instance) y_total{code=\"T.X\"} > 0.5 and z offset 5m or vector(0) unless $v\n\
         or sum without (a) (w{ b=\"c{d}\" })",
    );
    let want = BTreeMap::from([
        ("w".to_owned(), set(&["b"])),
        ("x_seconds_bucket".to_owned(), set(&["le", "route"])),
        ("y_total".to_owned(), set(&["code"])),
        ("z".to_owned(), set(&[])),
    ]);
    assert_eq!(u.metrics, want);
    assert_eq!(u.grouping, set(&["a", "instance", "le", "route"]));
    let used = used();
    assert!(used.iter().any(|(p, _)| p.starts_with("variable")));
    let all = |f: fn(&Uses) -> Vec<String>| -> BTreeSet<String> {
        used.iter().flat_map(|(_, u)| f(u)).collect()
    };
    let metrics = all(|u| u.metrics.keys().cloned().collect());
    assert!(metrics.contains("tracker_status_changes_total"));
    let labels = all(|u| u.metrics.values().flatten().cloned().collect());
    assert!(labels.contains("status") && labels.contains("code"));
    let grouping = all(|u| u.grouping.iter().cloned().collect());
    assert!(grouping.contains("source_region") && grouping.contains("le"));
}

/// The check itself, on a scrape of its own: a name exported as is, a
/// histogram's `_bucket` and its labels pass; a suffix on what is not a
/// histogram, or a label no series of the metric has, does not.
#[test]
fn only_exported_names_and_labels_pass() {
    let scrape = parse(
        "# HELP h_seconds A histogram.\n# TYPE h_seconds histogram\n\
         h_seconds_bucket{route=\"/a\",le=\"0.1\"} 1\nh_seconds_bucket{route=\"/a\",le=\"+Inf\"} 2\n\
         h_seconds_sum{route=\"/a\"} 0.3\nh_seconds_count{route=\"/a\"} 2\n\
         # HELP things A gauge.\n# TYPE things gauge\nthings 3\n\
         # HELP c_total A counter.\n# TYPE c_total counter\nc_total{code=\"X\"} 1\n\
         # HELP tracker_partition_gap Declared only.\n# TYPE tracker_partition_gap gauge\n",
    );
    let check = |expr: &str| missing(&scrape, &[("q".to_owned(), uses(expr))]);
    for ok in [
        "sum by (le, route) (rate(h_seconds_bucket{route=\"/a\"}[5m]))",
        "h_seconds_count{route=\"/a\"} / h_seconds_sum",
        "sum by (code, instance) (c_total{code=\"X\",job=\"t\"}) / on(instance) things",
        "tracker_partition_gap{instance=\"a\"} == 1 or up == 0",
    ] {
        assert_eq!(check(ok), set(&[]), "{ok}");
    }
    for (bad, want) in [
        ("things_count", "things_count (q)"),
        ("things_bucket", "things_bucket (q)"),
        ("c_total_sum", "c_total_sum (q)"),
        ("h_seconds", "h_seconds (q)"),
        ("c_totals", "c_totals (q)"),
        ("c_total{status=\"X\"}", "label status of c_total (q)"),
        (
            "h_seconds_count{le=\"1\"}",
            "label le of h_seconds_count (q)",
        ),
        ("sum by (status) (c_total)", "grouping label status (q)"),
        (
            "sum by (route) (c_total) / things",
            "grouping label route (q)",
        ),
    ] {
        assert_eq!(check(bad), set(&[want]), "{bad}");
    }
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn every_metric_and_label_the_alerts_and_the_dashboard_use_is_exported() {
    let broker = Broker::start();
    let topic = broker.create_topic(2);
    let stream = Stream::sample(60, 28);
    stream.publish(&broker, &topic, 0..stream.messages.len());
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start(&broker, &topic, &dir.path().join("data"), &[]);
    tracker.wait_consumed(stream.messages.len() as u64, Duration::from_secs(120));

    let (status, body) = tracker.get("/metrics", None);
    assert_eq!(status, 200);
    let text = body.as_str().expect("Prometheus text").to_owned();
    // The parser skips what it cannot read; promtool does not.
    match promtool() {
        Some(p) => {
            let (code, said) = promtool_check_metrics(&p, &text);
            assert_eq!(code, 0, "promtool check metrics: {said}\nscrape:\n{text}");
        }
        None => eprintln!("no promtool: the scrape is not linted (set PROMTOOL)"),
    }
    let missing = missing(&parse(&text), &used());
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\nscrape:\n{text}"
    );
}
