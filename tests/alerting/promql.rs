//! A plain PromQL tokenizer for tests/alerting.rs: which metrics and label
//! names an expression uses.

use std::collections::{BTreeMap, BTreeSet};

/// What a PromQL expression uses: each metric, with the label names its
/// selector matches on (`x{a="1",b=~"2"}`: `a`, `b`), and the label names
/// of its grouping lists (`by`, `without`, `on`, `ignoring`, `group_left`,
/// `group_right`), which need only be on some metric of the expression.
#[derive(Debug, Default, PartialEq)]
pub struct Uses {
    pub metrics: BTreeMap<String, BTreeSet<String>>,
    pub grouping: BTreeSet<String>,
}

/// A plain tokenizer, not a PromQL parser: identifiers are metric names
/// unless they are functions (followed by `(`), keywords and aggregations,
/// label names (inside `{…}` or a grouping list), Grafana variables (`$…`),
/// strings, durations or numbers. Inside `{…}` and a grouping list every
/// identifier outside a string is a label name. A selector without a metric
/// name (`{job="x"}`) is refused: nothing here uses one.
pub fn uses(expr: &str) -> Uses {
    // Aggregations too: `sum by (x) (…)` puts no `(` after the name. The
    // grouping words are `GROUPING`'s.
    const KEYWORDS: [&str; 18] = [
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
    let mut out = Uses::default();
    let (mut i, mut labels_next) = (0, false);
    // The metric just named, whose selector a `{` would be.
    let mut selector_of: Option<String> = None;
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
        if c[i].is_whitespace() {
            i += 1;
            continue;
        }
        let metric = selector_of.take();
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(&c, i),
            '{' => {
                let end = close(i, '{', '}');
                let metric =
                    metric.unwrap_or_else(|| panic!("a selector without a metric: {expr}"));
                let labels = out.metrics.get_mut(&metric).unwrap();
                labels.extend(identifiers(&c[i + 1..end - 1]));
                i = end;
            }
            '[' => i = close(i, '[', ']'),
            '(' if labels_next => {
                let end = close(i, '(', ')');
                out.grouping.extend(identifiers(&c[i + 1..end - 1]));
                i = end;
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
                    out.metrics.entry(word.clone()).or_default();
                    selector_of = Some(word);
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// The identifiers of `c` outside its strings: the label names of a
/// selector's or a grouping list's inside.
fn identifiers(c: &[char]) -> Vec<String> {
    let (mut out, mut i) = (Vec::new(), 0);
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(c, i),
            x if x.is_ascii_alphabetic() || x == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push(c[start..i].iter().collect());
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
