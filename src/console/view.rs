//! Operator console, how records read on a page: times as UTC and as
//! "how long ago / how long left", arguments masked and pretty-printed,
//! constraints in one line each.

use serde_json::Value;

use crate::store::{Constraint, Millis};

/// Arguments (the admin API masks them as the decision log does),
/// pretty-printed for a `<pre>`.
pub(crate) fn arguments(arguments: &Value) -> String {
    serde_json::to_string_pretty(arguments).unwrap_or_default()
}

/// A Unix-milliseconds time as RFC 3339 UTC, to the second.
pub(crate) fn utc(ms: Millis) -> String {
    crate::config::timestamp::rfc3339(ms)
}

/// A span in its two largest units: `42s`, `3m 5s`, `2h 10m`, `4d 1h`.
pub(crate) fn span(ms: Millis) -> String {
    let s = ms / 1000;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `in 5m 2s` or `3m 1s ago` for `at` seen from `now`.
pub(crate) fn relative(at: Millis, now: Millis) -> String {
    if at >= now {
        format!("in {}", span(at - now))
    } else {
        format!("{} ago", span(now - at))
    }
}

/// One constraint as `pointer test value`, e.g. `/repo equals "acme/app"`.
pub(crate) fn constraint(c: &Constraint) -> String {
    let test = serde_json::to_value(&c.test).unwrap_or(Value::Null);
    let pointer = if c.pointer.is_empty() {
        "(whole arguments)"
    } else {
        &c.pointer
    };
    match test.as_object().and_then(|o| o.iter().next()) {
        Some((name, value)) => format!("{pointer} {name} {value}"),
        None => format!("{pointer} {test}"),
    }
}
