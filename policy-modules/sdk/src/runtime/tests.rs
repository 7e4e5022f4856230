use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::{Decision, Field, testing, values};

/// Allows tools named in the config; refuses a config naming no tool.
#[derive(Debug)]
struct Toy {
    tools: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToyConfig {
    #[serde(default)]
    tools: Option<Vec<String>>,
}

impl Policy for Toy {
    const RAW_INPUT: bool = true;

    type Config = ToyConfig;

    fn configure(config: ToyConfig) -> Result<Self, String> {
        match config.tools {
            Some(tools) if tools.is_empty() => Err("tools is empty".into()),
            tools => Ok(Self {
                tools: tools.unwrap_or_else(|| vec!["default".into()]),
            }),
        }
    }

    fn decide(&self, input: &Input) -> Decision {
        if self.tools.contains(&input.tool.name) {
            Decision::allow().annotate("raw_has_tool", input.raw.get("tool").is_some())
        } else {
            Decision::deny(format!("tool {} is not listed", input.tool.name))
        }
    }
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("runtime output is JSON")
}

#[test]
fn alloc_then_decide_reads_the_buffer() {
    let mut runtime = Runtime::<Toy>::new();
    let input = br#"{"tool": {"name": "default"}}"#;
    // The buffer may be larger than the input: only the first `len` bytes count.
    let ptr = runtime.alloc(input.len() as i32 + 8);
    let buffer = runtime.pending_mut(ptr).expect("alloc keeps the buffer");
    buffer[..input.len()].copy_from_slice(input);
    buffer[input.len()..].copy_from_slice(b"garbage!");
    runtime.decide(ptr, input.len() as i32);
    assert_eq!(
        json_of(runtime.output()),
        json!({"decision": "allow", "annotations": {"raw_has_tool": true}})
    );
    assert!(runtime.pending.is_empty(), "decide consumes the buffer");
}

#[test]
fn bad_pointers_and_lengths_are_errors_not_traps() {
    let mut runtime = Runtime::<Toy>::new();
    runtime.decide(12345, 2);
    assert!(json_of(runtime.output())["error"].is_string());
    let ptr = runtime.alloc(4);
    runtime.decide(ptr, 5);
    assert!(json_of(runtime.output())["error"].is_string());
    assert_eq!(runtime.alloc(-1), 0);
}

#[test]
fn failed_configure_never_falls_back_to_default() {
    let mut runtime = Runtime::<Toy>::new();
    runtime.configure(999, 1);
    let out = runtime.decide_json(br#"{"tool": {"name": "default"}}"#);
    assert!(json_of(out)["error"].is_string());

    let mut runtime = Runtime::<Toy>::new();
    let out = runtime.configure_json(br#"{"tools": []}"#);
    assert_eq!(json_of(out), json!({"error": "tools is empty"}));
    let out = runtime.decide_json(br#"{"tool": {"name": "default"}}"#);
    assert_eq!(
        json_of(out),
        json!({"error": "module is not configured: tools is empty"})
    );
}

#[test]
fn config_errors_are_reported() {
    let mut runtime = Runtime::<Toy>::new();
    let out = json_of(runtime.configure_json(br#"{"tool": ["x"]}"#));
    let error = out["error"].as_str().expect("an error");
    assert!(
        error.starts_with("module config is invalid: unknown field `tool`"),
        "{error}"
    );
    assert_eq!(
        json_of(runtime.configure_json(b"null")),
        json!({"ok": true})
    );
    assert_eq!(json_of(runtime.configure_json(b" ")), json!({"ok": true}));
}

#[test]
fn unconfigured_decide_uses_default_config() {
    let mut runtime = Runtime::<Toy>::new();
    let out = json_of(runtime.decide_json(br#"{"tool": {"name": "default"}}"#));
    assert_eq!(out["decision"], "allow");
}

#[test]
fn malformed_input_answers_error() {
    let mut runtime = Runtime::<Toy>::new();
    let out = json_of(runtime.decide_json(b"{not json"));
    let error = out["error"].as_str().expect("an error");
    assert!(
        error.starts_with("policy input is not valid JSON"),
        "{error}"
    );
    let out = json_of(runtime.decide_json(br#"{"phase": 3}"#));
    let error = out["error"].as_str().expect("an error");
    assert!(
        error.starts_with("policy input does not match ABI version 1"),
        "{error}"
    );
}

#[test]
fn pack_puts_pointer_high_and_length_low() {
    let packed = pack(b"abc") as u64;
    assert_eq!(packed & 0xffff_ffff, 3);
}

#[test]
fn run_vectors_reports_every_mismatch() {
    let vectors = r#"{"config": {"tools": ["echo"]}, "vectors": [
        {"name": "echo allowed", "input": {"tool": {"name": "echo"}}, "expect": "allow"},
        {"name": "add wrongly expected", "input": {"tool": {"name": "add"}}, "expect": "allow"},
        {"name": "bad input", "input": {"phase": "nope"}, "expect": "deny"}
    ]}"#;
    let err = testing::run_vectors::<Toy>(vectors).expect_err("two vectors fail");
    assert!(err.starts_with("2 of 3 vectors failed"), "{err}");
    assert!(
        err.contains("\"add wrongly expected\": expected allow, got deny (tool add is not listed)"),
        "{err}"
    );
    assert!(
        err.contains("\"bad input\": expected deny, got no decision"),
        "{err}"
    );

    let good = r#"{"config": {"tools": ["echo"]}, "vectors": [
        {"name": "echo", "input": {"tool": {"name": "echo"}}, "expect": "allow"}]}"#;
    assert_eq!(testing::run_vectors::<Toy>(good), Ok(()));
    assert!(testing::run_vectors::<Toy>(r#"{"vectors": []}"#).is_err());
    assert!(
        testing::run_vectors::<Toy>(
            r#"{"config": {"tools": []}, "vectors": [
        {"name": "x", "expect": "deny"}]}"#
        )
        .is_err()
    );
    assert!(
        testing::run_vectors::<Toy>(
            r#"{"vectors": [
        {"name": "x", "expect": "deny"}, {"name": "x", "expect": "deny"}]}"#
        )
        .is_err()
    );
}

/// Reads the tool name as a value; leaves anything but a string to `decide`.
#[derive(Debug)]
struct Named;

impl Policy for Named {
    type Config = ToyConfig;

    const INPUT_FIELDS: Option<&'static [&'static str]> = Some(&["/tool/name", "/phase"]);
    const INPUT_VALUES: bool = true;

    fn configure(_: ToyConfig) -> Result<Self, String> {
        Ok(Self)
    }

    fn decide(&self, input: &Input) -> Decision {
        Decision::deny(format!("typed: {} in {:?}", input.tool.name, input.phase))
    }

    fn decide_values(&self, values: &[Field<'_>]) -> Option<Decision> {
        let name = values.first()?.as_str()?;
        Some(Decision::allow().annotate("name", name))
    }
}

#[test]
fn the_values_form_is_decided_by_decide_values_else_typed() {
    let mut runtime = Runtime::<Named>::new();
    assert_eq!(
        json_of(&runtime.input_fields_json()),
        json!({"fields": ["/tool/name", "/phase"], "form": "values"})
    );
    let sent = values::encode(
        &json!({"tool": {"name": "echo"}, "phase": "grant"}),
        &["/tool/name", "/phase"],
    );
    assert_eq!(
        json_of(runtime.decide_json(&sent)),
        json!({"decision": "allow", "annotations": {"name": "echo"}})
    );
    // No string: the typed path decides on the document the values stand for.
    let sent = values::encode(&json!({"phase": "grant"}), &["/tool/name", "/phase"]);
    assert_eq!(
        json_of(runtime.decide_json(&sent))["reason"],
        "typed:  in Grant"
    );
    // A host that ignores the declaration sends JSON: still decided.
    let out = json_of(runtime.decide_json(br#"{"tool": {"name": "echo"}, "phase": "list"}"#));
    assert_eq!(out["reason"], "typed: echo in List");
    // A wrong number of values is an error, not a decision.
    let short = values::encode(&json!({}), &["/tool/name"]);
    assert!(json_of(runtime.decide_json(&short))["error"].is_string());
    assert!(
        testing::run_vectors::<Named>(
            r#"{"vectors": [{"name": "v", "input": {"tool": {"name": "x"}}, "expect": "allow"}]}"#
        )
        .is_ok()
    );
}
