//! The whole story with a real MCP client: denied → the agent asks for a
//! grant → an operator approves with the CLI → allowed → uses exhausted →
//! refused → a new grant → the task completed → refused with `task_ended`.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::*;
use crate::common::peers::{PyServer, py_client};
use crate::common::send;

async fn echo(url: &str, bearer: &str, task: &str, text: &str) -> Value {
    let auth = format!("Authorization: Bearer {bearer}");
    let task = format!("X-Toolgate-Task: {task}");
    let args = json!({"text": text}).to_string();
    py_client(&[
        "--url", url, "--header", &auth, "--header", &task, "--era", "legacy", "call", "--tool",
        "echo", "--args", &args,
    ])
    .await
    .unwrap_or_else(|e| panic!("client failed: {e}"))
}

fn refused_with(out: &Value, needle: &str) {
    assert_eq!(out["isError"], true, "expected a refusal: {out}");
    let text = out["text"].as_str().unwrap_or("");
    assert!(text.contains(needle), "refusal {text:?} lacks {needle:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_requested_approved_exhausted_regranted_ended() {
    let py = PyServer::start(&[]).await;
    let gw = TestGateway::start(&config("tools", &py.url(), "deny", "", "")).await;
    let url = gw.url("/tools");
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "tools", None);

    // 1. No grant yet: jit-grants denies, the model is told why.
    let out = echo(&url, &bearer, &task, "one").await;
    refused_with(&out, "no live grant covers tool \"echo\"");

    // 2. The agent asks for a grant itself, with its own token.
    let ask = json!({"route": "tools", "task_id": task, "tool": "echo", "max_uses": 2,
                     "ttl": "10m", "reason": "echo the triage summary"});
    let r = send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[
            ("authorization", &format!("Bearer {bearer}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&ask).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let pending = r.json();
    assert_eq!(pending["status"], "pending");
    let approval = pending["approval"]["id"].as_str().unwrap().to_owned();

    // 3. An operator approves it with the CLI.
    let (ok, stdout, stderr) = cli(&gw, &["approval", "list", "--state", "pending"]).await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&approval),
        "pending list lacks it:\n{stdout}"
    );
    let (ok, stdout, stderr) = cli(
        &gw,
        &["approval", "approve", &approval, "--reason", "looks fine"],
    )
    .await;
    assert!(ok, "approve failed: {stdout}{stderr}");

    // 4. Allowed, twice: the grant has two uses.
    for text in ["two", "three"] {
        let out = echo(&url, &bearer, &task, text).await;
        assert_eq!(out["isError"], false, "{out}");
        assert_eq!(out["text"], text);
    }
    // 5. Uses exhausted: refused.
    let out = echo(&url, &bearer, &task, "four").await;
    refused_with(&out, "no live grant covers tool \"echo\"");

    // 6. A new grant from the operator: allowed again.
    issue_grant(&gw, &task, "ech?", Some(1)).await;
    let out = echo(&url, &bearer, &task, "five").await;
    assert_eq!(out["text"], "five", "{out}");

    // 7. The task completes (CLI): every later call is refused, task_ended.
    issue_grant(&gw, &task, "*", None).await;
    let (ok, _, stderr) = cli(
        &gw,
        &["task", "complete", &task, "--reason", "inbox triaged"],
    )
    .await;
    assert!(ok, "{stderr}");
    let out = echo(&url, &bearer, &task, "six").await;
    refused_with(&out, "task_ended");

    // The record: counters and recent calls, the approver on the grant.
    let shown = admin(&gw, Method::GET, &format!("/v1/tasks/{task}"), None)
        .await
        .json();
    assert_eq!(shown["task"]["state"], "completed", "{shown}");
    let counters = &shown["activity"]["counters"];
    assert_eq!(
        counters["total"], 5,
        "calls in the ended task are not counted: {shown}"
    );
    assert_eq!(counters["denied"], 2, "{shown}");
    let grants = shown["grants"].as_array().unwrap();
    let approved = grants
        .iter()
        .find(|g| g["source"]["kind"] == "approval")
        .expect("approval grant");
    assert_eq!(approved["granted_by"], "ops");
    assert_eq!(approved["uses"], 2);
    assert!(
        grants.iter().all(|g| !g["revoked"].is_null()),
        "completing the task revoked every grant: {shown}"
    );
    py.requests();
}
