//! A call's decision is recorded whatever the caller does with its
//! connection: a caller that half-closes (sends its request, then shuts its
//! write side) gets its answer; a caller that leaves mid-call still leaves
//! a decision record for every grant use it spent.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::upstream::{FakeUpstream, json as json_answer};
use crate::common::{TestGateway, send};
use crate::tasks::{AGENT, admin, config, create_task, issue_grant, token};

/// The sum of `toolgate_decisions_total` over the `call` phase of `route`.
async fn call_decisions(gw: &TestGateway, route: &str) -> f64 {
    decisions(gw, route, "").await
}

/// The same, for one verdict (`allow`, `deny`, …) or every one (`""`).
async fn decisions(gw: &TestGateway, route: &str, verdict: &str) -> f64 {
    let text = send(
        http::Method::GET,
        &gw.admin_url("/metrics"),
        &[],
        bytes::Bytes::new(),
    )
    .await
    .text();
    let mut labels = vec![format!("route=\"{route}\""), "phase=\"call\"".to_owned()];
    if !verdict.is_empty() {
        labels.push(format!("decision=\"{verdict}\""));
    }
    text.lines()
        .filter(|l| l.starts_with("toolgate_decisions_total{"))
        .filter(|l| labels.iter().all(|want| l.contains(want.as_str())))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn grant_uses(gw: &TestGateway, grant: &str) -> u64 {
    let g = admin(gw, http::Method::GET, &format!("/v1/grants/{grant}"), None)
        .await
        .json();
    g["grant"]["uses"].as_u64().unwrap_or_else(|| panic!("{g}"))
}

/// One modern-era `tools/call` written on a raw socket whose write side is
/// then shut; returns what came back before the gateway closed.
async fn half_closed_call(gw: &TestGateway, bearer: &str, i: usize) -> String {
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
        "params": {"name": "search_issues", "arguments": {"q": i},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}))
    .unwrap();
    let head = format!(
        "POST /tools HTTP/1.1\r\nhost: gateway.test\r\nauthorization: Bearer {bearer}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         mcp-protocol-version: 2026-07-28\r\nmcp-method: tools/call\r\nmcp-name: search_issues\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut answer))
        .await
        .expect("the gateway answers or closes within 20s")
        .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_closed_calls_are_answered_and_every_spent_use_is_recorded() {
    let up = FakeUpstream::start(|_| async {
        json_answer(200, &json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}))
    })
    .await;
    let gw = TestGateway::start(&config("tools", &up.url(""), "deny", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "search_*", Some(3)).await;
    let bearer = token(AGENT, "tools", Some(&task));

    let mut answered = 0;
    for i in 0..5 {
        let answer = half_closed_call(&gw, &bearer, i).await;
        if answer.starts_with("HTTP/1.1 200") {
            answered += 1;
        }
    }
    assert_eq!(answered, 5, "a half-closed caller still gets its answer");
    let uses = grant_uses(&gw, &grant).await;
    assert_eq!(uses, 3, "max_uses is spent, never more");
    assert_eq!(up.seen().len(), 3, "every spent use reached the upstream");
    assert_eq!(
        call_decisions(&gw, "tools").await,
        5.0,
        "one decision recorded per call"
    );
    assert_eq!(
        decisions(&gw, "tools", "allow").await,
        3.0,
        "one allow recorded per stored use"
    );
}

/// An h2 client (prior knowledge, like a proxy-side agent runtime): one
/// stream per call, reset when its future is dropped.
fn h2_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// Polls until a pending approval for the task shows up; returns its id.
async fn pending(gw: &TestGateway, task: &str) -> String {
    for _ in 0..200 {
        let r = admin(
            gw,
            http::Method::GET,
            &format!("/v1/approvals?state=pending&task={task}"),
            None,
        )
        .await;
        if let Some(a) = r.json()["approvals"].as_array().and_then(|a| a.first()) {
            return a["id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pending approval appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_leaves_a_held_call_still_leaves_its_decision() {
    let up = FakeUpstream::start(|_| async {
        json_answer(200, &json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}))
    })
    .await;
    // Held open for up to a minute: far longer than this test waits.
    let gw = TestGateway::start(&config(
        "tools",
        &up.url(""),
        "needs_approval",
        "approval_wait = \"60s\"",
        "",
    ))
    .await;
    let task = create_task(&gw, AGENT).await;
    let bearer = format!("Bearer {}", token(AGENT, "tools", Some(&task)));
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "left"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}))
    .unwrap();
    let req = http::Request::post(gw.url("/tools"))
        .header("authorization", bearer)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "echo")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let client = h2_client();
    let call = tokio::spawn(async move { client.request(req).await });
    let approval = pending(&gw, &task).await;
    assert_eq!(call_decisions(&gw, "tools").await, 0.0, "still held");

    // The caller gives up: its stream is reset.
    call.abort();
    let mut recorded = 0.0;
    for _ in 0..100 {
        recorded = call_decisions(&gw, "tools").await;
        if recorded > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        recorded, 1.0,
        "the held call's decision is recorded once its caller left"
    );
    let pending_metric = "toolgate_decisions_total{decision=\"needs_approval\",phase=\"call\",reason=\"approval_pending\",route=\"tools\"}";
    assert_eq!(crate::common::metric(&gw, pending_metric).await, 1.0);
    // Counted when the decision's task lets go of the call, a moment later.
    let gone = "toolgate_requests_total{outcome=\"caller_gone\",route=\"tools\"}";
    assert_eq!(crate::common::metric_reaching(&gw, gone, 1.0).await, 1.0);

    // Approved afterwards, the approval's grant is still there for a retry:
    // the call that was never forwarded spent nothing.
    let r = admin(
        &gw,
        http::Method::POST,
        &format!("/v1/approvals/{approval}/approve"),
        Some(json!({"reason": "ok"})),
    )
    .await;
    assert_eq!(r.status, http::StatusCode::OK, "{}", r.text());
    let grant = r.json()["grant"]["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(grant_uses(&gw, &grant).await, 0);
    assert!(up.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_leaves_before_the_upstream_answers_is_counted_with_its_spent_use() {
    let up = FakeUpstream::start(|_| async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        json_answer(200, &json!({"jsonrpc": "2.0", "id": 7, "result": {}}))
    })
    .await;
    let gw = TestGateway::start(&config("tools", &up.url(""), "deny", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "search_*", Some(3)).await;
    let bearer = format!("Bearer {}", token(AGENT, "tools", Some(&task)));
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "search_issues", "arguments": {"q": "x"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}}))
    .unwrap();
    let req = http::Request::post(gw.url("/tools"))
        .header("authorization", bearer)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "search_issues")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .unwrap();
    let client = h2_client();
    let call = tokio::spawn(async move { client.request(req).await });
    for _ in 0..200 {
        if !up.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(up.seen().len(), 1, "the call reached the upstream");
    call.abort();

    let gone = "toolgate_requests_total{outcome=\"caller_gone\",route=\"tools\"}";
    assert_eq!(
        crate::common::metric_reaching(&gw, gone, 1.0).await,
        1.0,
        "the request whose caller left is counted"
    );
    assert_eq!(grant_uses(&gw, &grant).await, 1);
    assert_eq!(decisions(&gw, "tools", "allow").await, 1.0);
}
