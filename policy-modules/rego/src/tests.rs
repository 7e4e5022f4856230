use serde_json::{Value, json};
use toolgate_policy_sdk::{Input, Policy, testing};

use super::Rego;

#[test]
fn vectors_pass() {
    if let Err(failures) = testing::run_vectors::<Rego>(include_str!("../vectors.json")) {
        panic!("{failures}");
    }
}

fn config(rego: &str) -> Value {
    json!({"policies": {"t.rego": format!("package toolgate\n\nimport rego.v1\n\n{rego}")}})
}

fn decide(rego: &str, input: Value) -> Value {
    testing::output::<Rego>(&config(rego), &input)
}

#[test]
fn boolean_result() {
    let rule = r#"default decision := false
decision if input.tool.name == "echo""#;
    assert_eq!(
        decide(rule, json!({"tool": {"name": "echo"}})),
        json!({"decision": "allow"})
    );
    assert_eq!(
        decide(rule, json!({"tool": {"name": "rm"}})),
        json!({"decision": "deny", "reason": "denied by rego policy"})
    );
}

#[test]
fn allow_flag_result() {
    let rule = r#"decision := {"allow": input.tool.name == "echo", "reason": "only echo",
    "needs_approval": input.tool.name == "deploy"}"#;
    assert_eq!(
        decide(rule, json!({"tool": {"name": "echo"}})),
        json!({"decision": "allow"})
    );
    assert_eq!(
        decide(rule, json!({"tool": {"name": "rm"}})),
        json!({"decision": "deny", "reason": "only echo"})
    );
    // needs_approval wins over allow: false.
    assert_eq!(
        decide(rule, json!({"tool": {"name": "deploy"}})),
        json!({"decision": "needs_approval", "reason": "only echo"})
    );
}

#[test]
fn allow_flag_must_be_boolean() {
    let out = decide(r#"decision := {"allow": "yes"}"#, json!({}));
    assert_eq!(out["decision"], "deny");
    assert_eq!(
        out["reason"],
        "rego result `allow` must be a boolean, got a string"
    );
}

#[test]
fn explicit_result_keeps_reason_and_annotations() {
    let rule = r#"decision := {"decision": "needs_approval", "reason": "ask ops",
    "annotations": {"rule": "ops", "level": 2}}"#;
    assert_eq!(
        decide(rule, json!({})),
        json!({"decision": "needs_approval", "reason": "ask ops",
               "annotations": {"rule": "ops", "level": 2}})
    );
}

#[test]
fn unknown_decision_and_shapes_deny() {
    let out = decide(r#"decision := {"decision": "maybe"}"#, json!({}));
    assert_eq!(out["decision"], "deny");
    assert!(
        out["reason"]
            .as_str()
            .is_some_and(|r| r.contains("unknown decision \"maybe\""))
    );
    let out = decide(r#"decision := "allow""#, json!({}));
    assert_eq!(
        out["reason"],
        "rego result must be a boolean or an object, got a string"
    );
    let out = decide(r#"decision := {"ok": true}"#, json!({}));
    assert_eq!(
        out["reason"],
        "rego result is an object with neither `decision` nor `allow`"
    );
}

#[test]
fn undefined_result_denies() {
    let out = decide(
        r#"decision := true if input.tool.name == "echo""#,
        json!({}),
    );
    assert_eq!(
        out,
        json!({"decision": "deny", "reason": "rego policy produced no decision"})
    );
}

#[test]
fn evaluation_error_denies_with_the_error() {
    let rule = "x := 1 if input.a\nx := 2 if input.b\ndecision := x == 1";
    let out = decide(rule, json!({"a": true, "b": true}));
    assert_eq!(out["decision"], "deny");
    assert_eq!(
        out["reason"],
        "rego evaluation failed at t.rego:6:1: rule conflicts with rule at t.rego:5:1"
    );
    assert!(out["annotations"]["error"].is_string());
}

#[test]
fn one_engine_answers_call_after_call() {
    let rule = "x := 1 if input.a\nx := 2 if input.b\ndecision := x == 1";
    let config = serde_json::from_value(config(rule)).unwrap_or_default();
    let Ok(rego) = Rego::configure(config) else {
        panic!("config refused");
    };
    let input = |v: Value| Input::from_value(v).unwrap_or_default();
    // An error, then a decision, then no input left over from either.
    assert!(
        !rego
            .decide(&input(json!({"a": true, "b": true})))
            .is_allow()
    );
    assert!(rego.decide(&input(json!({"a": true}))).is_allow());
    let undefined = rego.decide(&input(json!({})));
    assert_eq!(undefined.reason(), Some("rego policy produced no decision"));
}

#[test]
fn the_input_is_the_whole_decision_input() {
    // Fields the SDK does not model reach Rego too.
    let rule = r#"decision := input.future.flag"#;
    let out = decide(rule, json!({"future": {"flag": true}}));
    assert_eq!(out["decision"], "allow");
}

#[test]
fn data_and_custom_query() {
    let config = json!({
        "policies": {"p.rego": "package gate\nimport rego.v1\nok if input.tool.name in data.tools"},
        "data": {"tools": ["echo"]},
        "query": "data.gate.ok",
    });
    let out = testing::output::<Rego>(&config, &json!({"tool": {"name": "echo"}}));
    assert_eq!(out["decision"], "allow");
    let out = testing::output::<Rego>(&config, &json!({"tool": {"name": "rm"}}));
    assert_eq!(out["reason"], "rego policy produced no decision");
}

#[test]
fn config_mistakes_are_reported() {
    let out = testing::output::<Rego>(&json!({}), &json!({}));
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.contains("no Rego policies")),
        "{out}"
    );

    let out = testing::output::<Rego>(
        &json!({"policies": {"bad.rego": "package p\nallow if {"}, "data": [1]}),
        &json!({}),
    );
    let error = out["error"].as_str().unwrap_or_default();
    assert!(error.contains("policy \"bad.rego\""), "{error}");
    assert!(error.contains("data must be an object"), "{error}");

    let out = testing::output::<Rego>(
        &json!({"policies": {"p.rego": "package p"}, "query": "data.p.("}),
        &json!({}),
    );
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("query ")),
        "{out}"
    );

    let out = testing::output::<Rego>(&json!({"policies": {}, "querry": "x"}), &json!({}));
    assert!(
        out["error"].as_str().is_some_and(|e| e.contains("querry")),
        "{out}"
    );
}

/// The output of the vector named `name` in `vectors.json`.
fn vector_output(name: &str) -> Value {
    let file: Value = serde_json::from_str(include_str!("../vectors.json")).unwrap_or_default();
    let vectors = file["vectors"].as_array().cloned().unwrap_or_default();
    let input = vectors
        .iter()
        .find(|v| v["name"] == name)
        .map(|v| v["input"].clone())
        .unwrap_or_else(|| panic!("no vector {name:?}"));
    testing::output::<Rego>(&file["config"], &input)
}

#[test]
fn vector_reasons() {
    assert_eq!(
        vector_output("evaluation error (max_rows defined twice) denies")["reason"],
        "rego evaluation failed at toolgate.rego:30:1: rule conflicts with rule at toolgate.rego:28:1"
    );
    assert_eq!(
        vector_output("delegated write needs the user's approval"),
        json!({"decision": "needs_approval",
               "reason": "spiffe://example.org/agent/triage is acting for alice@example.org",
               "annotations": {"rule": "delegated-write"}})
    );
    assert_eq!(
        vector_output("argument rule: a db query over the row limit")["reason"],
        "limit 500 exceeds 100 rows"
    );
}

#[test]
fn builtins_left_out_of_the_build_deny() {
    // time.* needs a clock the sandbox does not have (README "Builtins").
    let out = decide("decision if time.now_ns() > 0", json!({}));
    assert_eq!(
        out["reason"],
        "rego evaluation failed at t.rego:5:24: could not find function time.now_ns"
    );
}
