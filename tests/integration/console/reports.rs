//! Denials and drift in the browser: refusals from the decision log by
//! tool, reason, subject and task label, the newest refusal linked to its
//! decision record, and a grant nobody used linked to its trace. A
//! screenshot of the page goes to `target/console-screenshots/`.

use serde_json::{Value, json};

use super::browser::Browser;
use super::*;
use crate::common::admin::token_table;
use crate::common::{TestGateway, post_mcp};
use crate::tasks::{AGENT, config, create_task, issue_grant, token};

async fn call(gw: &TestGateway, bearer: &str, id: u64, tool: &str) -> Value {
    let auth = format!("Bearer {bearer}");
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": tool, "arguments": {"q": id}}});
    let r = post_mcp(&gw.url("/tools"), &[("authorization", &auth)], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_and_unused_grants_link_to_their_records() {
    let up = crate::policy::tools_upstream().await;
    let log = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}{}[audit]\ndir = \"{}\"\n",
        token_table("watcher", "viewer", VIEWER_TOKEN),
        token_table("root", "admin", ADMIN_TOKEN),
        log.path().display()
    );
    let gw = TestGateway::start(&config("tools", &up.url("/mcp"), "deny", "", &extra)).await;
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "tools", Some(&task));
    for id in 1..=3 {
        let refused = call(&gw, &bearer, id, "delete_all").await;
        assert_eq!(refused["result"]["isError"], true, "{refused}");
    }
    let used = issue_grant(&gw, &task, "echo", Some(5)).await;
    let ok = call(&gw, &bearer, 4, "echo").await;
    assert_eq!(ok["result"]["content"][0]["text"], "ok", "{ok}");
    let unused = issue_grant(&gw, &task, "search", None).await;

    let b = Browser::start().await;
    b.sign_in(&gw.admin_url(""), VIEWER_TOKEN).await;
    b.click("a[href=\"/console/reports\"]").await;
    b.wait_text("#denial-summary", "3 of 4 calls refused").await;
    b.goto(&gw.admin_url("/console/reports?since=1h&label=env"))
        .await;
    let summary = b.wait_text("#denial-summary", "3 of 4 calls refused").await;
    assert!(summary.contains("since 1h"), "{summary}");
    let by_tool = b.text("#by-tool").await;
    assert!(by_tool.contains("delete_all"), "{by_tool}");
    assert!(!by_tool.contains("echo"), "the allowed tool: {by_tool}");
    assert!(b.text("#by-subject").await.contains(AGENT));
    assert!(b.text("#by-label").await.contains("test"), "env=test");
    assert!(b.text("#by-reason").await.contains("policy_deny"));
    let unused_table = b.text("#unused-grants").await;
    assert!(unused_table.contains(&unused), "{unused_table}");
    assert!(!unused_table.contains(&used), "used once: {unused_table}");
    let shot = b.screenshot("denials").await;
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "{}",
        shot.display()
    );

    // The newest refusal opens its decision record.
    b.click("#recent-denials tbody tr:first-child a").await;
    let record = b.wait_text("#record", "delete_all").await;
    let record: Value = serde_json::from_str(&record).expect("the record as JSON");
    assert_eq!(record["tool"], "delete_all", "{record}");
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(record["task"]["id"], task, "{record}");

    // An unused grant opens its trace: who made it, and no use.
    b.goto(&gw.admin_url("/console/reports?since=1h")).await;
    b.click(&format!(
        "#unused-grants a[href=\"/console/reports/grants/{unused}\"]"
    ))
    .await;
    let trace = b.wait_text("#record", &unused).await;
    let trace: Value = serde_json::from_str(&trace).expect("the trace as JSON");
    assert_eq!(trace["uses"], json!([]), "{trace}");
    assert!(trace["created"].is_object(), "{trace}");
    b.close().await;
}
