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
