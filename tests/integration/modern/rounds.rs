//! Multi round-trip requests: an `input_required` answer passes to the
//! client unchanged, and the retried call (with `inputResponses` and the
//! upstream's `requestState`) is decided again as a new call, in the same
//! task: its grant use is counted and its decision logged again.

use http::Method;
use serde_json::{Value, json};
use toolgate::audit::line::Body;

use super::*;
use crate::audit::records;
use crate::common::peers::PyServer;
use crate::common::upstream::{self, FakeUpstream};
use crate::tasks::{AGENT, admin, config, create_task, issue_grant, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_of_an_input_required_call_is_a_new_call_in_the_same_task() {
    let py = PyServer::start(&["--confirm-tool"]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let audit = format!("[audit]\ndir = \"{}\"\n", dir.display());
    let gw = TestGateway::start(&config("tools", &py.url(), "deny", "", &audit)).await;
    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "confirm", Some(2)).await;
    let auth = format!("Authorization: Bearer {}", token(AGENT, "tools", None));
    let task_header = format!("X-Toolgate-Task: {task}");
    let url = gw.url("/tools");
    let confirm = |action: &'static str| {
        let args = json!({ "action": action }).to_string();
        let (url, auth, task_header) = (url.clone(), auth.clone(), task_header.clone());
        async move {
            py_client(&[
                "--url",
                &url,
                "--era",
                "modern",
                "--header",
                &auth,
                "--header",
                &task_header,
                "--elicit",
                r#"{"name":"ops"}"#,
                "call",
                "--tool",
                "confirm",
                "--args",
                &args,
            ])
            .await
            .unwrap_or_else(|e| panic!("python client: {e}"))
        }
    };

    // Round one asks who approves; the SDK answers and retries: two calls.
    let out = confirm("deploy").await;
    assert_eq!(out["isError"], false, "{out}");
    assert_eq!(out["text"], "deploy approved by ops", "{out}");
    let g = admin(&gw, Method::GET, &format!("/v1/grants/{grant}"), None)
        .await
        .json();
    assert_eq!(g["grant"]["uses"], 2, "both rounds spent a use: {g}");

    // Both rounds were decided and logged, in the same task, on the grant.
    let mut decisions: Vec<Value> = Vec::new();
    for _ in 0..100 {
        decisions = records(&dir, 1)
            .await
            .iter()
            .filter_map(|r| match &r.body {
                Body::Decision(d) if d.tool == "confirm" => Some(json!({
                    "decision": d.decision,
                    "task": d.task.as_ref().map(|t| t.id.to_string()),
                    "grants": d.grants,
                })),
                _ => None,
            })
            .collect();
        if decisions.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let one = json!({"decision": "allow", "task": task, "grants": [grant]});
    assert_eq!(decisions, vec![one.clone(), one], "{decisions:?}");

    // No use left: the next call is refused at its first round.
    let out = confirm("rollback").await;
    assert_eq!(out["isError"], true, "{out}");
    assert!(
        out["text"].as_str().unwrap_or("").contains("no uses left")
            || out["text"].as_str().unwrap_or("").contains("no live grant"),
        "{out}"
    );
}

/// The interim answer and the retry pass through as they are, whatever an
/// upstream puts in them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_required_and_the_retry_pass_through_unchanged() {
    let interim = json!({
        "resultType": "input_required",
        "inputRequests": {"who": {"method": "elicitation/create", "params": {
            "mode": "form", "message": "Who?",
            "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}}},
        "requestState": "opaque-upstream-state.v1",
        "vendorField": {"kept": true},
    });
    let answer = interim.clone();
    let up = FakeUpstream::start(move |seen| {
        let answer = answer.clone();
        async move {
            let request: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
            let result = match request["params"].get("requestState") {
                None => answer,
                Some(_) => {
                    json!({"resultType": "complete", "content": [{"type": "text", "text": "ok"}]})
                }
            };
            upstream::json(
                200,
                &json!({"jsonrpc": "2.0", "id": request["id"], "result": result}),
            )
        }
    })
    .await;
    let gw = gateway(&up.url("/mcp")).await;
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    let call = |id: u64, extra: Value| {
        let mut params = json!({"name": "echo", "arguments": {"text": "x"}});
        if let (Some(p), Value::Object(extra)) = (params.as_object_mut(), extra) {
            p.extend(extra);
        }
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params})
    };
    let first = crate::common::post_mcp(&gw.url("/mcp"), &headers, &call(1, json!({}))).await;
    assert_eq!(first.json()["result"], interim, "{}", first.text());
    let retry = call(
        2,
        json!({"inputResponses": {"who": {"action": "accept", "content": {"name": "ops"}}},
               "requestState": "opaque-upstream-state.v1"}),
    );
    let second = crate::common::post_mcp(&gw.url("/mcp"), &headers, &retry).await;
    assert_eq!(
        second.json()["result"]["content"][0]["text"],
        "ok",
        "{}",
        second.text()
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    let forwarded: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(forwarded, retry, "the retry reached the upstream as sent");
}
