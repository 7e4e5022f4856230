//! The tasks extension (`io.modelcontextprotocol/tasks`): a `tools/call`
//! that becomes an MCP task is remembered as its caller's; `tasks/get`,
//! `tasks/update` and `tasks/cancel` reach the upstream only for that
//! caller, decided by policy in the call's task with the call's grant kept.
//! No pinned SDK serves or polls MCP tasks, so the upstream is in-process
//! and the requests are raw 2026-07-28 POSTs.

use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::common::upstream::{self, FakeUpstream};
use crate::common::{Reply, post_mcp};
use crate::tasks::{AGENT, OTHER_AGENT, admin, config, create_task, issue_grant, token};

const MCP_TASK: &str = "mcp-task-7";

/// An upstream that turns every `tools/call` into MCP task `MCP_TASK` and
/// serves the task's follow-ups.
async fn tasks_upstream() -> FakeUpstream {
    FakeUpstream::start(|seen| async move {
        let request: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let stamp = "2026-12-05T00:00:00Z";
        let result = match request["method"].as_str() {
            Some("tools/call") => json!({"resultType": "task", "taskId": MCP_TASK,
                "status": "working", "createdAt": stamp, "lastUpdatedAt": stamp,
                "ttlMs": 60_000, "pollIntervalMs": 100}),
            Some("tasks/get") => {
                json!({"resultType": "complete", "taskId": request["params"]["taskId"],
                "status": "completed", "createdAt": stamp, "lastUpdatedAt": stamp, "ttlMs": 60_000,
                "result": {"content": [{"type": "text", "text": "built"}]}})
            }
            _ => json!({"resultType": "complete"}),
        };
        upstream::json(
            200,
            &json!({"jsonrpc": "2.0", "id": request["id"], "result": result}),
        )
    })
    .await
}

async fn post(
    gw: &TestGateway,
    bearer: &str,
    task: Option<&str>,
    method: &str,
    params: Value,
) -> Reply {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ];
    if method == "tools/call" {
        headers.push(("mcp-name", "build"));
    }
    if let Some(task) = task {
        headers.push(("x-toolgate-task", task));
    }
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"extensions": {"io.modelcontextprotocol/tasks": {}}},
    });
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": method, "params": params});
    post_mcp(&gw.url("/tools"), &headers, &body).await
}

fn refused_reason(reply: &Reply) -> Value {
    reply.json()["error"]["data"]["reason"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_starting_caller_touches_an_mcp_task_which_keeps_its_grant() {
    let up = tasks_upstream().await;
    let gw = TestGateway::start(&config("tools", &up.url("/mcp"), "deny", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "build", Some(1)).await;
    let mine = token(AGENT, "tools", None);
    let other = token(OTHER_AGENT, "tools", None);
    let uses = || async {
        admin(&gw, Method::GET, &format!("/v1/grants/{grant}"), None)
            .await
            .json()["grant"]["uses"]
            .clone()
    };

    // The call is allowed on the grant's one use and becomes an MCP task.
    let started = post(
        &gw,
        &mine,
        Some(&task),
        "tools/call",
        json!({"name": "build", "arguments": {}}),
    )
    .await;
    assert_eq!(
        started.json()["result"]["taskId"],
        MCP_TASK,
        "{}",
        started.text()
    );
    assert_eq!(uses().await, 1);

    // Its caller polls, answers and cancels it — without naming the task
    // again: each follow-up is decided in the call's task, on its grant,
    // and spends no use.
    let got = post(&gw, &mine, None, "tasks/get", json!({"taskId": MCP_TASK})).await;
    assert_eq!(
        got.json()["result"]["status"],
        "completed",
        "{}",
        got.text()
    );
    let updated = post(
        &gw,
        &mine,
        None,
        "tasks/update",
        json!({"taskId": MCP_TASK, "inputResponses": {}}),
    )
    .await;
    assert_eq!(
        updated.json()["result"]["resultType"],
        "complete",
        "{}",
        updated.text()
    );
    assert_eq!(uses().await, 1, "follow-ups keep the call's grant");

    // Another caller, or a task nobody started here: refused, never forwarded.
    let before = up.seen().len();
    let stolen = post(&gw, &other, None, "tasks/get", json!({"taskId": MCP_TASK})).await;
    assert_eq!(refused_reason(&stolen), "task_invalid", "{}", stolen.text());
    let stolen = post(
        &gw,
        &other,
        None,
        "tasks/cancel",
        json!({"taskId": MCP_TASK}),
    )
    .await;
    assert_eq!(refused_reason(&stolen), "task_invalid", "{}", stolen.text());
    let unknown = post(
        &gw,
        &mine,
        None,
        "tasks/get",
        json!({"taskId": "never-started"}),
    )
    .await;
    assert_eq!(
        refused_reason(&unknown),
        "task_invalid",
        "{}",
        unknown.text()
    );
    let bad = post(&gw, &mine, None, "tasks/get", json!({"taskId": 7})).await;
    assert_eq!(bad.json()["error"]["code"], -32602, "{}", bad.text());
    assert_eq!(
        up.seen().len(),
        before,
        "no refused follow-up reached the upstream"
    );

    // The grant revoked: policy refuses the task's follow-ups too.
    let r = admin(
        &gw,
        Method::POST,
        &format!("/v1/grants/{grant}/revoke"),
        Some(json!({"reason": "test"})),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text());
    let after = post(
        &gw,
        &mine,
        None,
        "tasks/cancel",
        json!({"taskId": MCP_TASK}),
    )
    .await;
    assert_eq!(refused_reason(&after), "policy_deny", "{}", after.text());
    assert_eq!(up.seen().len(), before);
}
