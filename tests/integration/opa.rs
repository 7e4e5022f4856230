//! The decide stage with an OPA-ABI module dropped in as it is: its own
//! vectors pass at start-up, and tools/call is allowed or refused (with the
//! reason the policy built through the sprintf builtin) through the gateway.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::upstream::{self, FakeUpstream};
use crate::common::{TestGateway, post_mcp};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/opa")
        .join(name)
}

async fn call(gw: &TestGateway, tool: &str) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": tool, "arguments": {"path": "/workspace/a"}}});
    let r = post_mcp(&gw.url("/files"), &[], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opa_module_allows_and_refuses_tool_calls() {
    let up = FakeUpstream::start(|seen| async move {
        let req: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        let result = json!({"content": [{"type": "text", "text": "ok"}]});
        upstream::json(
            200,
            &json!({"jsonrpc": "2.0", "id": req["id"].clone(), "result": result}),
        )
    })
    .await;
    // A generous deadline: the point here is the verdicts, not the sandbox.
    let config = format!(
        "[policy_limits]\ndeadline = \"500ms\"\ncache_dir = \"{cache}\"\n\n\
         [[routes]]\nname = \"files\"\npath = \"/files\"\nupstream = \"{upstream}\"\n\n\
         [[policies]]\nname = \"no-deletes\"\nmodule = \"{module}\"\nvectors = \"{vectors}\"\nroutes = [\"files\"]\n",
        cache = std::env::temp_dir().join("toolgate-test-cache").display(),
        upstream = up.url("/mcp"),
        module = fixture("deny_delete.wat").display(),
        vectors = fixture("deny_delete.vectors.json").display(),
    );
    let gw = TestGateway::start(&config).await;

    let allowed = call(&gw, "read_file").await;
    assert_eq!(allowed["result"]["content"][0]["text"], "ok", "{allowed}");
    assert_ne!(allowed["result"]["isError"], true, "{allowed}");

    let refused = call(&gw, "delete_file").await;
    assert_eq!(refused["id"], 3);
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    let text = refused["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("policy_deny"), "{text}");
    assert!(
        text.contains(r#"delete calls are refused by rule 7 ("no-deletes")"#),
        "{text}"
    );

    assert_eq!(
        up.seen().len(),
        1,
        "only the allowed call reaches the upstream"
    );
    gw.stop().await;
}
