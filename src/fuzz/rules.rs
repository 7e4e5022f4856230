//! Fuzzing what decides: config files, policy modules' answers, and the
//! argument constraints of grants (host and policy SDK alike).

use serde_json::Value;

use crate::decide::Verdict;
use crate::decide::module::{Answer, Fault};
use crate::store::{Constraint, ConstraintTest};
use toolgate_pattern::glob::matches as glob;

/// The policy SDK's side of the constraint checks. The SDK
/// (`policy-modules/sdk`) is its own workspace, built for WASM; the fuzz
/// targets and the smoke test link it natively and implement this.
pub trait Sdk {
    /// `toolgate_policy_sdk::glob::matches`.
    fn glob(&self, pattern: &str, text: &str) -> bool;
    /// The SDK reading `constraint` (a grant's constraint as policy input
    /// carries it) and checking it against a call's `arguments`: `Ok(true)`
    /// holds, `Ok(false)` does not (missing or another value), `Err` the
    /// SDK cannot use it.
    fn check(&self, constraint: &Value, arguments: &Value) -> Result<bool, String>;
}

/// A config file: every problem is reported with a place, none panics.
/// Inputs naming device or process files are skipped (a secret read from
/// `/dev/zero` never ends; a config is the operator's, not an attacker's).
pub fn config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if ["dev/", "proc/", "sys/", "fd/"]
        .iter()
        .any(|d| text.contains(d))
    {
        return;
    }
    let base = std::path::Path::new("/nonexistent/toolgate-fuzz");
    match crate::config::load_str(&text, "fuzz.toml", base) {
        Ok(_) => {}
        Err(diagnostics) => {
            assert!(!diagnostics.items.is_empty(), "an error says what is wrong");
            let lines = text.lines().count() + 1;
            for d in &diagnostics.items {
                assert!(!d.message.is_empty());
                assert!(d.line <= lines, "line {} of {lines}: {}", d.line, d.message);
            }
            let _ = diagnostics.to_string();
        }
    }
}

/// A policy module's output, read as a toolgate-ABI answer and as an OPA
/// result set: a refusal always has a reason, reasons are bounded,
/// annotations are an object.
pub fn policy_answer(data: &[u8]) {
    check_answer(crate::decide::abi::parse_answer(data), 1024);
    check_answer(crate::decide::opa::result::answer(data), 1024);
}

fn check_answer(answer: Result<Answer, Fault>, max_reason: usize) {
    let Ok(answer) = answer else {
        return;
    };
    if answer.verdict != Verdict::Allow {
        assert!(answer.reason.as_deref().is_some_and(|r| !r.is_empty()));
    }
    if let Some(reason) = &answer.reason {
        assert!(
            reason.chars().count() <= max_reason + 1,
            "reason is bounded"
        );
    }
    assert!(answer.annotations.as_ref().is_none_or(Value::is_object));
}

/// A constraint and a call's arguments (two JSON values in a row), or else
/// a glob pattern and a text (split at the first newline). The host reads
/// a constraint losslessly (it re-serializes to what was written and reads
/// back the same); one the host accepts for a grant, the SDK can evaluate;
/// host and SDK globs agree.
pub fn constraint(data: &[u8], sdk: &dyn Sdk) {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    if let (Some(Ok(constraint)), Some(Ok(arguments))) = (values.next(), values.next()) {
        check_constraint(&constraint, &arguments, sdk);
        return;
    }
    let text = String::from_utf8_lossy(data);
    let (pattern, name) = text.split_once('\n').unwrap_or((&text, ""));
    assert_eq!(
        glob(pattern, name),
        sdk.glob(pattern, name),
        "host and SDK disagree on glob {pattern:?} for {name:?}"
    );
}

fn check_constraint(written: &Value, arguments: &Value, sdk: &dyn Sdk) {
    // Any shape at all: the SDK reads it without panicking.
    let _ = sdk.check(written, arguments);
    let Ok(host) = serde_json::from_value::<Constraint>(written.clone()) else {
        return;
    };
    let wire = serde_json::to_value(&host).expect("a constraint serializes");
    let again: Constraint = serde_json::from_value(wire.clone()).expect("and reads back");
    assert_eq!(again, host, "{written} → {wire}");
    assert_eq!(
        keys(&wire),
        keys(written),
        "the host kept every field of {written} (it stored {wire})"
    );
    if crate::tasks::requests::check_grant_scope("tool", std::slice::from_ref(&host)).is_err() {
        return;
    }
    let holds = sdk.check(&wire, arguments);
    let holds = holds.unwrap_or_else(|why| {
        panic!("a grant constraint the host accepts is unusable in the SDK: {wire}: {why}")
    });
    let text = arguments.pointer(&host.pointer).and_then(Value::as_str);
    if let (ConstraintTest::Glob(pattern), Some(text)) = (&host.test, text) {
        assert_eq!(holds, glob(pattern, text), "glob {pattern:?} on {text:?}");
    }
}

/// The key paths of an object, one level into an operator's object (a
/// `null` there is the same as absent), for comparing what was written
/// with what was kept.
fn keys(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Value::Object(map) = value {
        for (key, inner) in map {
            out.push(key.clone());
            if let (Value::Object(inner), false) = (inner, key == "equals") {
                let set = inner.iter().filter(|(_, v)| !v.is_null());
                out.extend(set.map(|(k, _)| format!("{key}.{k}")));
            }
        }
    }
    out.sort();
    out
}
