//! A task store the gateway cannot write. The real binary runs with a
//! file-size limit (`prlimit`) that makes the kernel fail every write past
//! the first 4 KiB of its store file with EFBIG, as a full disk fails it
//! with ENOSPC: changes are refused with a clear 503, reads and decisions go
//! on, a counted grant use is refused (never granted unrecorded), the
//! metrics alarm — and when the limit is lifted, writes work again without
//! a restart, and nothing refused shows up after one.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{AGENT, Outcome, agent_token, call_tool, jit_route, tool_upstream};
use crate::common::metric_in;
use crate::common::process::{OPERATOR_TOKEN, ServeDir, ServerProcess, admin};

async fn metrics(server: &ServerProcess) -> String {
    let url = format!("{}/metrics", server.admin_url());
    crate::common::send(Method::GET, &url, &[], super::empty())
        .await
        .text()
}

async fn post(server: &ServerProcess, path: &str, body: Value) -> (StatusCode, Value) {
    admin(server, Method::POST, path, OPERATOR_TOKEN, Some(body)).await
}

async fn get(server: &ServerProcess, path: &str) -> Value {
    let (status, body) = admin(server, Method::GET, path, OPERATOR_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

fn grant_body(task: &str, tool: &str, max_uses: Option<u64>) -> Value {
    let mut body = json!({"task_id": task, "tool": tool, "ttl": "1h", "reason": "faults"});
    if let Some(n) = max_uses {
        body["max_uses"] = json!(n);
    }
    body
}

/// The store refused a change: 503 `store_unavailable`, saying why.
#[track_caller]
fn assert_refused_change(what: &str, (status, body): &(StatusCode, Value)) {
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(body["error"]["code"], "store_unavailable", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("write failed"),
        "{what}: the message says the write failed: {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_store_refuses_changes_but_serves_reads_and_decisions() {
    let up = tool_upstream().await;
    let dir = ServeDir::with(&jit_route(&up.url("/mcp")));
    let server = dir.start_sizable();
    let token = agent_token();
    let (status, task) = post(
        &server,
        "/v1/tasks",
        json!({"agent": AGENT, "purpose": "faults", "ttl": "1h"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task = task["task"]["id"].as_str().unwrap().to_owned();
    let (status, read) = post(&server, "/v1/grants", grant_body(&task, "read_*", None)).await;
    assert_eq!(status, StatusCode::CREATED, "{read}");
    let read = read["grant"]["id"].as_str().unwrap().to_owned();
    let (status, pay) = post(&server, "/v1/grants", grant_body(&task, "pay", Some(5))).await;
    assert_eq!(status, StatusCode::CREATED, "{pay}");
    let pay = pay["grant"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        call_tool(server.addr, &token, &task, "pay").await,
        Outcome::Ran
    );
    let text = metrics(&server).await;
    assert_eq!(metric_in(&text, "toolgate_store_writable"), 1.0, "{text}");
    assert_eq!(metric_in(&text, "toolgate_store_write_failures_total"), 0.0);

    // The disk fills.
    server.limit_file_size(Some(4096));
    assert_refused_change(
        "new task",
        &post(
            &server,
            "/v1/tasks",
            json!({"agent": AGENT, "purpose": "x", "ttl": "1h"}),
        )
        .await,
    );
    assert_refused_change(
        "new grant",
        &post(&server, "/v1/grants", grant_body(&task, "write_*", None)).await,
    );
    assert_refused_change(
        "revocation",
        &post(
            &server,
            &format!("/v1/grants/{read}/revoke"),
            json!({"reason": "x"}),
        )
        .await,
    );
    assert_refused_change(
        "completion",
        &post(
            &server,
            &format!("/v1/tasks/{task}/complete"),
            json!({"reason": "x"}),
        )
        .await,
    );

    // Reads go on, unchanged by the refused writes.
    let t = get(&server, &format!("/v1/tasks/{task}")).await;
    assert_eq!(t["task"]["state"], "active", "{t}");
    let g = get(&server, &format!("/v1/grants/{read}")).await;
    assert!(g["grant"]["revoked"].is_null(), "{g}");
    let live = get(&server, &format!("/v1/grants?task={task}&live=true")).await;
    assert_eq!(live["grants"].as_array().map(Vec::len), Some(2), "{live}");

    // Decisions go on: an unlimited grant's use needs no write; a call
    // without a grant is denied; a counted use that cannot be recorded is
    // refused, never granted unrecorded.
    assert_eq!(
        call_tool(server.addr, &token, &task, "read_mail").await,
        Outcome::Ran
    );
    let Outcome::Refused(why) = call_tool(server.addr, &token, &task, "delete_all").await else {
        panic!("a call without a grant must be refused");
    };
    assert!(why.contains("no live grant"), "{why}");
    let Outcome::Refused(why) = call_tool(server.addr, &token, &task, "pay").await else {
        panic!("a counted use that cannot be recorded must be refused");
    };
    assert!(
        why.contains("cannot be recorded") && !why.contains(".redb"),
        "says why, without the store's path: {why}"
    );

    // The alarm: the gauge is down, each refused write counted.
    let text = metrics(&server).await;
    assert_eq!(metric_in(&text, "toolgate_store_writable"), 0.0, "{text}");
    assert!(
        metric_in(&text, "toolgate_store_write_failures_total") >= 5.0,
        "{text}"
    );
    assert_eq!(
        metric_in(
            &text,
            "toolgate_decisions_total{route=\"jit\",phase=\"call\",reason=\"store_unavailable\"}"
        ),
        1.0,
        "{text}"
    );
    let health = crate::common::send(
        Method::GET,
        &format!("{}/healthz", server.admin_url()),
        &[],
        super::empty(),
    )
    .await;
    assert_eq!(health.status, StatusCode::OK, "still serving");
    server
        .log_until(|log| log.contains("task store write failed"))
        .await;

    // Space again: writes work without a restart (the journal reopens).
    server.limit_file_size(None);
    let deadline = Instant::now() + Duration::from_secs(10);
    let extra = loop {
        let (status, body) = post(&server, "/v1/grants", grant_body(&task, "write_*", None)).await;
        if status == StatusCode::CREATED {
            break body["grant"]["id"].as_str().unwrap().to_owned();
        }
        assert_refused_change("retry", &(status, body));
        assert!(Instant::now() < deadline, "writes never worked again");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        call_tool(server.addr, &token, &task, "pay").await,
        Outcome::Ran
    );
    let text = metrics(&server).await;
    assert_eq!(metric_in(&text, "toolgate_store_writable"), 1.0, "{text}");
    server
        .log_until(|log| {
            log.contains("task store reopened") && log.contains("task store writes work again")
        })
        .await;

    // After a crash: the acknowledged changes, none of the refused ones.
    server.kill9();
    let server = dir.start();
    let tasks = get(&server, "/v1/tasks").await;
    assert_eq!(tasks["tasks"].as_array().map(Vec::len), Some(1), "{tasks}");
    let g = get(&server, &format!("/v1/grants/{pay}")).await;
    assert_eq!(
        g["grant"]["uses"], 2,
        "two recorded uses, none for the refused call: {g}"
    );
    let g = get(&server, &format!("/v1/grants/{read}")).await;
    assert!(g["grant"]["revoked"].is_null(), "{g}");
    let grants = get(&server, &format!("/v1/grants?task={task}")).await;
    let ids: Vec<&str> = grants["grants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{grants}");
    assert!(ids.contains(&extra.as_str()), "{grants}");
}
