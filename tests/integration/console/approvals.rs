//! The approvals inbox: a call the real MCP client makes is parked and held
//! open; it shows up in the open inbox without a reload; approving it in
//! the browser lets the held call complete; denying another one reaches the
//! agent as `approval_denied`.

use http::Method;
use serde_json::{Value, json};

use super::browser::Browser;
use super::*;
use crate::common::TestGateway;
use crate::common::peers::{PyServer, py_client};
use crate::tasks::{AGENT, admin, create_task, token};

fn held_call(gw: &TestGateway, bearer: &str, text: &str) -> tokio::task::JoinHandle<Value> {
    let url = gw.url("/tools");
    let auth = format!("Authorization: Bearer {bearer}");
    let args = json!({ "text": text }).to_string();
    tokio::spawn(async move {
        py_client(&[
            "--url", &url, "--header", &auth, "--era", "modern", "call", "--tool", "echo",
            "--args", &args,
        ])
        .await
        .unwrap_or_else(|e| panic!("client failed: {e}"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_is_approved_live_and_another_denied() {
    let py = PyServer::start(&[]).await;
    let gw = TestGateway::start(&console_config(
        &py.url(),
        "needs_approval",
        "approval_wait = \"60s\"",
    ))
    .await;
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "tools", Some(&task));
    let b = Browser::start().await;
    b.sign_in(&gw.admin_url(""), OPERATOR).await;
    b.wait_for("#inbox-empty").await;
    // The script connected the live stream (the CSP let it run).
    b.wait_for("#live[data-state=\"on\"]").await;
    // A mark on this very page: it must survive, proving no reload.
    b.run("window.__sameInbox = true; done(true);").await;

    let call = held_call(&gw, &bearer, "held by the console");
    let card = b.wait_for("article.approval[data-tool=\"echo\"]").await;
    let id = card.attr("id").await.unwrap().expect("an id");
    assert_eq!(
        b.run("done(window.__sameInbox === true);").await,
        true,
        "updated in place"
    );
    let text = card.text().await.unwrap();
    for needle in [
        AGENT,
        task.as_str(),
        "triage the inbox",
        "held by the console",
        "tools",
    ] {
        assert!(text.contains(needle), "the card lacks {needle:?}:\n{text}");
    }
    // Its wait counts up while the operator looks.
    let waited = b.text(&format!("#{id} [data-waited]")).await;
    assert!(waited.ends_with('s'), "{waited}");
    let shot = b.screenshot("inbox").await;
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "{}",
        shot.display()
    );
    assert!(!call.is_finished(), "the client is still waiting");

    b.fill(
        &format!("#{id} form.approve input[name=reason]"),
        "looks right",
    )
    .await;
    b.click(&format!("#{id} .approve-btn")).await;
    b.wait_text("#flash", &format!("Approved {id}")).await;
    let out = call.await.unwrap();
    assert_eq!(out["isError"], false, "{out}");
    assert_eq!(out["text"], "held by the console");
    b.wait_for("#inbox-empty").await;

    // Another call; denied with a reason the agent reads.
    let call = held_call(&gw, &bearer, "second");
    let card = b.wait_for("article.approval[data-tool=\"echo\"]").await;
    let second = card.attr("id").await.unwrap().expect("an id");
    assert_ne!(second, id);
    b.fill(
        &format!("#{second} form.deny input[name=reason]"),
        "not today",
    )
    .await;
    b.click(&format!("#{second} .deny-btn")).await;
    b.wait_text("#flash", &format!("Denied {second}")).await;
    let out = call.await.unwrap();
    assert_eq!(out["isError"], true, "{out}");
    let refusal = out["text"].as_str().unwrap();
    assert!(
        refusal.contains("approval_denied") && refusal.contains("not today"),
        "{refusal}"
    );

    // Both answers are on record as the signed-in token's name.
    let all = admin(
        &gw,
        Method::GET,
        &format!("/v1/approvals?task={task}"),
        None,
    )
    .await
    .json();
    let by: Vec<(&str, &str)> = all["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["state"].as_str().unwrap(),
                a["decided"]["by"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        by.contains(&("approved", "ops")) && by.contains(&("denied", "ops")),
        "{by:?}"
    );
    b.close().await;
}
