//! `subscriptions/listen` and per-request streams: events pass through as
//! they come, and a notification about a tool the caller may not see, or
//! about an MCP task it did not start, never reaches it.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::*;
use crate::common::upstream::{self, FakeUpstream, with_type};
use crate::common::{MCP_HEADERS, open};

const RELATED_TASK: &str = "io.modelcontextprotocol/related-task";
const SUBSCRIPTION: &str = "io.modelcontextprotocol/subscriptionId";

pub(super) fn sse(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

fn note(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "method": method, "params": params})
}

/// What a listen stream sends after its acknowledgment: one message of
/// each kind, some the caller may see, some not.
pub(super) fn after_ack(id: &Value) -> Vec<Value> {
    let sub = json!({ SUBSCRIPTION: id });
    vec![
        note("notifications/tools/list_changed", json!({"_meta": sub})),
        note(
            "notifications/tools/updated",
            json!({"_meta": sub, "name": "echo"}),
        ),
        note(
            "notifications/tasks",
            json!({"_meta": sub, "taskId": "someone-elses", "status": "working",
                   "createdAt": "2026-12-05T00:00:00Z", "lastUpdatedAt": "2026-12-05T00:00:00Z", "ttlMs": null}),
        ),
        note(
            "notifications/resources/updated",
            json!({"_meta": {SUBSCRIPTION: id, RELATED_TASK: {"taskId": "someone-elses"}}, "uri": "file:///b"}),
        ),
        note(
            "notifications/resources/updated",
            json!({"_meta": sub, "uri": "file:///a"}),
        ),
        json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete", "_meta": sub}}),
    ]
}

pub(super) fn ack(id: &Value) -> Value {
    note(
        "notifications/subscriptions/acknowledged",
        json!({"_meta": { SUBSCRIPTION: id }, "notifications": {"toolsListChanged": true, "resourceSubscriptions": ["file:///a", "file:///b"]}}),
    )
}

fn modern_post(method: &str) -> Vec<(&str, &str)> {
    let mut headers = MCP_HEADERS.to_vec();
    headers.extend([
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", method),
    ]);
    headers
}

/// Reads SSE events off `body` until `n` are complete (or it ends).
async fn events(body: &mut Incoming, n: usize, buf: &mut String) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let data: String = event
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            if !data.is_empty() {
                out.push(serde_json::from_str(&data).expect("event data is JSON"));
            }
        }
        if out.len() >= n {
            return out;
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("an event within 10s");
        match frame {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.push_str(&String::from_utf8_lossy(&data));
                }
            }
            Some(Err(e)) => panic!("stream failed: {e}"),
            None => return out,
        }
    }
}

fn methods(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|m| match m["method"].as_str() {
            Some(method) => format!(
                "{method} {}",
                m["params"]["name"]
                    .as_str()
                    .or(m["params"]["uri"].as_str())
                    .unwrap_or("")
            )
            .trim()
            .to_owned(),
            None => "result".to_owned(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listen_stream_is_streamed_and_filtered_per_caller() {
    let (up, mut streams) = upstream::sse_upstream().await;
    let gw = gateway(&up.url("/mcp")).await;
    let id = json!("listen-1");
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": {
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"},
        "notifications": {"toolsListChanged": true, "resourceSubscriptions": ["file:///a", "file:///b"]}}});
    for (route, echo_shown) in [("/mcp", true), ("/locked", false)] {
        let resp = open(
            Method::POST,
            &gw.url(route),
            &modern_post("subscriptions/listen"),
            serde_json::to_vec(&body).unwrap(),
        )
        .await;
        assert_eq!(resp.status(), 200, "{route}");
        let stream = streams
            .recv()
            .await
            .expect("the listen reached the upstream");
        let mut body = resp.into_body();
        let mut buf = String::new();
        // The acknowledgment arrives while the upstream still holds the stream open.
        stream.send(Ok(sse(&ack(&id)))).await.unwrap();
        let first = events(&mut body, 1, &mut buf).await;
        assert_eq!(
            methods(&first),
            ["notifications/subscriptions/acknowledged"],
            "{route}"
        );
        for message in after_ack(&id) {
            stream.send(Ok(sse(&message))).await.unwrap();
        }
        drop(stream);
        let rest = events(&mut body, usize::MAX, &mut buf).await;
        let mut want = vec!["notifications/tools/list_changed"];
        if echo_shown {
            want.push("notifications/tools/updated echo");
        }
        want.extend(["notifications/resources/updated file:///a", "result"]);
        assert_eq!(methods(&rest), want, "{route}: {rest:?}");
    }
}

/// The real Python SDK client's `listen()` through the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_listens_through_the_gateway() {
    let up = FakeUpstream::start(|seen| async move {
        let request: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        if request["method"] != "subscriptions/listen" {
            return upstream::json(404, &json!({"error": "only listen here"}));
        }
        let id = &request["id"];
        let mut text = String::from_utf8_lossy(&sse(&ack(id))).into_owned();
        for message in after_ack(id) {
            text.push_str(&String::from_utf8_lossy(&sse(&message)));
        }
        with_type(200, "text/event-stream", text)
    })
    .await;
    let listen = [
        "--resource",
        "file:///a",
        "--resource",
        "file:///b",
        "listen",
    ];
    let direct = modern(&up.url("/mcp"), "modern", &listen).await;
    let gw = gateway(&up.url("/mcp")).await;
    let through = modern(&gw.url("/mcp"), "modern", &listen).await;
    let want =
        json!([{"type": "ToolsListChanged"}, {"type": "ResourceUpdated", "uri": "file:///a"}]);
    assert_eq!(through["events"], want, "{through}");
    // Without the gateway, the event about another caller's task arrives too.
    assert_eq!(
        direct["events"],
        json!([{"type": "ToolsListChanged"}, {"type": "ResourceUpdated", "uri": "file:///b"}, {"type": "ResourceUpdated", "uri": "file:///a"}]),
        "{direct}"
    );
}

/// Progress on a `tools/call` stream reaches the real Python SDK client as
/// it comes, except progress about an MCP task another caller started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_progress_about_another_callers_task_is_dropped() {
    let up = FakeUpstream::start(|seen| async move {
        let request: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        if request["method"] == "tools/list" {
            // The SDK lists before its first call (for output schemas).
            return upstream::json(
                200,
                &json!({"jsonrpc": "2.0", "id": request["id"], "result": {
                "resultType": "complete", "cacheScope": "private", "ttlMs": 0,
                "tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}}),
            );
        }
        let token = &request["params"]["_meta"]["progressToken"];
        let mut text = String::new();
        for (progress, meta) in [
            (1, json!({ RELATED_TASK: {"taskId": "someone-elses"} })),
            (2, json!({})),
        ] {
            let p = note(
                "notifications/progress",
                json!({"progressToken": token, "progress": progress, "total": 2, "_meta": meta}),
            );
            text.push_str(&String::from_utf8_lossy(&sse(&p)));
        }
        let result = json!({"jsonrpc": "2.0", "id": request["id"], "result": {
            "resultType": "complete", "content": [{"type": "text", "text": "done"}]}});
        text.push_str(&String::from_utf8_lossy(&sse(&result)));
        with_type(200, "text/event-stream", text)
    })
    .await;
    let call = ["call", "--tool", "echo", "--args", r#"{"text":"x"}"#];
    let direct = modern(&up.url("/mcp"), "modern", &call).await;
    assert_eq!(direct["progress"], json!([1, 2]), "{direct}");
    let gw = gateway(&up.url("/mcp")).await;
    let through = modern(&gw.url("/mcp"), "modern", &call).await;
    assert_eq!(through["text"], "done", "{through}");
    assert_eq!(through["progress"], json!([2]), "{through}");
}
