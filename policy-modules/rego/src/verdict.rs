//! Turns the value of the configured Rego query into a decision (decide
//! stage, after evaluation). Three result shapes are understood; anything
//! else denies, naming what was wrong, so a policy mistake fails closed.

use regorus::QueryResults;
use serde_json::{Map, Value};
use toolgate_policy_sdk::Decision;

/// The reason for `false` (shape c).
pub(crate) const DENIED: &str = "denied by rego policy";
/// The reason when the query is undefined for this input.
pub(crate) const NO_DECISION: &str = "rego policy produced no decision";

/// The decision for the results of evaluating the query.
pub(crate) fn from_results(results: &QueryResults) -> Decision {
    let values: Vec<&regorus::Value> = results
        .result
        .iter()
        .flat_map(|r| r.expressions.iter().map(|e| &e.value))
        .filter(|v| **v != regorus::Value::Undefined)
        .collect();
    match values.as_slice() {
        [] => Decision::deny(NO_DECISION),
        [value] => match serde_json::to_value(value) {
            Ok(value) => from_value(&value),
            Err(e) => Decision::deny(format!("rego result is not JSON: {e}")),
        },
        many => Decision::deny(format!(
            "rego query produced {} values; expected one",
            many.len()
        )),
    }
}

/// An evaluation error: deny. The reason the agent sees is regorus's one-line
/// message and location; the decision log gets the whole text, with the
/// offending source line.
pub(crate) fn evaluation_error(text: &str) -> Decision {
    let message = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("error:"))
        .or_else(|| text.lines().map(str::trim).find(|line| !line.is_empty()))
        .unwrap_or("unknown error")
        .trim();
    let at = text
        .lines()
        .find_map(|line| line.trim().strip_prefix("-->"))
        .map(|location| format!(" at {}", location.trim()))
        .unwrap_or_default();
    Decision::deny(format!("rego evaluation failed{at}: {message}")).annotate("error", text)
}

/// The decision for one query value (see README "Result").
pub(crate) fn from_value(value: &Value) -> Decision {
    match value {
        Value::Bool(true) => Decision::allow(),
        Value::Bool(false) => Decision::deny(DENIED),
        Value::Object(object) if object.contains_key("decision") => explicit(object),
        Value::Object(object)
            if object.contains_key("allow") || object.contains_key("needs_approval") =>
        {
            flags(object)
        }
        Value::Object(_) => {
            Decision::deny("rego result is an object with neither `decision` nor `allow`")
        }
        other => Decision::deny(format!(
            "rego result must be a boolean or an object, got {}",
            kind(other)
        )),
    }
}

/// Shape (a): `{"decision": "allow"|"deny"|"needs_approval", "reason", "annotations"}`.
fn explicit(object: &Map<String, Value>) -> Decision {
    let reason = reason(object);
    let decision = match object.get("decision") {
        Some(Value::String(d)) if d == "allow" => Decision::allow(),
        Some(Value::String(d)) if d == "deny" => {
            Decision::deny(reason.unwrap_or_else(|| DENIED.to_owned()))
        }
        Some(Value::String(d)) if d == "needs_approval" => Decision::needs_approval(
            reason.unwrap_or_else(|| "rego policy requires approval".to_owned()),
        ),
        Some(other) => {
            return Decision::deny(format!(
                "rego result has an unknown decision {other}; expected \"allow\", \"deny\" or \"needs_approval\""
            ));
        }
        None => return Decision::deny(NO_DECISION),
    };
    annotated(decision, object)
}

/// Shape (b): `{"allow": bool, "needs_approval": bool, "reason"}`.
/// `needs_approval: true` wins over `allow` either way: the author asked for a
/// human, and a human seeing the call is never less safe than allowing it.
fn flags(object: &Map<String, Value>) -> Decision {
    let flag = |key: &str| match object.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!(
            "rego result `{key}` must be a boolean, got {}",
            kind(other)
        )),
    };
    let (allow, needs_approval) = match (flag("allow"), flag("needs_approval")) {
        (Ok(allow), Ok(needs_approval)) => (allow, needs_approval),
        (Err(why), _) | (_, Err(why)) => return Decision::deny(why),
    };
    let reason = reason(object);
    let decision = if needs_approval {
        Decision::needs_approval(
            reason.unwrap_or_else(|| "rego policy requires approval".to_owned()),
        )
    } else if allow {
        Decision::allow()
    } else {
        Decision::deny(reason.unwrap_or_else(|| DENIED.to_owned()))
    };
    annotated(decision, object)
}

fn reason(object: &Map<String, Value>) -> Option<String> {
    match object.get("reason")? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::String(_) | Value::Null => None,
        // A reason built as a set or number is still worth showing.
        other => Some(other.to_string()),
    }
}

fn annotated(mut decision: Decision, object: &Map<String, Value>) -> Decision {
    if let Some(Value::Object(annotations)) = object.get("annotations") {
        for (key, value) in annotations {
            decision = decision.annotate(key.clone(), value.clone());
        }
    }
    decision
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
