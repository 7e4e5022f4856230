use serde_json::{Value, json};
use toolgate_policy_sdk::testing;

use super::TaskBudget;

#[test]
fn vectors_pass() {
    if let Err(failures) = testing::run_vectors::<TaskBudget>(include_str!("../vectors.json")) {
        panic!("{failures}");
    }
}

fn decide(config: Value, counters: Value, tool: &str) -> Value {
    testing::output::<TaskBudget>(
        &config,
        &json!({"tool": {"name": tool}, "task": {"id": "t-42"}, "counters": counters}),
    )
}

#[test]
fn reasons_name_the_exhausted_cap() {
    let out = decide(json!({"max_calls": 3}), json!({"total": 3}), "echo");
    assert_eq!(
        out,
        json!({"decision": "deny", "reason": "task t-42 has used all 3 of its calls (max_calls)",
               "annotations": {"cap": "max_calls"}})
    );
    let out = decide(
        json!({"per_tool": {"delete_*": 1, "*": 50}}),
        json!({"total": 5, "per_tool": {"delete_file": 1}}),
        "delete_file",
    );
    assert_eq!(
        out["reason"],
        "task t-42 has used tool \"delete_file\" 1 times of 1 (per_tool \"delete_*\")"
    );
    let out = decide(
        json!({"max_denied": 2}),
        json!({"total": 5, "denied": 2}),
        "echo",
    );
    assert_eq!(
        out["reason"],
        "task t-42 has had 2 calls denied, the limit is 2 (max_denied)"
    );
}

#[test]
fn allow_says_how_many_calls_are_left() {
    let out = decide(json!({"max_calls": 3}), json!({"total": 1}), "echo");
    assert_eq!(
        out,
        json!({"decision": "allow", "annotations": {"calls_left": 1}})
    );
}

#[test]
fn typo_in_config_is_an_error() {
    let out = decide(json!({"max_call": 3}), json!({}), "echo");
    assert!(
        out["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown field `max_call`")
    );
}
