//! The 2026-07-28 features again, with the real TypeScript SDK v2 client
//! (`@modelcontextprotocol/client` 2.4.0, pinned to 2026-07-28) in front:
//! discover and lists filtered per caller (a tool list inside a discover
//! result: `lists.rs`), allowed and refused calls, mirrored `Mcp-Param-*`
//! headers, `subscriptions/listen`, `input_required` rounds, approvals
//! through the protocol and trace context in `_meta`.
//!
//! Not here, because that client lacks them: MCP tasks (it rejects a
//! `resultType: "task"` answer as unsupported: `tasks.rs` stays raw), and
//! an OpenTelemetry hook (the trace context goes into `_meta.traceparent`
//! by hand, the typed key the SDK documents for it).

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};
use toolgate::audit::line::Body;
use toolgate::forward::body::MAX_PRIVATE_TTL_MS;

use super::approvals::{approval_page, call, error_text};
use super::streams::{ack, after_ack, sse};
use super::*;
use crate::audit::records;
use crate::common::peers::{PyServer, ts_modern_client};
use crate::common::upstream::{self, FakeUpstream, with_type};
use crate::tasks::{AGENT, admin, config, create_task, issue_grant, token};

/// Runs the TypeScript SDK v2 client on `url` as `auth` in `mode`.
async fn ts(url: &str, auth: &str, mode: &[&str]) -> Value {
    let mut args = vec!["--url", url, "--header", auth];
    args.extend_from_slice(mode);
    ts_modern_client(&args)
        .await
        .unwrap_or_else(|e| panic!("typescript v2 client ({mode:?}) on {url}: {e}"))
}

/// The requests the client sent for JSON-RPC method `method`.
fn sent<'a>(out: &'a Value, method: &str) -> Vec<&'a Value> {
    out["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("no requests: {out}"))
        .iter()
        .filter(|r| r["rpc_method"] == method)
        .collect()
}

/// The client spoke 2026-07-28 on every request: `server/discover` first,
/// no `initialize`, no session, the headers and `_meta` envelope each time.
fn assert_modern_wire(out: &Value) {
    assert_eq!(out["era"], "modern", "{out}");
    assert_eq!(out["protocol_version"], "2026-07-28", "{out}");
    let requests = out["requests"].as_array().unwrap();
    assert_eq!(requests[0]["rpc_method"], "server/discover", "{out}");
    for r in requests {
        assert_ne!(r["rpc_method"], "initialize", "{out}");
        assert_eq!(r["headers"]["mcp-protocol-version"], "2026-07-28", "{r}");
        assert_eq!(r["headers"]["mcp-method"], r["rpc_method"], "{r}");
        assert_eq!(r["headers"]["mcp-session-id"], Value::Null, "{r}");
        assert_eq!(
            r["meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28",
            "{r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_discovers_and_lists_what_each_caller_may_see() {
    let server = PyServer::start(&["--public-cache"]).await;
    let gw = gateway(&server.url()).await;
    for (route, tools) in [("/mcp", 4), ("/locked", 0)] {
        let url = gw.url(route);
        let list = ts(&url, CALLER, &["list"]).await;
        assert_modern_wire(&list);
        assert_eq!(list["tools"].as_array().unwrap().len(), tools, "{list}");
        assert_eq!(list["cache_scope"], "private", "{route}: {list}");
        assert_eq!(list["ttl_ms"], MAX_PRIVATE_TTL_MS, "{route}: {list}");

        let discover = ts(&url, CALLER, &["discover"]).await;
        assert_modern_wire(&discover);
        for result in [&discover["at_connect"], &discover["result"]] {
            assert_eq!(result["supportedVersions"], json!(["2026-07-28"]));
            assert_eq!(result["cacheScope"], "private", "{route}: {discover}");
            assert_eq!(result["ttlMs"], MAX_PRIVATE_TTL_MS, "{route}: {discover}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_sees_refusals_and_mirrored_headers_are_checked() {
    let server = PyServer::start(&["--region-tool"]).await;
    let gw = gateway(&server.url()).await;
    let echo = ["call", "--tool", "echo", "--args", r#"{"text":"hi"}"#];

    let allowed = ts(&gw.url("/mcp"), CALLER, &echo).await;
    assert_modern_wire(&allowed);
    assert_eq!(allowed["isError"], false, "{allowed}");
    assert_eq!(allowed["text"], "hi", "{allowed}");

    // Refused: a tool error with the reason, answered to the request's id.
    let denied = ts(&gw.url("/locked"), CALLER, &echo).await;
    assert_eq!(denied["isError"], true, "{denied}");
    let text = denied["text"].as_str().unwrap_or("");
    assert!(
        text.contains("no_policy") && text.contains("echo"),
        "{denied}"
    );
    let asked = sent(&denied, "tools/call");
    assert_eq!(asked.len(), 1, "{denied}");
    assert_eq!(asked[0]["headers"]["mcp-name"], "echo", "{denied}");
    assert_eq!(asked[0]["answer_id"], asked[0]["id"], "{denied}");

    // `region` is declared `x-mcp-header: Region`: the SDK mirrors it, the
    // gateway checks the header against the body and forwards both.
    let deploy = [
        "call",
        "--tool",
        "deploy",
        "--args",
        r#"{"region":"eu","version":"1.2"}"#,
    ];
    let out = ts(&gw.url("/mcp"), CALLER, &deploy).await;
    assert_eq!(out["text"], "1.2 deployed to eu", "{out}");
    assert_eq!(
        sent(&out, "tools/call")[0]["headers"]["mcp-param-region"],
        "eu"
    );
    let region_headers = || -> Vec<Value> {
        server
            .requests()
            .iter()
            .filter(|r| r["headers"]["mcp-name"] == "deploy")
            .map(|r| r["headers"]["mcp-param-region"].clone())
            .collect()
    };
    assert_eq!(region_headers(), [json!("eu")], "the header went on");

    // A mirrored header altered on the way — to a value no argument holds,
    // or to another argument's (the gateway learnt from the list which
    // argument it mirrors): -32020 from the gateway, never forwarded. The
    // SDK refetches the tool list and retries once, as the spec asks; the
    // retry is altered too and refused again.
    for altered in ["Mcp-Param-Region: us", "Mcp-Param-Region: 1.2"] {
        let mut tampered = vec!["--tamper", altered];
        tampered.extend_from_slice(&deploy);
        let out = ts(&gw.url("/mcp"), CALLER, &tampered).await;
        assert_eq!(out["error"]["code"], -32020, "{out}");
        let message = out["error"]["message"].as_str().unwrap_or("");
        assert!(message.starts_with("mcp-param-region header"), "{out}");
        let calls = sent(&out, "tools/call");
        assert_eq!(calls.len(), 2, "{out}");
        for c in calls {
            assert_eq!(c["status"], 400, "{c}");
            assert_eq!(c["answer_id"], c["id"], "{c}");
        }
    }
    assert_eq!(
        region_headers(),
        [json!("eu")],
        "nothing disagreeing went on"
    );
}

/// The TypeScript SDK's `listen()` through the gateway: a notification
/// about another caller's MCP task never reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_listens_through_the_gateway() {
    let up = FakeUpstream::start(|seen| async move {
        let request: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let id = &request["id"];
        match request["method"].as_str() {
            Some("server/discover") => upstream::json(
                200,
                &json!({"jsonrpc": "2.0", "id": id, "result": {
                    "resultType": "complete", "supportedVersions": ["2026-07-28"],
                    "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true}},
                    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "listen-peer", "version": "1"}}}}),
            ),
            Some("subscriptions/listen") => {
                let mut text = String::from_utf8_lossy(&sse(&ack(id))).into_owned();
                for message in after_ack(id) {
                    text.push_str(&String::from_utf8_lossy(&sse(&message)));
                }
                with_type(200, "text/event-stream", text)
            }
            _ => upstream::json(404, &json!({"error": "only discover and listen here"})),
        }
    })
    .await;
    let listen = [
        "--resource",
        "file:///a",
        "--resource",
        "file:///b",
        "listen",
    ];
    let direct = ts(&up.url("/mcp"), CALLER, &listen).await;
    let gw = gateway(&up.url("/mcp")).await;
    let through = ts(&gw.url("/mcp"), CALLER, &listen).await;
    assert_modern_wire(&through);
    assert_eq!(through["closed"], "graceful", "{through}");
    let updated = |uri| json!({"method": "notifications/resources/updated", "uri": uri});
    let mut want = vec![
        json!({"method": "notifications/tools/list_changed"}),
        json!({"method": "notifications/tools/updated", "name": "echo"}),
        updated("file:///a"),
    ];
    assert_eq!(through["events"], json!(want), "{through}");
    // Without the gateway, the events about another caller's task arrive too.
    want.insert(2, json!({"method": "notifications/tasks"}));
    want.insert(3, updated("file:///b"));
    assert_eq!(direct["events"], json!(want), "{direct}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_retries_an_input_required_call_as_a_new_call() {
    let py = PyServer::start(&["--confirm-tool"]).await;
    let gw = TestGateway::start(&config("tools", &py.url(), "deny", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "confirm", Some(2)).await;
    let auth = format!(
        "Authorization: Bearer {}",
        token(AGENT, "tools", Some(&task))
    );
    let confirm = [
        "--elicit",
        r#"{"name":"ops"}"#,
        "call",
        "--tool",
        "confirm",
        "--args",
        r#"{"action":"deploy"}"#,
    ];
    let out = ts(&gw.url("/tools"), &auth, &confirm).await;
    assert_modern_wire(&out);
    assert_eq!(out["text"], "deploy approved by ops", "{out}");
    let calls = sent(&out, "tools/call");
    assert_eq!(calls.len(), 2, "the SDK answered and retried: {out}");
    assert_eq!(calls[0]["request_state"], Value::Null, "{out}");
    assert!(calls[1]["request_state"].is_string(), "{out}");
    let g = admin(&gw, http::Method::GET, &format!("/v1/grants/{grant}"), None)
        .await
        .json();
    assert_eq!(g["grant"]["uses"], 2, "both rounds were decided: {g}");

    // No use left: refused at the first round.
    let out = ts(&gw.url("/tools"), &auth, &confirm).await;
    assert_eq!(out["isError"], true, "{out}");
    assert_eq!(sent(&out, "tools/call").len(), 1, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_sdk_brings_a_parked_call_to_the_human_and_through_once() {
    let py = PyServer::start(&[]).await;
    let admin_url = Arc::new(OnceLock::new());
    let page = approval_page(Arc::clone(&admin_url)).await;
    let approvals = format!(
        "[approvals]\nelicitation_url = \"{}/approve/{{approval}}\"\n",
        page.url("")
    );
    let cfg = config("tools", &py.url(), "needs_approval", "", &approvals);
    let gw = TestGateway::start(&cfg).await;
    admin_url.set(gw.admin_url("")).unwrap();
    let task = create_task(&gw, AGENT).await;
    let mine = token(AGENT, "tools", Some(&task));
    let auth = format!("Authorization: Bearer {mine}");
    let echo = ["call", "--tool", "echo", "--args", r#"{"text":"hi"}"#];

    // Without URL-mode elicitation declared: the isError answer.
    let out = ts(&gw.url("/tools"), &auth, &echo).await;
    assert_eq!(out["isError"], true, "{out}");
    assert!(
        out["text"]
            .as_str()
            .unwrap_or("")
            .contains("needs a human approval"),
        "{out}"
    );

    // Declared: the SDK opens the link (the human approves there) and
    // retries with toolgate's state; the call goes through.
    let mut args = vec!["--open-urls"];
    args.extend_from_slice(&echo);
    let out = ts(&gw.url("/tools"), &auth, &args).await;
    assert_eq!(out["isError"], false, "{out}");
    assert_eq!(out["text"], "hi", "{out}");
    let opened = &out["opened"][0];
    let link = opened["url"].as_str().unwrap_or("");
    assert!(link.starts_with(&page.url("/approve/appr_")), "{out}");
    assert_eq!(opened["status"], 200, "the approval was given: {out}");
    let calls = sent(&out, "tools/call");
    assert_eq!(calls.len(), 2, "{out}");
    let state = calls[1]["request_state"].as_str().unwrap_or("");
    assert!(state.starts_with("tgapproval.v1."), "{out}");

    // The state the SDK echoed is spent: replayed, it is refused.
    let replay = json!({"requestState": state,
        "inputResponses": {"toolgate_approval": {"action": "accept"}}});
    let r = call(&gw, &mine, None, "hi", replay).await;
    assert!(error_text(&r).contains("already used"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_log_follows_the_trace_the_typescript_sdk_sends() {
    const AGENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let server = PyServer::start(&[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let gw = TestGateway::start(&format!(
        "[audit]\ndir = \"{dir}\"\n\
         [[routes]]\nname = \"open\"\npath = \"/mcp\"\nupstream = \"{up}\"\ndefault_decision = \"allow\"\n",
        dir = dir.display(),
        up = server.url(),
    ))
    .await;
    let call = [
        "--trace-id",
        AGENT_TRACE,
        "call",
        "--tool",
        "echo",
        "--args",
        r#"{"text":"t"}"#,
    ];
    let out = ts(&gw.url("/mcp"), CALLER, &call).await;
    assert_eq!(out["text"], "t", "{out}");
    let in_meta = &sent(&out, "tools/call")[0]["meta"]["traceparent"];
    assert!(
        in_meta.as_str().unwrap_or("").contains(AGENT_TRACE),
        "{out}"
    );

    let mut traces: Vec<String> = Vec::new();
    for _ in 0..100 {
        traces = records(&dir, 1)
            .await
            .iter()
            .filter_map(|r| match &r.body {
                Body::Decision(d) if d.tool == "echo" => d.trace_id.as_deref().map(str::to_owned),
                _ => None,
            })
            .collect();
        if !traces.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        traces,
        [AGENT_TRACE],
        "the decision is in the agent's trace"
    );
    let forwarded: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r["headers"]["mcp-method"] == "tools/call")
        .filter_map(|r| r["headers"]["traceparent"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(forwarded.len(), 1, "{forwarded:?}");
    assert!(forwarded[0].contains(AGENT_TRACE), "{forwarded:?}");
}
