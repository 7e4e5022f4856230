//! The tasks extension (`io.modelcontextprotocol/tasks`): a `tools/call`
//! that becomes an MCP task is remembered as its caller's; `tasks/get`,
//! `tasks/update` and `tasks/cancel` reach the upstream only for that
//! caller, decided by policy in the call's task with the call's grant kept.
//! The experimental tasks of 2025-11-25 (`tasks/get`, `tasks/result`,
//! `tasks/cancel`, `tasks/list`) follow the same rule in the legacy era.
//! No pinned SDK serves or polls MCP tasks, so the upstream is in-process
//! and the requests are raw POSTs.

use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::common::upstream::{self, FakeUpstream};
use crate::common::{Reply, post_mcp};
use crate::tasks::{AGENT, OTHER_AGENT, admin, config, create_task, issue_grant, token};

const MCP_TASK: &str = "mcp-task-7";

/// An upstream that turns every `tools/call` into MCP task `MCP_TASK` and
/// serves the task's follow-ups, in the shapes of both eras (2025-11-25
/// where the call is augmented with `params.task`).
async fn tasks_upstream() -> FakeUpstream {
    FakeUpstream::start(|seen| async move {
        let request: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let stamp = "2026-12-05T00:00:00Z";
        let result = match request["method"].as_str() {
            Some("tools/call") if request["params"]["task"].is_object() => {
                json!({"task": {"taskId": MCP_TASK, "status": "working", "createdAt": stamp,
                "lastUpdatedAt": stamp, "ttl": 60_000, "pollInterval": 100}})
            }
            Some("tools/call") => json!({"resultType": "task", "taskId": MCP_TASK,
                "status": "working", "createdAt": stamp, "lastUpdatedAt": stamp,
                "ttlMs": 60_000, "pollIntervalMs": 100}),
            Some("tasks/result") => json!({"content": [{"type": "text", "text": "built"}]}),
            Some("tasks/list") => {
                let task = |id| {
                    json!({"taskId": id, "status": "working",
                    "createdAt": stamp, "lastUpdatedAt": stamp, "ttl": 60_000})
                };
                json!({"tasks": [task(MCP_TASK), task("someone-elses")]})
            }
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

/// A 2025-11-25 request, raw: no routing headers, no `_meta` envelope.
async fn legacy(
    gw: &TestGateway,
    bearer: &str,
    task: Option<&str>,
    method: &str,
    params: Value,
) -> Reply {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2025-11-25"),
    ];
    if let Some(task) = task {
        headers.push(("x-toolgate-task", task));
    }
    let body = json!({"jsonrpc": "2.0", "id": 4, "method": method, "params": params});
    post_mcp(&gw.url("/tools"), &headers, &body).await
}

fn listed(reply: &Reply) -> Value {
    let v = reply.json();
    let ids: Vec<Value> = v["result"]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("no task list: {v}"))
        .iter()
        .map(|t| t["taskId"].clone())
        .collect();
    json!(ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_task_methods_are_owner_checked_too() {
    let up = tasks_upstream().await;
    let gw = TestGateway::start(&config("tools", &up.url("/mcp"), "deny", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "build", Some(1)).await;
    let mine = token(AGENT, "tools", None);
    let other = token(OTHER_AGENT, "tools", None);

    // A task-augmented call, allowed on the grant's one use, becomes a task.
    let call = json!({"name": "build", "arguments": {}, "task": {"ttl": 60_000}});
    let started = legacy(&gw, &mine, Some(&task), "tools/call", call).await;
    assert_eq!(
        started.json()["result"]["task"]["taskId"],
        MCP_TASK,
        "{}",
        started.text()
    );

    // Its caller polls it, reads its result and lists it, in the call's
    // task on the call's grant (no use spent): the list holds its own only.
    let by_id = json!({"taskId": MCP_TASK});
    let got = legacy(&gw, &mine, None, "tasks/get", by_id.clone()).await;
    assert_eq!(
        got.json()["result"]["status"],
        "completed",
        "{}",
        got.text()
    );
    let result = legacy(&gw, &mine, None, "tasks/result", by_id.clone()).await;
    assert_eq!(
        result.json()["result"]["content"][0]["text"],
        "built",
        "{}",
        result.text()
    );
    let list = legacy(&gw, &mine, None, "tasks/list", json!({})).await;
    assert_eq!(listed(&list), json!([MCP_TASK]), "{}", list.text());
    let uses = admin(&gw, Method::GET, &format!("/v1/grants/{grant}"), None).await;
    assert_eq!(uses.json()["grant"]["uses"], 1, "{}", uses.text());

    // Another caller: refused before the upstream, and lists nothing.
    let before = up.seen().len();
    for method in ["tasks/get", "tasks/result", "tasks/cancel"] {
        let stolen = legacy(&gw, &other, None, method, by_id.clone()).await;
        assert_eq!(stolen.json()["id"], 4, "{method}: {}", stolen.text());
        assert_eq!(
            refused_reason(&stolen),
            "task_invalid",
            "{method}: {}",
            stolen.text()
        );
    }
    let unknown = json!({"taskId": "someone-elses"});
    let r = legacy(&gw, &mine, None, "tasks/result", unknown).await;
    assert_eq!(refused_reason(&r), "task_invalid", "{}", r.text());
    assert_eq!(up.seen().len(), before, "no refused request reached it");
    let list = legacy(&gw, &other, None, "tasks/list", json!({})).await;
    assert_eq!(listed(&list), json!([]), "{}", list.text());

    // The grant revoked: policy refuses the task's follow-ups too.
    let r = admin(
        &gw,
        Method::POST,
        &format!("/v1/grants/{grant}/revoke"),
        Some(json!({"reason": "test"})),
    )
    .await;
    assert!(r.status.is_success(), "{}", r.text());
    let after = legacy(&gw, &mine, None, "tasks/result", by_id).await;
    assert_eq!(refused_reason(&after), "policy_deny", "{}", after.text());
}
