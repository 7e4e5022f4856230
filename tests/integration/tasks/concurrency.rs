//! A grant with `max_uses` N lets exactly N of 64 concurrent calls through.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::common::upstream::{FakeUpstream, json as json_answer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_uses_is_exact_under_64_concurrent_calls() {
    let up = FakeUpstream::start(|_| async {
        json_answer(200, &json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}))
    })
    .await;
    let gw = Arc::new(TestGateway::start(&config("tools", &up.url(""), "deny", "", "")).await);
    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "search_*", Some(10)).await;
    let bearer = Arc::new(token(AGENT, "tools", Some(&task)));

    let calls: Vec<_> = (0..64)
        .map(|i| {
            let (gw, bearer) = (Arc::clone(&gw), Arc::clone(&bearer));
            tokio::spawn(async move {
                let r = raw_call(
                    &gw,
                    "tools",
                    &bearer,
                    None,
                    "search_issues",
                    json!({"q": i}),
                )
                .await;
                refusal(&r).is_none()
            })
        })
        .collect();
    let mut allowed = 0;
    for c in calls {
        if c.await.unwrap() {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 10, "exactly max_uses calls pass");
    assert_eq!(up.seen().len(), 10, "and only those reached the upstream");
    let g = admin(&gw, http::Method::GET, &format!("/v1/grants/{grant}"), None)
        .await
        .json();
    assert_eq!(g["grant"]["uses"], 10, "{g}");
}
