use serde_json::{Value, json};
use toolgate_policy_sdk::testing;

use super::ArgConstraints;

#[test]
fn vectors_pass() {
    if let Err(failures) = testing::run_vectors::<ArgConstraints>(include_str!("../vectors.json")) {
        panic!("{failures}");
    }
}

fn config() -> Value {
    json!({"rules": [
        {"tools": ["read_file", "write_file"], "pointer": "/path", "path_prefix": "/workspace/"},
        {"tools": ["pay"], "pointer": "/amount", "min": 0, "max": 100}
    ]})
}

#[test]
fn reasons_name_tool_argument_and_problem() {
    let out = testing::output::<ArgConstraints>(
        &config(),
        &json!({"tool": {"name": "read_file", "arguments": {"path": "/workspace/../etc/passwd"}}}),
    );
    assert_eq!(
        out,
        json!({"decision": "deny",
               "reason": "tool \"read_file\": argument /path: path \"/workspace/../etc/passwd\" is outside /workspace",
               "annotations": {"rule": 0}})
    );
    let out = testing::output::<ArgConstraints>(
        &config(),
        &json!({"tool": {"name": "pay", "arguments": {"amount": 250}}}),
    );
    assert_eq!(
        out["reason"],
        "tool \"pay\": argument /amount: 250 is outside [0, 100]"
    );
    let out = testing::output::<ArgConstraints>(
        &config(),
        &json!({"tool": {"name": "pay", "arguments": {}}}),
    );
    assert_eq!(out["reason"], "tool \"pay\": argument /amount: is missing");
}

#[test]
fn long_values_are_cut_in_reasons() {
    let long = format!("/etc/{}", "x".repeat(500));
    let out = testing::output::<ArgConstraints>(
        &config(),
        &json!({"tool": {"name": "read_file", "arguments": {"path": long}}}),
    );
    let reason = out["reason"].as_str().unwrap_or_default();
    assert!(reason.len() < 250 && reason.contains('…'), "{reason}");
}

#[test]
fn config_mistakes_are_all_reported() {
    let out = testing::output::<ArgConstraints>(
        &json!({"rules": [
            {"tools": [], "pointer": "path"},
            {"tools": ["f"], "pointer": "/p", "path_prefix": "workspace"},
            {"tools": ["f"], "pointer": "/u", "url_hosts": ["https://x.com"]},
            {"tools": ["f"], "pointer": "/n", "min": 5, "max": 1}
        ]}),
        &json!({}),
    );
    let error = out["error"].as_str().unwrap_or_default();
    for expected in [
        "rule 0: \"tools\" is empty",
        "rule 0: pointer \"path\" must start with '/'",
        "rule 0: no check",
        "rule 1: path_prefix \"workspace\": path is not absolute",
        "rule 2: url_hosts",
        "rule 3: min 5 is greater than max 1",
    ] {
        assert!(error.contains(expected), "{expected} not in {error}");
    }
}
