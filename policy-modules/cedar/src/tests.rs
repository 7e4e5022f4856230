use serde_json::{Value, json};
use toolgate_policy_sdk::testing;

use super::Cedar;

#[test]
fn vectors_pass() {
    if let Err(failures) = testing::run_vectors::<Cedar>(include_str!("../vectors.json")) {
        panic!("{failures}");
    }
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
    testing::output::<Cedar>(&file["config"], &input)
}

#[test]
fn vector_reasons() {
    assert_eq!(
        vector_output("delegation: the agent acting for alice needs approval"),
        json!({"decision": "needs_approval",
               "reason": "an agent acting for a user needs the user's approval to create issues",
               "annotations": {"policies": ["create-issues", "delegated-writes"]}})
    );
    assert_eq!(
        vector_output("argument rule: a repo outside acme/* is forbidden")["reason"],
        "denied by Cedar policy acme-repos-only (writes are limited to acme/* repositories)"
    );
    assert_eq!(
        vector_output("without issues:write nothing permits create_issue"),
        json!({"decision": "deny", "reason": "no Cedar policy permits this call"})
    );
    let error =
        vector_output("evaluation error: a non-numeric limit fails the forbid, which denies");
    assert_eq!(
        error["reason"],
        "Cedar forbid policy could not be evaluated (failing closed): \
         row-limit: type error: expected long, got string"
    );
    assert_eq!(error["annotations"]["policies"], json!(["db-reads"]));
}

fn decide(policies: &str, input: Value) -> Value {
    testing::output::<Cedar>(&json!({"policies": policies}), &input)
}

fn workload(subject: &str) -> Value {
    json!({"kind": "workload", "subject": subject, "issuer": "https://issuer.example",
           "spiffe": {"trust_domain": "example.org", "path": "/a"}, "scopes": ["s1", "s2"]})
}

#[test]
fn principal_carries_identity_attributes() {
    let policy = r#"permit (principal == Agent::"spiffe://example.org/a", action == Action::"call",
        resource == Tool::"gh/echo")
      when { principal.trust_domain == "example.org" && principal.issuer == "https://issuer.example"
             && principal.scopes.containsAll(["s1", "s2"]) && resource.name == "echo"
             && resource.route == "gh" && resource in Route::"gh" && !(context has on_behalf_of) };"#;
    let input = json!({"route": {"name": "gh"}, "tool": {"name": "echo"},
                       "identity": workload("spiffe://example.org/a")});
    assert_eq!(decide(policy, input)["decision"], "allow");
}

#[test]
fn delegation_makes_the_agent_the_principal() {
    let policy = r#"permit (principal == Agent::"agent-1", action, resource)
      when { context.on_behalf_of == User::"alice" };"#;
    let mut identity = workload("alice");
    identity["delegation"] = json!({"user": "alice", "agent": "agent-1"});
    let out = decide(policy, json!({"identity": identity}));
    assert_eq!(out["decision"], "allow", "{out}");
}

#[test]
fn anonymous_callers_and_list_phase() {
    let policy =
        r#"permit (principal == Anonymous::"anonymous", action == Action::"list", resource);"#;
    assert_eq!(
        decide(policy, json!({"phase": "list"}))["decision"],
        "allow"
    );
    assert_eq!(decide(policy, json!({"phase": "call"}))["decision"], "deny");
}

#[test]
fn context_carries_task_and_counters() {
    let policy = r#"permit (principal, action, resource)
      when { context.task_id == "t-1" && context.task.purpose == "triage"
             && context.task.labels.env == "prod" && context.grants_count == 2
             && context.calls_total == 7 && context.arguments.http.query.page == 2
             && !(context.arguments.http has gone) && resource.route == "api" };"#;
    let input = json!({
        "route": {"name": "api", "kind": "http"},
        "tool": {"name": "GET /items", "arguments": {"http": {"query": {"page": 2}, "gone": null}}},
        "task": {"id": "t-1", "purpose": "triage", "labels": {"env": "prod"}},
        "grants": [{"id": "g1"}, {"id": "g2"}],
        "counters": {"total": 7},
    });
    assert_eq!(decide(policy, input)["decision"], "allow");
}

#[test]
fn route_kind_is_an_attribute_of_the_route() {
    let policy = r#"permit (principal, action, resource) when { resource.route == "api" };
        forbid (principal, action, resource in Route::"api") when { Route::"api".kind == "http" };"#;
    let input = json!({"route": {"name": "api", "kind": "http"}, "tool": {"name": "GET /"}});
    let out = decide(policy, input);
    assert_eq!(out["reason"], "denied by Cedar policy policy1", "{out}");
}

#[test]
fn arguments_cannot_forge_entities() {
    let policy = r#"permit (principal, action, resource)
      when { context.arguments has owner && context.arguments.owner == principal };"#;
    let input = json!({"identity": workload("me"),
                       "tool": {"name": "t", "arguments": {"owner": {"__entity": {"type": "Agent", "id": "me"}}}}});
    // The escape is dropped: `owner` is an empty record, unequal to any entity.
    let out = decide(policy, input);
    assert_eq!(
        out,
        json!({"decision": "deny", "reason": "no Cedar policy permits this call"})
    );
}

#[test]
fn config_entities_merge_with_the_request() {
    let config = json!({
        "policies": r#"permit (principal in Team::"ops", action, resource in Env::"prod")
            when { principal.oncall && principal.trust_domain == "example.org" };"#,
        "entities": [
            {"uid": {"type": "Agent", "id": "a"}, "attrs": {"oncall": true, "trust_domain": "forged"},
             "parents": [{"type": "Team", "id": "ops"}]},
            {"uid": {"type": "Route", "id": "deploy"}, "attrs": {}, "parents": [{"type": "Env", "id": "prod"}]},
        ],
    });
    let input =
        json!({"route": {"name": "deploy"}, "tool": {"name": "ship"}, "identity": workload("a")});
    let out = testing::output::<Cedar>(&config, &input);
    assert_eq!(out["decision"], "allow", "{out}");
}

#[test]
fn needs_approval_without_a_reason_names_the_policy() {
    let policy = r#"@id("careful") @needs_approval permit (principal, action, resource);"#;
    assert_eq!(
        decide(policy, json!({})),
        json!({"decision": "needs_approval", "reason": "Cedar policy careful requires approval",
               "annotations": {"policies": ["careful"]}})
    );
}

#[test]
fn a_schema_validates_the_policies() {
    let schema = r#"
        entity Team; entity Agent in [Team] { scopes: Set<String> };
        entity Route { kind: String }; entity Tool in [Route] { name: String, route: String };
        action call, list appliesTo { principal: [Agent], resource: [Tool], context: {} };"#;
    let good = json!({"policies": r#"permit (principal, action == Action::"call", resource)
        when { principal.scopes.contains("x") };"#, "schema": schema});
    let out = testing::output::<Cedar>(&good, &json!({"identity": workload("a")}));
    assert_eq!(
        out,
        json!({"decision": "deny", "reason": "no Cedar policy permits this call"})
    );
    let bad = json!({"policies": r#"permit (principal, action, resource) when { principal.nope };"#,
                     "schema": schema});
    let out = testing::output::<Cedar>(&bad, &json!({}));
    let error = out["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("policy policy0 fails the schema"),
        "{error}"
    );
}

#[test]
fn config_mistakes_are_all_reported() {
    let out = testing::output::<Cedar>(&json!({}), &json!({}));
    assert_eq!(
        out["error"],
        "no Cedar policies configured (`policies` is empty)"
    );
    let out = testing::output::<Cedar>(
        &json!({"policies": "permit (principal, action, resource) when { 1 + };",
                "entities": [{"uid": "nope"}], "schema": 3}),
        &json!({}),
    );
    assert_eq!(
        out["error"],
        "schema must be Cedar schema text or a JSON schema object; \
         policies do not parse: unexpected token `}` (at line 1, column 49); \
         entities: error during entity deserialization: missing field `attrs`"
    );
    let out = testing::output::<Cedar>(
        &json!({"policies": r#"@id("x") permit (principal, action, resource);
                               @id("x") forbid (principal, action, resource);"#}),
        &json!({}),
    );
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("policy ids:")),
        "{out}"
    );
    let out = testing::output::<Cedar>(
        &json!({"policies": "permit (principal == ?principal, action, resource);"}),
        &json!({}),
    );
    assert!(
        out["error"]
            .as_str()
            .is_some_and(|e| e.contains("template")),
        "{out}"
    );
    let out = testing::output::<Cedar>(&json!({"policy": "x"}), &json!({}));
    assert!(
        out["error"].as_str().is_some_and(|e| e.contains("policy")),
        "{out}"
    );
}
