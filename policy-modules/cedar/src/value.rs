//! JSON from the decision input as Cedar values (decide stage, building the
//! request). Cedar has no null and no floats, and reads objects with the keys
//! `__entity`, `__extn` or `__expr` as escapes: an agent's arguments must not
//! be able to forge an entity reference, so those keys are dropped.

use serde_json::{Map, Value};

/// Deeper JSON is passed as its JSON text (a string) rather than recursed
/// into: Cedar's own evaluation recurses too, and the module's stack is small.
const MAX_DEPTH: usize = 32;

/// Keys Cedar's JSON format reserves for escapes.
const ESCAPE_KEYS: [&str; 3] = ["__entity", "__extn", "__expr"];

/// `value` in Cedar's JSON value format, or `None` for `null`:
/// - booleans and strings as they are; arrays become sets, objects records;
/// - integers that fit an `i64` become longs; other numbers (floats, huge
///   integers) become their decimal text, a string;
/// - `null`, in a record or a set, is dropped;
/// - record keys `__entity`, `__extn`, `__expr` are dropped.
pub(crate) fn to_cedar(value: &Value) -> Option<Value> {
    to_cedar_at(value, 0)
}

/// An object as a Cedar record (anything else reads as an empty record).
pub(crate) fn to_record(value: &Value) -> Value {
    match value {
        Value::Object(object) => record(object, 0),
        _ => Value::Object(Map::new()),
    }
}

fn to_cedar_at(value: &Value, depth: usize) -> Option<Value> {
    if depth >= MAX_DEPTH && (value.is_array() || value.is_object()) {
        return Some(Value::String(value.to_string()));
    }
    match value {
        Value::Null => None,
        Value::Bool(_) | Value::String(_) => Some(value.clone()),
        Value::Number(n) => Some(match n.as_i64() {
            Some(long) => Value::from(long),
            None => Value::String(n.to_string()),
        }),
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .filter_map(|item| to_cedar_at(item, depth + 1))
                .collect(),
        )),
        Value::Object(object) => Some(record(object, depth)),
    }
}

fn record(object: &Map<String, Value>, depth: usize) -> Value {
    Value::Object(
        object
            .iter()
            .filter(|(key, _)| !ESCAPE_KEYS.contains(&key.as_str()))
            .filter_map(|(key, value)| Some((key.clone(), to_cedar_at(value, depth + 1)?)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn representable_values_pass_through() {
        let args = json!({"repo": "acme/app", "n": 3, "neg": -4, "draft": false,
                          "labels": ["a", "b"], "meta": {"x": 1}});
        assert_eq!(to_record(&args), args);
    }

    #[test]
    fn nulls_drop_and_floats_become_text() {
        let args = json!({"a": null, "f": 1.5, "big": u64::MAX, "list": [1, null, 2.0]});
        assert_eq!(
            to_record(&args),
            json!({"f": "1.5", "big": "18446744073709551615", "list": [1, "2.0"]})
        );
    }

    #[test]
    fn escape_keys_cannot_forge_entities() {
        let args = json!({"owner": {"__entity": {"type": "Agent", "id": "admin"}},
                          "ip": {"__extn": {"fn": "ip", "arg": "10.0.0.1"}}});
        assert_eq!(to_record(&args), json!({"owner": {}, "ip": {}}));
    }

    #[test]
    fn deep_values_become_text_and_non_objects_empty_records() {
        let mut deep = json!("leaf");
        for _ in 0..40 {
            deep = json!([deep]);
        }
        let converted = to_cedar(&deep).unwrap_or_default();
        let mut at = &converted;
        for _ in 0..MAX_DEPTH {
            at = &at[0];
        }
        assert!(at.is_string());
        assert_eq!(to_record(&json!(null)), json!({}));
        assert_eq!(to_record(&json!([1])), json!({}));
    }
}
