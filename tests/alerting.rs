//! The operators' alert rules and dashboard (issue 28) against what a
//! running tracker exports: every metric name in `config/prometheus/alerts.yml`
//! and in each panel of `config/grafana/tracker.json` is in a scrape of
//! `/metrics`, parsed by a Prometheus text-format parser, so a renamed metric
//! breaks the build, not the pager. The rules' own behaviour is promtool's to
//! test (`alerts_test.yml`, run by scripts/test).

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use support::*;

const ALERTS: &str = include_str!("../config/prometheus/alerts.yml");
const DASHBOARD: &str = include_str!("../config/grafana/tracker.json");

/// Series the tracker does not export: Prometheus adds `up` to every target.
const FROM_PROMETHEUS: [&str; 1] = ["up"];

/// Families exported without samples until something happens: a partition
/// held at an offset gap (the alert keys on its presence). The scrape must
/// still declare them (`# HELP`), so a rename is caught.
const DECLARED_ONLY: [&str; 1] = ["tracker_partition_gap"];

/// Metric names in a PromQL expression: identifiers that are not functions
/// (followed by `(`), keywords and aggregations, label names (inside `{…}` or a `by (…)`
/// list), Grafana variables (`$…`), strings, durations or numbers.
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Aggregations too: `sum by (x) (…)` puts no `(` after the name.
    const KEYWORDS: [&str; 24] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "atan2",
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const GROUPING: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let c: Vec<char> = expr.chars().collect();
    let (mut out, mut i, mut labels_next) = (BTreeSet::new(), 0, false);
    // Index past the bracket closing the one at `i`, strings inside skipped.
    let close = |mut i: usize, open: char, shut: char| {
        let mut depth = 0;
        while i < c.len() {
            match c[i] {
                '"' | '\'' | '`' => i = skip_string(&c, i) - 1,
                x if x == open => depth += 1,
                x if x == shut => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(&c, i),
            '{' => i = close(i, '{', '}'),
            '[' => i = close(i, '[', ']'),
            '(' if labels_next => {
                i = close(i, '(', ')');
                labels_next = false;
            }
            x if x == '$' || x.is_ascii_digit() || x == '.' => {
                i += 1;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || "_.".contains(c[i])) {
                    i += 1;
                }
            }
            x if x.is_ascii_alphabetic() || x == '_' || x == ':' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || "_:".contains(c[i])) {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let next = c[i..].iter().find(|x| !x.is_whitespace());
                if GROUPING.contains(&word.as_str()) {
                    labels_next = true;
                } else if !KEYWORDS.contains(&word.as_str()) && next != Some(&'(') {
                    out.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Index past the string that starts at `i`.
fn skip_string(c: &[char], i: usize) -> usize {
    let quote = c[i];
    let mut j = i + 1;
    while j < c.len() && c[j] != quote {
        j += if c[j] == '\\' { 2 } else { 1 };
    }
    j + 1
}

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
        let metric = q
            .strip_prefix("label_values(")
            .and_then(|q| q.split(',').next())
            .unwrap_or_else(|| panic!("variable query {q}"));
        out.push((format!("variable {}", v["name"]), metric.to_owned()));
    }
    out
}

/// Every (where, metric) the rules and the dashboard use.
fn used_metrics() -> Vec<(String, String)> {
    let alerts = alert_exprs();
    assert_eq!(
        alerts.len(),
        ALERTS.matches("- alert:").count(),
        "an expr per alert"
    );
    let mut out = Vec::new();
    let queries = alerts
        .into_iter()
        .map(|e| ("alerts.yml".to_owned(), e))
        .chain(dashboard_exprs());
    for (place, expr) in queries {
        let names = metric_names(&expr);
        assert!(!names.is_empty(), "{place}: no metric in {expr}");
        out.extend(names.into_iter().map(|n| (place.clone(), n)));
    }
    out
}

#[test]
fn the_dashboard_has_a_query_on_every_panel_and_the_tokenizer_finds_metrics() {
    let names = metric_names(
        "histogram_quantile(0.99, sum by (route, le) (rate(x_seconds_bucket{route!~\"/a|b\"}[5m])))\n\
         / on(instance) y_total{code=\"T.X\"} > 0.5 and z offset 5m or vector(0) unless $v",
    );
    let want = ["x_seconds_bucket", "y_total", "z"];
    assert_eq!(names, want.iter().map(|s| s.to_string()).collect());
    let used = used_metrics();
    assert!(used.iter().any(|(p, _)| p.starts_with("variable")));
    assert!(used
        .iter()
        .any(|(_, m)| m == "tracker_status_changes_total"));
}

#[test]
#[ignore = "needs the tansu broker: run scripts/test"]
fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
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
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("a valid exposition");
    let sampled: BTreeSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    let exported = |name: &str| {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        if DECLARED_ONLY.contains(&name) {
            scrape.docs.contains_key(name)
        } else {
            sampled.contains(name) || sampled.contains(base)
        }
    };
    let missing: BTreeSet<String> = used_metrics()
        .into_iter()
        .filter(|(_, m)| !FROM_PROMETHEUS.contains(&m.as_str()) && !exported(m))
        .map(|(place, m)| format!("{m} ({place})"))
        .collect();
    assert!(
        missing.is_empty(),
        "not exported: {missing:?}\nscrape:\n{text}"
    );
}
