//! The live counters reach policy: `task-budget` caps a task's calls per
//! tool from the counters the gateway keeps, and `recent_calls` feed Rego.

use serde_json::json;

use super::*;
use crate::common::upstream::{FakeUpstream, json as json_answer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_budget_counts_the_tasks_calls() {
    let up = FakeUpstream::start(|_| async {
        json_answer(200, &json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}))
    })
    .await;
    let budget = build(&["task-budget"]);
    // jit-grants allows under a grant; task-budget caps deletes at 1 per task
    // and every tool at 3.
    let extra = format!(
        "\n[[policies]]\nname = \"budget\"\nmodule = \"{}\"\nvectors = \"{}\"\nroutes = [\"tools\"]\n\
         [policies.config]\nrequire_task = true\nper_tool = {{ \"delete_*\" = 1, \"*\" = 3 }}\n",
        budget[0].display(),
        vectors("task-budget").display()
    );
    let gw = TestGateway::start(&config("tools", &up.url(""), "deny", "", &extra)).await;
    let task = create_task(&gw, AGENT).await;
    issue_grant(&gw, &task, "*", None).await;
    let me = token(AGENT, "tools", Some(&task));

    let r = raw_call(&gw, "tools", &me, None, "delete_branch", json!({"b": "x"})).await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    let r = raw_call(&gw, "tools", &me, None, "delete_branch", json!({"b": "y"})).await;
    let text = refusal(&r).expect("second delete refused");
    assert!(
        text.contains("per_tool") || text.contains("delete_branch"),
        "{text}"
    );
    for i in 0..3 {
        let r = raw_call(&gw, "tools", &me, None, "echo", json!({"i": i})).await;
        assert_eq!(refusal(&r), None, "echo {i}: {}", r.text());
    }
    let r = raw_call(&gw, "tools", &me, None, "echo", json!({"i": 4})).await;
    assert!(refusal(&r).is_some(), "fourth echo over the cap");
    // A second task starts from zero.
    let fresh = create_task(&gw, AGENT).await;
    issue_grant(&gw, &fresh, "*", None).await;
    let r = raw_call(
        &gw,
        "tools",
        &token(AGENT, "tools", Some(&fresh)),
        None,
        "delete_branch",
        json!({}),
    )
    .await;
    assert_eq!(refusal(&r), None);
    // Without a task: refused (require_task), and jit-grants has no grant.
    let r = raw_call(
        &gw,
        "tools",
        &token(AGENT, "tools", None),
        None,
        "echo",
        json!({}),
    )
    .await;
    assert!(refusal(&r).is_some());
    assert_eq!(up.seen().len(), 5);
    let shown = admin(&gw, http::Method::GET, &format!("/v1/tasks/{task}"), None)
        .await
        .json();
    assert_eq!(shown["activity"]["counters"]["total"], 6, "{shown}");
    assert_eq!(shown["activity"]["counters"]["denied"], 2, "{shown}");
    assert_eq!(shown["activity"]["recent"].as_array().unwrap().len(), 6);
}
