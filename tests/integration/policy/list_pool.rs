//! The `list` phase with a slow module: the tools of a `tools/list` result
//! that a slow module decides are decided on the policy pool, as calls are
//! — charged to the request's policy budget, refused at once when the
//! module's queue is full — and every tool so refused is hidden.

use std::time::Duration;

use serde_json::{Value, json};

use super::{call, fixture, policy, route};
use crate::common::{TestGateway, metric, post_mcp};

/// An upstream listing `TOOLS` tools.
const TOOLS: usize = 3;

async fn lists(gw: &TestGateway, n: u64) -> Vec<Value> {
    let sent = (0..n).map(|id| {
        let url = gw.url("/slow/mcp");
        async move {
            let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"});
            let r = post_mcp(&url, &[], &body).await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()
        }
    });
    futures_util::future::join_all(sent).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_module_decides_lists_on_the_pool_and_refused_tools_are_hidden() {
    let up = super::tools_upstream().await;
    // Each evaluation runs to its 10 ms deadline: a list of three tools
    // needs 30 ms, past its 15 ms budget by the third; one list waits in
    // the module's lane at most.
    let mut config = String::from(
        "[policy_limits]\ndeadline = \"10ms\"\nrequest_budget = \"15ms\"\nmax_queued = 1\n",
    );
    config.push_str(&route("slow", "/slow/mcp", &up.url("/mcp")));
    config.push_str(&policy("spin", &fixture("loop.wat"), "slow", ""));
    let gw = TestGateway::start(&config).await;
    // Two calls run to the deadline inline: from then on the module is slow.
    for _ in 0..2 {
        let answer = call(&gw, "/slow/mcp", "echo").await;
        assert_eq!(answer["result"]["isError"], true, "{answer}");
    }

    let list = |reason: &str| {
        format!(r#"toolgate_decisions_total{{route="slow",phase="list",reason="{reason}"}}"#)
    };
    let mut rounds = 0;
    loop {
        rounds += 1;
        for answer in lists(&gw, 6).await {
            let tools = answer["result"]["tools"].as_array().expect("a list");
            assert!(tools.is_empty(), "a refused tool was shown: {answer}");
        }
        let busy = metric(&gw, &list("policy_busy")).await;
        if busy > 0.0 || rounds == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (busy, budget, error) = (
        metric(&gw, &list("policy_busy")).await,
        metric(&gw, &list("policy_budget")).await,
        metric(&gw, &list("policy_error")).await,
    );
    eprintln!("list decisions after {rounds} rounds: busy {busy}, budget {budget}, error {error}");
    // Only the pool refuses for a full queue: lists queued there.
    assert!(busy > 0.0, "no list was refused for a full queue");
    assert!(
        busy % TOOLS as f64 == 0.0,
        "a busy lane refuses a list's tools together"
    );
    // Pool jobs ran the module (to its deadline) and kept to the budget.
    assert!(error > 0.0, "no list decision ran the module");
    assert!(budget > 0.0, "no list decision was refused for its budget");
    assert!(
        up.seen().iter().all(|s| {
            let req: Value = serde_json::from_slice(&s.body).unwrap_or(Value::Null);
            req["method"] != "tools/call"
        }),
        "no call of the slow route reached the upstream"
    );
}
