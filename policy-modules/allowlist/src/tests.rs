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

#[test]
fn the_values_path_agrees_with_the_typed_path() {
    use toolgate_policy_sdk::{Field, Input, Policy};

    let config = json!({"rules": [
        {"subjects": ["spiffe://example.org/agent/*"], "tools": ["search_*"]},
        {"trust_domains": ["example.org"], "tools": ["echo"], "routes": ["r"]},
        {"subjects": ["anonymous"], "tools": ["ping"]},
    ]});
    let policy =
        Allowlist::configure(serde_json::from_value(config).expect("config")).expect("configures");
    let workload = json!({"kind": "workload", "subject": "spiffe://example.org/agent/a",
                          "spiffe": {"trust_domain": "example.org", "path": "/agent/a"}});
    let inputs = [
        json!({"route": {"name": "r"}, "tool": {"name": "echo"}, "identity": workload}),
        json!({"route": {"name": "x"}, "tool": {"name": "echo"}, "identity": workload}),
        json!({"tool": {"name": "search_code"}, "identity": workload}),
        json!({"tool": {"name": "ping"}}),
        json!({"tool": {"name": "ping"}, "identity": null}),
        json!({"tool": {"name": "ping"}, "identity": {"kind": "anonymous"}}),
        json!({"tool": {"name": "echo"}, "route": {"name": "r"},
               "identity": {"kind": "workload", "subject": "spiffe://example.org/agent/a", "spiffe": null}}),
        json!({"tool": {"name": "search_x"}, "identity": {"kind": "workload", "subject": "anonymous"}}),
        json!({"tool": {"name": "ping"}, "identity": {"kind": "workload", "subject": "anonymous"}}),
        json!({"tool": {"name": "sé\"arch_x"}, "identity": workload}),
        json!({"tool": {"name": "search_x"}, "identity": {"kind": "workload"}}),
        json!({"tool": {"name": "search_x"}, "identity": {"kind": "robot"}}),
        json!({"tool": {"name": 7}}),
        json!({}),
    ];
    let fields = Allowlist::INPUT_FIELDS.unwrap_or_default();
    let mut fast = 0;
    for input in inputs {
        // The values the host sends for these fields, and the document they
        // stand for (what the typed path reads).
        let found: Vec<Option<&serde_json::Value>> =
            fields.iter().map(|f| input.pointer(f)).collect();
        let json: Vec<String> = found
            .iter()
            .map(|v| v.map(ToString::to_string).unwrap_or_default())
            .collect();
        let values: Vec<Field<'_>> = found
            .iter()
            .zip(&json)
            .map(|(value, json)| match value {
                None => Field::Absent,
                Some(serde_json::Value::Null) => Field::Null,
                Some(serde_json::Value::String(s)) => Field::Str(s),
                Some(_) => Field::Json(json),
            })
            .collect();
        let mut document = json!({});
        for (field, value) in fields.iter().zip(&found) {
            if let Some(value) = value {
                let mut at = &mut document;
                let steps: Vec<&str> = field.split('/').skip(1).collect();
                for step in &steps[..steps.len() - 1] {
                    at = at
                        .as_object_mut()
                        .expect("an object")
                        .entry(*step)
                        .or_insert_with(|| json!({}));
                }
                at[steps[steps.len() - 1]] = (*value).clone();
            }
        }
        let typed = Input::from_value(document).map(|i| policy.decide(&i));
        if let Some(decision) = policy.decide_values(&values) {
            // Where the typed path refuses the input, the fast path must not decide.
            assert_eq!(Ok(decision), typed.map_err(|e| e.to_string()), "{input}");
            fast += 1;
        }
    }
    assert!(
        fast >= 11,
        "the values path decides the usual inputs ({fast})"
    );
}
