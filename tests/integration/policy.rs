//! The decide stage with real WASM modules: hand-written hostile modules
//! must deny with `policy_error` while good calls keep succeeding, verdicts
//! combine, tools/list is filtered, and the set hot-reloads under load.

mod cache;
mod grant_checks;
mod hostile;
mod isolation;
mod list_pool;
mod reload;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::upstream::{self, FakeUpstream};
use crate::common::{TestGateway, post_mcp};

pub(crate) fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/policies")
        .join(name)
}

/// An MCP upstream that answers tools/call with "ok" and tools/list with
/// three tools.
pub(crate) async fn tools_upstream() -> FakeUpstream {
    FakeUpstream::start(|seen| async move {
        let req: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let id = req["id"].clone();
        let result = match req["method"].as_str() {
            Some("tools/list") => {
                json!({"tools": [{"name": "echo"}, {"name": "search"}, {"name": "delete_all"}]})
            }
            _ => json!({"content": [{"type": "text", "text": "ok"}]}),
        };
        upstream::json(200, &json!({"jsonrpc": "2.0", "id": id, "result": result}))
    })
    .await
}

/// `[[policies]]` table for a module on one route.
pub(crate) fn policy(name: &str, module: &Path, route: &str, extra: &str) -> String {
    format!(
        "\n[[policies]]\nname = \"{name}\"\nmodule = \"{}\"\nroutes = [\"{route}\"]\n{extra}\n",
        module.display()
    )
}

pub(crate) fn route(name: &str, path: &str, upstream: &str) -> String {
    format!("\n[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\n")
}

pub(crate) async fn call(gw: &TestGateway, path: &str, tool: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": tool, "arguments": {"q": 1}}});
    let r = post_mcp(&gw.url(path), &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

pub(crate) fn is_refused_with(answer: &Value, reason: &str) -> bool {
    answer["result"]["isError"] == true
        && answer["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(reason))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_combine_deny_over_approval_over_allow() {
    let up = tools_upstream().await;
    let mut config = String::from("[policy_limits]\ncache_dir = \"/tmp/toolgate-test-cache\"\n");
    for (name, path) in [("both", "/both"), ("ask", "/ask"), ("ok", "/ok")] {
        config.push_str(&route(name, path, &up.url("/mcp")));
    }
    config.push_str(&policy("allow-both", &fixture("allow.wat"), "both", ""));
    config.push_str(&policy("deny-both", &fixture("deny.wat"), "both", ""));
    config.push_str(&policy("allow-ask", &fixture("allow.wat"), "ask", ""));
    config.push_str(&policy("approve-ask", &fixture("approve.wat"), "ask", ""));
    config.push_str(&policy("allow-ok", &fixture("allow.wat"), "ok", ""));
    let gw = TestGateway::start(&config).await;

    let denied = call(&gw, "/both", "echo").await;
    assert!(is_refused_with(&denied, "policy_deny"), "{denied}");
    assert!(
        is_refused_with(&denied, "the deny fixture says no"),
        "{denied}"
    );
    assert_eq!(denied["id"], 7);
    let parked = call(&gw, "/ask", "echo").await;
    assert!(
        is_refused_with(&parked, "needs a human approval"),
        "{parked}"
    );
    assert!(
        is_refused_with(&parked, "a human must look at this"),
        "{parked}"
    );
    let ok = call(&gw, "/ok", "echo").await;
    assert_eq!(ok["result"]["content"][0]["text"], "ok", "{ok}");
    assert_eq!(
        up.seen().len(),
        1,
        "only the allowed call reached the upstream"
    );
    let metric = crate::common::metric(
        &gw,
        "toolgate_policy_evaluations_total{policy=\"deny-both\",result=\"deny\"}",
    )
    .await;
    assert!(metric >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_phase_filters_tools_and_call_phase_still_decides() {
    let up = tools_upstream().await;
    let mut config = route("r", "/mcp", &up.url("/mcp"));
    // Allow only echo and search (tools glob), deny delete_* in both phases.
    config.push_str(&policy(
        "allow",
        &fixture("allow.wat"),
        "r",
        "tools = [\"echo\", \"search\"]",
    ));
    config.push_str(&policy(
        "deny-delete",
        &fixture("deny.wat"),
        "r",
        "tools = [\"delete_*\"]",
    ));
    let gw = TestGateway::start(&config).await;
    let list = post_mcp(
        &gw.url("/mcp"),
        &[],
        &json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
    )
    .await;
    let names: Vec<String> = list.json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["echo", "search"], "{}", list.text());
    assert!(is_refused_with(
        &call(&gw, "/mcp", "delete_all").await,
        "policy_deny"
    ));
    // No module applies to an unknown tool: the route default (deny) answers.
    assert!(is_refused_with(
        &call(&gw, "/mcp", "other").await,
        "no_policy"
    ));
}
