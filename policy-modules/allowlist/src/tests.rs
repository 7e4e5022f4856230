use serde_json::json;
use toolgate_policy_sdk::testing;

use super::Allowlist;

#[test]
fn vectors_pass() {
    if let Err(failures) = testing::run_vectors::<Allowlist>(include_str!("../vectors.json")) {
        panic!("{failures}");
    }
}

#[test]
fn deny_reason_names_subject_tool_and_route() {
    let out = testing::output::<Allowlist>(
        &json!({"rules": [{"tools": ["echo"]}]}),
        &json!({"route": {"name": "github"}, "tool": {"name": "delete_repo"},
                "identity": {"kind": "workload", "subject": "spiffe://example.org/agent/x"}}),
    );
    assert_eq!(
        out["reason"],
        "no allowlist rule lets spiffe://example.org/agent/x call tool \"delete_repo\" on route \"github\""
    );
}

#[test]
fn allow_names_the_rule() {
    let out = testing::output::<Allowlist>(
        &json!({"rules": [{"tools": ["add"]}, {"tools": ["echo"]}]}),
        &json!({"tool": {"name": "echo"}, "identity": {"kind": "workload", "subject": "s"}}),
    );
    assert_eq!(
        out,
        json!({"decision": "allow", "annotations": {"rule": 1}})
    );
}

#[test]
fn config_mistakes_are_all_reported() {
    let out = testing::output::<Allowlist>(
        &json!({"rules": [{}, {"trust_domains": ["spiffe://example.org"]}]}),
        &json!({}),
    );
    let error = out["error"].as_str().unwrap_or_default();
    assert!(error.contains("rule 0 has no fields"), "{error}");
    assert!(error.contains("rule 1: trust domain"), "{error}");

    let typo = testing::output::<Allowlist>(&json!({"rules": [{"tool": ["x"]}]}), &json!({}));
    assert!(
        typo["error"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown field `tool`")
    );
}
