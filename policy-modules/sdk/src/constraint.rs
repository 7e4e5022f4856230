//! Argument constraints of a grant: a JSON pointer into the call's
//! `tool.arguments` and one condition the value there must meet.
//!
//! JSON shape (one operator key besides `pointer`):
//!
//! ```json
//! {"pointer": "/repo",   "equals": "acme/app"}
//! {"pointer": "/env",    "one_of": ["staging", "dev"]}
//! {"pointer": "/branch", "glob": "fix/*"}
//! {"pointer": "/title",  "regex": "[A-Z]+-[0-9]+: .*"}
//! {"pointer": "/amount", "range": {"min": 0, "max": 100}}
//! {"pointer": "/path",   "prefix": "/workspace/"}
//! ```
//!
//! A constraint in any other shape still reads (so one odd grant does not
//! make the whole input unreadable for every module) but never holds.

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One condition on one argument.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "Map<String, Value>")]
pub struct Constraint {
    /// JSON pointer into `tool.arguments`, e.g. `/repo`.
    pub pointer: String,
    /// What the value there must satisfy.
    pub op: ConstraintOp,
}

/// The condition of a [`Constraint`].
#[derive(Debug, Clone, PartialEq)]
pub enum ConstraintOp {
    /// Equal as JSON (numbers compare by value: `1` equals `1.0`).
    Equals(Value),
    /// Equal to one of these.
    OneOf(Vec<Value>),
    /// A string matching this glob (see [`crate::glob`]).
    Glob(String),
    /// A string matching this regex as a whole (`regex-lite` syntax, see
    /// `toolgate_pattern::regex`: the dialect the host checks grants with).
    Regex(String),
    /// A number within the bounds (inclusive; a missing bound is open).
    Range {
        /// Smallest allowed value.
        min: Option<f64>,
        /// Largest allowed value.
        max: Option<f64>,
    },
    /// A string starting with this literal text. No path normalisation:
    /// `/workspace/../etc` starts with `/workspace/`. Use `arg-constraints`'
    /// `path_prefix` for paths.
    Prefix(String),
    /// A shape this SDK does not know; it never holds.
    Unsupported(String),
}

/// Why a constraint does not hold. The text names the pointer and what was
/// expected, never the argument's value (it may be large or sensitive).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Violation {
    /// Nothing at the pointer.
    #[error("argument {pointer} is missing")]
    Missing {
        /// The constraint's pointer.
        pointer: String,
    },
    /// A value that does not meet the condition.
    #[error("argument {pointer} must {expected}")]
    Mismatch {
        /// The constraint's pointer.
        pointer: String,
        /// The condition in words, e.g. `be one of ["a","b"]`.
        expected: String,
    },
    /// A constraint that cannot be evaluated (bad regex, unknown shape).
    #[error("constraint on {pointer} is unusable: {why}")]
    Unusable {
        /// The constraint's pointer.
        pointer: String,
        /// What is wrong with it.
        why: String,
    },
}

// === impl Constraint ===

impl Constraint {
    /// Checks the constraint against a call's arguments.
    pub fn check(&self, arguments: &Value) -> Result<(), Violation> {
        let pointer = || self.pointer.clone();
        let value = arguments
            .pointer(&self.pointer)
            .ok_or_else(|| Violation::Missing { pointer: pointer() })?;
        let holds = match &self.op {
            ConstraintOp::Equals(expected) => json_eq(value, expected),
            ConstraintOp::OneOf(allowed) => allowed.iter().any(|a| json_eq(value, a)),
            ConstraintOp::Glob(pattern) => value
                .as_str()
                .is_some_and(|s| crate::glob::matches(pattern, s)),
            ConstraintOp::Regex(pattern) => {
                let regex =
                    toolgate_pattern::regex::compile(pattern).map_err(|e| Violation::Unusable {
                        pointer: pointer(),
                        why: format!("regex does not compile: {e}"),
                    })?;
                value.as_str().is_some_and(|s| regex.is_match(s))
            }
            ConstraintOp::Range { min, max } => value
                .as_f64()
                .is_some_and(|n| min.is_none_or(|min| n >= min) && max.is_none_or(|max| n <= max)),
            ConstraintOp::Prefix(prefix) => value.as_str().is_some_and(|s| s.starts_with(prefix)),
            ConstraintOp::Unsupported(why) => {
                return Err(Violation::Unusable {
                    pointer: pointer(),
                    why: why.clone(),
                });
            }
        };
        if holds {
            Ok(())
        } else {
            Err(Violation::Mismatch {
                pointer: pointer(),
                expected: self.op.to_string(),
            })
        }
    }
}

impl From<Map<String, Value>> for Constraint {
    fn from(mut map: Map<String, Value>) -> Self {
        let pointer = match map.remove("pointer") {
            Some(Value::String(pointer)) => pointer,
            _ => {
                return Self {
                    pointer: String::new(),
                    op: ConstraintOp::Unsupported("constraint has no string \"pointer\"".into()),
                };
            }
        };
        let op = match map.len() {
            1 => map
                .into_iter()
                .next()
                .map(|(key, value)| ConstraintOp::from_entry(&key, value))
                .unwrap_or_else(|| ConstraintOp::Unsupported("no operator".into())),
            n => ConstraintOp::Unsupported(format!("expected one operator key, found {n}")),
        };
        Self { pointer, op }
    }
}

// === impl ConstraintOp ===

impl ConstraintOp {
    fn from_entry(key: &str, value: Value) -> Self {
        let wrong = |shape: &str| Self::Unsupported(format!("\"{key}\" takes {shape}"));
        match (key, value) {
            ("equals", value) => Self::Equals(value),
            ("one_of", Value::Array(values)) => Self::OneOf(values),
            ("one_of", _) => wrong("an array"),
            ("glob", Value::String(s)) => Self::Glob(s),
            ("regex", Value::String(s)) => Self::Regex(s),
            ("prefix", Value::String(s)) => Self::Prefix(s),
            ("glob" | "regex" | "prefix", _) => wrong("a string"),
            ("range", Value::Object(bounds)) => {
                let bound = |name: &str| bounds.get(name).map(Value::as_f64);
                match (bound("min"), bound("max")) {
                    (Some(None), _) | (_, Some(None)) => wrong("numeric \"min\"/\"max\""),
                    (min, max) => Self::Range {
                        min: min.flatten(),
                        max: max.flatten(),
                    },
                }
            }
            ("range", _) => wrong("an object {\"min\", \"max\"}"),
            (other, _) => Self::Unsupported(format!("unknown operator \"{other}\"")),
        }
    }
}

impl fmt::Display for ConstraintOp {
    /// The condition in words, completing "argument /x must …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals(v) => write!(f, "equal {v}"),
            Self::OneOf(vs) => write!(f, "be one of {}", Value::Array(vs.clone())),
            Self::Glob(p) => write!(f, "be a string matching {p:?}"),
            Self::Regex(p) => write!(f, "be a string matching regex {p:?}"),
            Self::Range { min, max } => match (min, max) {
                (Some(min), Some(max)) => write!(f, "be a number from {min} to {max}"),
                (Some(min), None) => write!(f, "be a number of at least {min}"),
                (None, Some(max)) => write!(f, "be a number of at most {max}"),
                (None, None) => write!(f, "be a number"),
            },
            Self::Prefix(p) => write!(f, "be a string starting with {p:?}"),
            Self::Unsupported(why) => write!(f, "meet an unusable constraint ({why})"),
        }
    }
}

/// JSON equality where numbers compare by value, so a grant's `1` matches
/// an argument sent as `1.0`.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
