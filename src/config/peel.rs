//! Start-up stage: parse one config section and keep going past its
//! errors. serde stops at a table's first problem; to report every one, the
//! key at fault is noted, peeled off the table and the table parsed again,
//! until it parses or nothing is left to peel. Keys peeled off are
//! remembered so that checks made later on what remains do not report a
//! missing value as a second problem.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

/// More errors than this in one table: stop peeling (the rest would be noise).
const MAX_ERRORS: usize = 32;

/// One problem found while parsing a section.
#[derive(Debug)]
pub(super) struct Problem {
    /// Dotted path, e.g. `routes[1].timeouts.connect`.
    pub(super) path: String,
    pub(super) span: Option<Range<usize>>,
    pub(super) message: String,
}

/// What parsing one section found: the value, if what was left parsed, the
/// problems, and the paths peeled off (each problem's path).
#[derive(Debug)]
pub(super) struct Parsed<T> {
    pub(super) value: Option<T>,
    pub(super) problems: Vec<Problem>,
}

/// One step into a value: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// Parses `value` (found at `path`) as a `T`, reporting every key that
/// stands in the way rather than only the first.
pub(super) fn section<T: DeserializeOwned>(value: &Spanned<DeValue<'_>>, path: &str) -> Parsed<T> {
    let mut value = Spanned::new(value.span(), value.get_ref().clone());
    let mut problems: Vec<Problem> = Vec::new();
    let mut peeled: Vec<Vec<Step>> = Vec::new();
    while problems.len() < MAX_ERRORS {
        let error = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(parsed) => {
                return Parsed {
                    value: Some(parsed),
                    problems,
                };
            }
            Err(e) => e,
        };
        let span = error.span();
        let mut trail = span
            .as_ref()
            .map(|s| trail_to(&value, s))
            .unwrap_or_default();
        // A missing field is reported at the table that lacks it.
        let missing = missing_field(error.message());
        let follow_on = missing.as_ref().is_some_and(|field| {
            let mut gone = trail.clone();
            gone.push(Step::Key(field.clone()));
            peeled.contains(&gone)
        });
        if !follow_on {
            let mut at = trail.clone();
            if let Some(field) = &missing {
                at.push(Step::Key(field.clone()));
            }
            problems.push(Problem {
                path: render(path, &at),
                span: span.clone().or(Some(value.span())),
                message: error.message().trim().to_owned(),
            });
        }
        // Peel the key at fault: an array element's fault is its array's.
        while matches!(trail.last(), Some(Step::Index(_))) {
            trail.pop();
        }
        if trail.is_empty() || !remove(&mut value, &trail) {
            // The section itself is at fault (e.g. a required key is
            // missing): nothing left to peel.
            break;
        }
        peeled.push(trail);
    }
    Parsed {
        value: None,
        problems,
    }
}

/// `routes[1]` + [timeouts, connect] ⇒ `routes[1].timeouts.connect`.
fn render(path: &str, trail: &[Step]) -> String {
    let mut out = path.to_owned();
    for step in trail {
        match step {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// serde's "missing field `name`" ⇒ `name`.
fn missing_field(message: &str) -> Option<String> {
    let rest = message.trim().strip_prefix("missing field `")?;
    Some(rest.split('`').next()?.to_owned())
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The deepest key or element under `value` whose key or value covers
/// `span`. Every node is searched: a table made by a `[a.b]` header has
/// the header's span, not that of the keys under it.
fn trail_to(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Vec<Step> {
    fn walk(
        value: &Spanned<DeValue<'_>>,
        span: &Range<usize>,
        trail: &mut Vec<Step>,
        best: &mut Vec<Step>,
    ) {
        let mut visit = |step: Step, key: Option<Range<usize>>, v: &Spanned<DeValue<'_>>| {
            trail.push(step);
            let hit = key.is_some_and(|k| contains(&k, span)) || contains(&v.span(), span);
            if hit && trail.len() > best.len() {
                *best = trail.clone();
            }
            walk(v, span, trail, best);
            trail.pop();
        };
        match value.get_ref() {
            DeValue::Table(table) => {
                for (k, v) in table.iter() {
                    visit(Step::Key(k.get_ref().to_string()), Some(k.span()), v);
                }
            }
            DeValue::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    visit(Step::Index(i), None, v);
                }
            }
            _ => {}
        }
    }
    let mut best = Vec::new();
    walk(value, span, &mut Vec::new(), &mut best);
    best
}

/// Removes the key at the end of `trail` (a path of table keys and array
/// indices); false when it is not there.
fn remove(value: &mut Spanned<DeValue<'_>>, trail: &[Step]) -> bool {
    let Some((last, parents)) = trail.split_last() else {
        return false;
    };
    let mut here = value.get_mut();
    for step in parents {
        here = match (step, here) {
            (Step::Key(k), DeValue::Table(t)) => match t.get_mut(k.as_str()) {
                Some(v) => v.get_mut(),
                None => return false,
            },
            (Step::Index(i), DeValue::Array(a)) => match a.get_mut(*i) {
                Some(v) => v.get_mut(),
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, here) {
        (Step::Key(k), DeValue::Table(t)) => t.remove(k.as_str()).is_some(),
        _ => false,
    }
}
