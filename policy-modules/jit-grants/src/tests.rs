use serde_json::{Value, json};
use toolgate_policy_sdk::testing;

use super::JitGrants;

#[test]
fn vectors_pass() {
    if let Err(failures) = testing::run_vectors::<JitGrants>(include_str!("../vectors.json")) {
        panic!("{failures}");
    }
}

fn decide(config: Value, input: Value) -> Value {
    testing::output::<JitGrants>(&config, &input)
}

#[test]
fn reason_names_the_failed_constraint_of_a_near_miss() {
    let out = decide(
        json!({"missing": "deny"}),
        json!({"tool": {"name": "create_issue", "arguments": {"repo": "acme/other"}},
               "time": {"unix_ms": 1000},
               "grants": [
                   {"id": "g-old", "tool": "create_issue", "expires_at": 1},
                   {"id": "g-1", "tool": "create_issue", "expires_at": 60,
                    "constraints": [{"pointer": "/repo", "equals": "acme/app"}]}]}),
    );
    assert_eq!(out["decision"], "deny");
    assert_eq!(
        out["reason"],
        "no live grant covers tool \"create_issue\" with these arguments; \
         grant g-1: argument /repo must equal \"acme/app\""
    );
}

#[test]
fn reason_says_expired_or_used_up() {
    let expired = decide(
        json!({}),
        json!({"tool": {"name": "t"}, "time": {"unix_ms": 5000},
               "grants": [{"id": "g", "tool": "t", "expires_at": 5}]}),
    );
    assert_eq!(expired["decision"], "needs_approval");
    assert!(
        expired["reason"]
            .as_str()
            .unwrap_or_default()
            .ends_with("grant g expired")
    );
    let used = decide(
        json!({}),
        json!({"tool": {"name": "t"}, "time": {"unix_ms": 0},
               "grants": [{"id": "g", "tool": "t", "expires_at": 5, "uses_left": 0}]}),
    );
    assert!(
        used["reason"]
            .as_str()
            .unwrap_or_default()
            .ends_with("grant g has no uses left")
    );
}

#[test]
fn allow_names_the_grant() {
    let out = decide(
        json!({}),
        json!({"tool": {"name": "t"}, "time": {"unix_ms": 0},
               "grants": [{"id": "g-7", "tool": "*", "expires_at": 5}]}),
    );
    assert_eq!(
        out,
        json!({"decision": "allow", "annotations": {"grant": "g-7"}})
    );
}

#[test]
fn unknown_missing_value_is_a_config_error() {
    let out = decide(json!({"missing": "allow"}), json!({}));
    assert!(out["error"].is_string());
}

/// The values path and the typed path decide every vector alike (the
/// vectors themselves run through the values path).
#[test]
fn values_and_typed_paths_agree_on_every_vector() {
    use toolgate_policy_sdk::{Field, Input, Policy};

    let doc: Value = serde_json::from_str(include_str!("../vectors.json")).unwrap();
    let config: super::Config = serde_json::from_value(doc["config"].clone()).unwrap_or_default();
    let policy = JitGrants::configure(config).unwrap();
    let fields = JitGrants::INPUT_FIELDS.unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(!vectors.is_empty());
    for vector in vectors {
        let input = &vector["input"];
        let texts: Vec<Option<(bool, String)>> = fields
            .iter()
            .map(|f| match input.pointer(f) {
                None => None,
                Some(Value::String(s)) => Some((true, s.clone())),
                Some(other) => Some((false, other.to_string())),
            })
            .collect();
        let values: Vec<Field<'_>> = fields
            .iter()
            .zip(&texts)
            .map(|(f, t)| match (input.pointer(f), t) {
                (Some(Value::Null), _) => Field::Null,
                (_, None) => Field::Absent,
                (_, Some((true, s))) => Field::Str(s),
                (_, Some((false, json))) => Field::Json(json),
            })
            .collect();
        let typed = policy.decide(&serde_json::from_value::<Input>(input.clone()).unwrap());
        let fast = policy
            .decide_values(&values)
            .expect("the values path answers every vector");
        assert_eq!(fast, typed, "vector {}", vector["name"]);
    }
}
