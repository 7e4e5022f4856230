//! Tasks and grants in the browser: a grant issued on the task page lets
//! the real client's call through, revoking it shuts it again, revoking by
//! agent ends the rest, and ending the task shows on its page.

use http::Method;
use serde_json::{Value, json};

use super::browser::Browser;
use super::*;
use crate::common::TestGateway;
use crate::common::peers::{PyServer, py_client};
use crate::tasks::{AGENT, admin, create_task, issue_grant, token};

async fn echo(gw: &TestGateway, bearer: &str, text: &str) -> Value {
    let auth = format!("Authorization: Bearer {bearer}");
    let args = json!({ "text": text }).to_string();
    py_client(&[
        "--url",
        &gw.url("/tools"),
        "--header",
        &auth,
        "--era",
        "modern",
        "call",
        "--tool",
        "echo",
        "--args",
        &args,
    ])
    .await
    .unwrap_or_else(|e| panic!("client failed: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_is_issued_and_revoked_on_the_task_page() {
    let py = PyServer::start(&[]).await;
    let gw = TestGateway::start(&console_config(&py.url(), "deny", "")).await;
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "tools", Some(&task));
    let out = echo(&gw, &bearer, "before").await;
    assert_eq!(out["isError"], true, "no grant yet: {out}");

    let b = Browser::start().await;
    b.sign_in(&gw.admin_url(""), OPERATOR).await;
    b.click("a[href=\"/console/tasks\"]").await;
    b.click(&format!("#tasks a[href=\"/console/tasks/{task}\"]"))
        .await;
    b.wait_text("#task-id", &task).await;

    b.fill("#issue-grant input[name=tool]", "echo").await;
    b.fill("#issue-grant input[name=ttl]", "5m").await;
    b.fill("#issue-grant input[name=max_uses]", "3").await;
    b.fill("#issue-grant input[name=reason]", "triage needs echo")
        .await;
    b.click("#issue-grant button").await;
    let flash = b.wait_text("#flash", "issued").await;
    let grant = flash
        .split_whitespace()
        .find(|w| w.starts_with("grant_"))
        .expect("the grant's id")
        .to_owned();
    let row = b.text(&format!("#{grant}")).await;
    assert!(
        row.contains("live") && row.contains("0 of 3") && row.contains("ops"),
        "{row}"
    );

    let out = echo(&gw, &bearer, "with the grant").await;
    assert_eq!(out["text"], "with the grant", "{out}");
    b.goto(&gw.admin_url(&format!("/console/tasks/{task}")))
        .await;
    let row = b.text(&format!("#{grant}")).await;
    assert!(row.contains("1 of 3"), "{row}");
    assert!(b.text("#calls-total").await.parse::<u64>().unwrap() >= 2);
    b.screenshot("task").await;

    b.fill(&format!("#{grant} input[name=reason]"), "done with it")
        .await;
    b.click(&format!("#{grant} button")).await;
    b.wait_text("#flash", &format!("Grant {grant} revoked"))
        .await;
    b.wait_text(&format!("#{grant}"), "revoked").await;
    let out = echo(&gw, &bearer, "after").await;
    assert_eq!(out["isError"], true, "revoked: {out}");

    // Every grant of the agent, across its tasks, from the tasks page.
    // A second task for the agent, created on the tasks page.
    b.click("a[href=\"/console/tasks\"]").await;
    b.fill("#new-task input[name=agent]", AGENT).await;
    b.fill("#new-task input[name=purpose]", "second errand")
        .await;
    b.fill("#new-task input[name=labels]", r#"{"ticket": "OPS-7"}"#)
        .await;
    b.click("#new-task button").await;
    let flash = b.wait_text("#flash", "created").await;
    let other_task = flash
        .split_whitespace()
        .find(|w| w.starts_with("task_"))
        .expect("the task's id")
        .to_owned();
    b.wait_text("#task-id", &other_task).await;
    let shown = admin(&gw, Method::GET, &format!("/v1/tasks/{other_task}"), None)
        .await
        .json();
    assert_eq!(shown["task"]["created_by"], "ops", "{shown}");
    assert_eq!(shown["task"]["labels"]["ticket"], "OPS-7", "{shown}");
    let g1 = issue_grant(&gw, &task, "ech?", None).await;
    let g2 = issue_grant(&gw, &other_task, "*", None).await;
    b.goto(&gw.admin_url(&format!("/console/tasks?agent={AGENT}")))
        .await;
    b.fill("#revoke-agent input[name=reason]", "agent retired")
        .await;
    b.click("#revoke-agent button").await;
    b.wait_text("#flash", "Revoked 2 grant(s) of the agent")
        .await;
    for g in [g1, g2] {
        let shown = admin(&gw, Method::GET, &format!("/v1/grants/{g}"), None)
            .await
            .json();
        assert_eq!(shown["grant"]["state"], "revoked", "{shown}");
        assert_eq!(shown["grant"]["revoked"]["by"], "ops");
    }

    // Ending the task.
    b.goto(&gw.admin_url(&format!("/console/tasks/{task}")))
        .await;
    b.fill("#complete-task input[name=reason]", "inbox triaged")
        .await;
    b.click("#complete-task button").await;
    b.wait_text("#task-state", "completed").await;
    assert!(
        b.find_all("#issue-grant").await.is_empty(),
        "no grants in an ended task"
    );
    b.close().await;
}
