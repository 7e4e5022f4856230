use serde_json::json;

use super::*;

#[test]
fn reads_the_abi_example_whole() {
    let raw = json!({
        "version": 1,
        "phase": "call",
        "route": {"name": "github", "kind": "mcp"},
        "tool": {"name": "create_issue", "arguments": {"repo": "acme/app"}},
        "method": "tools/call",
        "identity": {
            "kind": "workload",
            "subject": "spiffe://example.org/agent/triage",
            "issuer": "https://spire.example.org",
            "spiffe": {"trust_domain": "example.org", "path": "/agent/triage"},
            "audience": ["https://tools.example.com/mcp/github"],
            "scopes": ["tools:call"],
            "expires_at": 1795339147u64,
            "claims": {"email": "a@example.org"},
            "delegation": {"user": null, "agent": null, "intermediaries": []},
            "task_id": "t-42"
        },
        "task": null,
        "grants": [],
        "counters": null,
        "recent_calls": [],
        "request": {"era": "legacy", "protocol_version": "2025-11-25", "headers": {"user-agent": "x"}},
        "time": {"unix_ms": 1795335547000u64},
        "added_in_a_later_revision": true
    });
    let input = Input::from_value(raw.clone()).expect("the ABI example is valid input");
    assert_eq!(input.raw, raw);
    assert_eq!(input.phase, Phase::Call);
    assert_eq!(input.route.name, "github");
    assert_eq!(input.argument("/repo"), Some(&json!("acme/app")));
    assert_eq!(
        input.identity.subject(),
        "spiffe://example.org/agent/triage"
    );
    assert_eq!(input.identity.trust_domain(), Some("example.org"));
    let workload = input.identity.workload().expect("a workload");
    assert_eq!(workload.task_id.as_deref(), Some("t-42"));
    assert_eq!(workload.expires_at, 1795339147);
    assert_eq!(input.time.unix_ms, 1795335547000);
    assert_eq!(
        input.request.protocol_version.as_deref(),
        Some("2025-11-25")
    );
}

#[test]
fn partial_and_null_fields_default() {
    let input = Input::from_value(json!({
        "tool": {"name": "echo"},
        "grants": null,
        "recent_calls": null,
        "request": null,
        "method": null
    }))
    .expect("partial input is valid");
    assert_eq!(input.version, 1);
    assert_eq!(input.phase, Phase::Call);
    assert_eq!(input.identity, Identity::Anonymous);
    assert_eq!(input.tool.arguments, Value::Null);
    assert!(input.grants.is_empty());

    let empty = Input::from_value(json!({})).expect("an empty object is valid input");
    assert_eq!(empty.identity.subject(), "anonymous");
}

#[test]
fn spiffe_reads_as_uri_string_too() {
    let input = Input::from_value(json!({
        "identity": {"kind": "workload", "subject": "spiffe://td.example/a/b",
                     "spiffe": "spiffe://td.example/a/b"}
    }))
    .expect("spiffe as a URI string is valid");
    assert_eq!(input.identity.trust_domain(), Some("td.example"));
    let spiffe = input.identity.workload().and_then(|w| w.spiffe.clone());
    assert_eq!(spiffe.map(|s| s.path), Some("/a/b".to_owned()));

    let bad = Input::from_value(json!({"identity": {"kind": "workload", "spiffe": "https://x"}}));
    assert!(bad.is_err());
}

#[test]
fn grants_and_counters_read() {
    let input = Input::from_value(json!({
        "phase": "list",
        "task": {"id": "t-1", "labels": {"team": "sre"}, "remaining_secs": null},
        "grants": [{"id": "g-1", "tool": "deploy_*", "expires_at": 100,
                    "constraints": [{"pointer": "/env", "one_of": ["staging"]}]}],
        "counters": {"total": 3, "per_tool": {"echo": 2}}
    }))
    .expect("task context is valid");
    assert_eq!(input.phase, Phase::List);
    let grant = &input.grants[0];
    assert!(grant.is_live(99_999));
    assert!(!grant.is_live(100_000));
    assert_eq!(grant.constraints.len(), 1);
    let counters = input.counters.expect("counters");
    assert_eq!((counters.total, counters.denied), (3, 0));
    assert_eq!(input.task.map(|t| t.id), Some("t-1".to_owned()));
}

#[test]
fn wrong_types_and_unknown_kinds_are_errors() {
    assert!(Input::from_value(json!({"phase": "later"})).is_err());
    assert!(Input::from_value(json!({"tool": {"name": 7}})).is_err());
    assert!(Input::from_value(json!({"identity": {"kind": "robot"}})).is_err());
    assert!(Input::from_value(json!([1, 2])).is_err());
}
