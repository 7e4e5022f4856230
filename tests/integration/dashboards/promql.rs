//! The metric and label names a PromQL expression reads — enough of PromQL's
//! lexer to tell them from functions, keywords, strings, durations, numbers
//! and Grafana's `$variables`.

use std::collections::BTreeSet;

/// What an expression names.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Names {
    pub(crate) metrics: BTreeSet<String>,
    pub(crate) labels: BTreeSet<String>,
}

/// Aggregations, set and binary operators, modifiers and literals: words
/// that are not metric names where they stand alone.
const KEYWORDS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Keywords followed by a list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The names in `expr`; `Err` says what it could not read.
pub(crate) fn names(expr: &str) -> Result<Names, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Names::default();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i)?;
        } else if c == '#' {
            // A comment runs to the end of the line.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '[' {
            // A range or subquery: durations and Grafana variables.
            i = chars[i..]
                .iter()
                .position(|&c| c == ']')
                .map(|p| i + p + 1)
                .ok_or_else(|| format!("unclosed [ in {expr:?}"))?;
        } else if c == '{' {
            i = matchers(&chars, i + 1, &mut out)?;
        } else if c == '$' {
            // A Grafana variable outside a string ($__rate_interval…).
            i += 1;
            while i < chars.len() && (ident_char(chars[i]) || chars[i] == '{' || chars[i] == '}') {
                i += 1;
            }
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers and durations (1.5, 1e3, 0x1f, 5m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if ident_start(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            if LABEL_LISTS.contains(&word.as_str()) {
                if next == Some('(') {
                    i = label_list(&chars, i, &mut out)?;
                }
            } else if next == Some('(') || KEYWORDS.contains(&word.as_str()) {
                // A function or an aggregation.
            } else {
                out.metrics.insert(word);
            }
        } else {
            // Operators and punctuation.
            i += 1;
        }
    }
    Ok(out)
}

fn skip_string(chars: &[char], open: usize) -> Result<usize, String> {
    let quote = chars[open];
    let mut i = open + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err("unclosed string".into())
}

/// Reads `name op "value", …}` from just after `{`; returns past `}`.
fn matchers(chars: &[char], mut i: usize, out: &mut Names) -> Result<usize, String> {
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        match chars.get(i) {
            None => return Err("unclosed {".into()),
            Some('}') => return Ok(i + 1),
            Some(&c) if ident_start(c) => {
                let start = i;
                while i < chars.len() && ident_char(chars[i]) {
                    i += 1;
                }
                let label: String = chars[start..i].iter().collect();
                while i < chars.len() && matches!(chars[i], ' ' | '=' | '!' | '~') {
                    i += 1;
                }
                match chars.get(i) {
                    Some('"' | '\'' | '`') => {
                        let end = skip_string(chars, i)?;
                        if label == "__name__" {
                            out.metrics.insert(chars[i + 1..end - 1].iter().collect());
                        } else {
                            out.labels.insert(label);
                        }
                        i = end;
                    }
                    _ => return Err(format!("label {label} has no quoted value")),
                }
            }
            Some(c) => return Err(format!("unexpected {c:?} in a label matcher")),
        }
    }
}

/// Reads `(a, b)` after a `by`/`on`/… keyword; returns past `)`.
fn label_list(chars: &[char], i: usize, out: &mut Names) -> Result<usize, String> {
    let open = i + chars[i..]
        .iter()
        .position(|&c| c == '(')
        .ok_or("no label list")?;
    let close = open
        + chars[open..]
            .iter()
            .position(|&c| c == ')')
            .ok_or("unclosed label list")?;
    let list: String = chars[open + 1..close].iter().collect();
    for label in list.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        if !label.chars().all(ident_char) {
            return Err(format!("{label:?} is not a label name"));
        }
        out.labels.insert(label.to_owned());
    }
    Ok(close + 1)
}

#[test]
fn names_come_out_of_expressions_of_every_shape() {
    let n = names(
        "histogram_quantile(0.99, sum by (le) (rate(toolgate_decide_seconds_bucket{route=~\"$route\"}[$__rate_interval])))\n\
         / on (instance) group_left(route) max without(job) (foo:bar offset 5m) > bool 1e3\n\
         and {__name__=\"named\", kind!~'a,\"b'} # toolgate_in_a_comment\n\
         unless count(x_total{a=\"}\"}) by (b)",
    )
    .unwrap();
    let set = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(
        n.metrics,
        set(&[
            "foo:bar",
            "named",
            "toolgate_decide_seconds_bucket",
            "x_total"
        ])
    );
    assert_eq!(
        n.labels,
        set(&["a", "b", "instance", "job", "kind", "le", "route"])
    );
    assert!(names("sum(x{a=\"1\"").is_err());
    assert!(names("x{a=1}").is_err());
}
