//! Approvals through the protocol: a parked call comes back to a client
//! that declared URL-mode elicitation as `input_required`, pointing at the
//! approval; the retry with toolgate's signed `requestState` goes through
//! once the human approved — once. Forged, replayed, other callers' and
//! other calls' states are refused; a client without the capability keeps
//! the `isError` answer.

use std::sync::{Arc, OnceLock};

use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::common::peers::PyServer;
use crate::common::upstream::{self, FakeUpstream};
use crate::common::{Reply, post_mcp, send};
use crate::tasks::{AGENT, OPERATOR_TOKEN, OTHER_AGENT, config, create_task, token};

/// The approval page: opening it stands for the human approving there.
pub(super) async fn approval_page(admin: Arc<OnceLock<String>>) -> FakeUpstream {
    FakeUpstream::start(move |seen| {
        let admin = Arc::clone(&admin);
        async move {
            let id = seen.uri.path().trim_start_matches("/approve/").to_owned();
            let url = format!(
                "{}/v1/approvals/{id}/approve",
                admin.get().expect("admin url")
            );
            let auth = format!("Bearer {OPERATOR_TOKEN}");
            let r = send(
                Method::POST,
                &url,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                serde_json::to_vec(&json!({"reason": "looked fine"})).unwrap(),
            )
            .await;
            upstream::json(r.status.as_u16(), &json!({"approved": id}))
        }
    })
    .await
}

pub(super) async fn call(
    gw: &TestGateway,
    bearer: &str,
    task: Option<&str>,
    text: &str,
    extra: Value,
) -> Reply {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    if let Some(task) = task {
        headers.push(("x-toolgate-task", task));
    }
    let mut params = json!({"name": "echo", "arguments": {"text": text}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {"form": {}, "url": {}}}}});
    if let (Some(p), Value::Object(extra)) = (params.as_object_mut(), extra) {
        p.extend(extra);
    }
    let body = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": params});
    post_mcp(&gw.url("/tools"), &headers, &body).await
}

pub(super) fn error_text(reply: &Reply) -> String {
    let v = reply.json();
    assert_eq!(v["error"]["code"], -32602, "{v}");
    v["error"]["message"].as_str().unwrap_or("").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_call_asks_the_human_through_the_client_and_goes_through_once() {
    let py = PyServer::start(&[]).await;
    let admin_url = Arc::new(OnceLock::new());
    let page = approval_page(Arc::clone(&admin_url)).await;
    let approvals = format!(
        "[approvals]\nelicitation_url = \"{}/approve/{{approval}}\"\n",
        page.url("")
    );
    let gw = TestGateway::start(&config(
        "tools",
        &py.url(),
        "needs_approval",
        "",
        &approvals,
    ))
    .await;
    admin_url.set(gw.admin_url("")).unwrap();
    let task = create_task(&gw, AGENT).await;
    let mine = token(AGENT, "tools", Some(&task));

    // The real Python SDK client: it opens the link, the human approves
    // there, the SDK retries with the state, the call goes through.
    let auth = format!("Authorization: Bearer {mine}");
    let out = py_client(&[
        "--url",
        &gw.url("/tools"),
        "--era",
        "modern",
        "--header",
        &auth,
        "--open-urls",
        "call",
        "--tool",
        "echo",
        "--args",
        r#"{"text":"hi"}"#,
    ])
    .await
    .unwrap_or_else(|e| panic!("python client: {e}"));
    assert_eq!(out["isError"], false, "{out}");
    assert_eq!(out["text"], "hi", "{out}");
    let opened = &out["opened"][0];
    assert!(
        opened["url"]
            .as_str()
            .unwrap_or("")
            .starts_with(&page.url("/approve/appr_")),
        "{out}"
    );
    assert_eq!(opened["status"], 200, "the approval was given: {out}");

    // Raw: the interim answer, then what is refused.
    let first = call(&gw, &mine, None, "b", json!({})).await;
    let result = &first.json()["result"];
    assert_eq!(result["resultType"], "input_required", "{}", first.text());
    let ask = &result["inputRequests"]["toolgate_approval"];
    assert_eq!(ask["method"], "elicitation/create");
    assert_eq!(ask["params"]["mode"], "url");
    let url = ask["params"]["url"].as_str().unwrap().to_owned();
    let state = result["requestState"].as_str().unwrap().to_owned();
    let retry = |state: &str| {
        json!({"requestState": state,
        "inputResponses": {"toolgate_approval": {"action": "accept"}}})
    };

    // A forged state, and another caller's use of a good one.
    // The tag's last base64 symbol carries two padding bits that must be
    // zero; 'A' and 'E' both have them zero, so the forgery still decodes
    // and is refused for its signature, not its spelling.
    let mut forged = state.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'E' } else { 'A' });
    let r = call(&gw, &mine, None, "b", retry(&forged)).await;
    assert!(error_text(&r).contains("not signed"), "{}", r.text());
    let other = token(OTHER_AGENT, "tools", None);
    let r = call(&gw, &other, None, "b", retry(&state)).await;
    assert!(error_text(&r).contains("another caller"), "{}", r.text());
    let r = call(&gw, &mine, None, "changed", retry(&state)).await;
    assert!(error_text(&r).contains("another call"), "{}", r.text());

    // Approved: the retry goes through, once.
    let page_answer = send(Method::GET, &url, &[], bytes::Bytes::new()).await;
    assert_eq!(page_answer.status, 200, "{}", page_answer.text());
    let r = call(&gw, &mine, None, "b", retry(&state)).await;
    assert_eq!(
        r.json()["result"]["content"][0]["text"],
        "b",
        "{}",
        r.text()
    );
    let r = call(&gw, &mine, None, "b", retry(&state)).await;
    assert!(error_text(&r).contains("already used"), "{}", r.text());

    // A client that cannot open a URL keeps the isError answer.
    let auth = format!("Bearer {mine}");
    let headers = [
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    let plain = json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"text": "plain"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
    let r = post_mcp(&gw.url("/tools"), &headers, &plain).await;
    assert_eq!(r.json()["result"]["isError"], true, "{}", r.text());
    assert!(r.text().contains("needs a human approval"), "{}", r.text());
}
