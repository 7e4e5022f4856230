//! Tasks, just-in-time grants and approvals through the whole gateway: the
//! real Python MCP server and client, real JWT-SVIDs, the real `jit-grants`
//! policy module, the admin API and the operator CLI (the real binary).

mod budget;
mod concurrency;
mod story;
mod trust;
mod wait;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value, json};
use toolgate::identify::mint::{DEV_ISSUER, DEV_KEY_PEM, Mint};

use crate::common::modules::{build, vectors};
use crate::common::{Reply, TestGateway, send};

pub(crate) const AGENT: &str = "spiffe://toolgate.dev/agent/reader";
pub(crate) const OTHER_AGENT: &str = "spiffe://toolgate.dev/agent/other";
/// The operator's admin token in these tests (its SHA-256 is configured).
pub(crate) const OPERATOR_TOKEN: &str = "tgadm_tasks-test-operator-token";

pub(crate) fn sha256_hex(text: &str) -> String {
    sha256_hex_bytes(text.as_bytes())
}

pub(crate) fn sha256_hex_bytes(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Config with the dev issuer, an operator admin token, and one MCP route
/// `name` in front of `upstream`, guarded by `jit-grants` (`missing` = its
/// answer without a grant), reading the task from the `x-toolgate-task`
/// header and the `task` claim. `extra` is appended (more tables).
pub(crate) fn config(
    name: &str,
    upstream: &str,
    missing: &str,
    route_extra: &str,
    extra: &str,
) -> String {
    let wasm = build(&["jit-grants"]);
    let jwks = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev/jwks.json");
    format!(
        "[server]\nbind = \"127.0.0.1:0\"\npublic_url = \"http://gateway.test\"\n\
         [admin]\nbind = \"127.0.0.1:0\"\n\
         [[admin.tokens]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{hash}\"\n\
         [policy_limits]\ndeadline = \"200ms\"\nrequest_budget = \"1s\"\n\
         [[issuers]]\nname = \"dev\"\nissuer = \"{DEV_ISSUER}\"\nmode = \"spiffe\"\ntrust_domains = [\"toolgate.dev\"]\n\
         jwks_file = \"{jwks}\"\ntask_claim = \"task\"\n\
         [[routes]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{upstream}\"\n{route_extra}\n\
         [routes.auth]\nissuers = [\"dev\"]\ntask_header = \"x-toolgate-task\"\n\
         [[policies]]\nname = \"jit\"\nmodule = \"{wasm}\"\nvectors = \"{vectors}\"\nroutes = [\"{name}\"]\n\
         [policies.config]\nmissing = \"{missing}\"\n{extra}",
        hash = sha256_hex(OPERATOR_TOKEN),
        jwks = jwks.display(),
        wasm = wasm[0].display(),
        vectors = vectors("jit-grants").display(),
    )
}

/// A dev SVID for `subject`, valid on route `route`, maybe naming a task.
pub(crate) fn token(subject: &str, route: &str, task: Option<&str>) -> String {
    let mut mint = Mint::dev(
        subject,
        &format!("http://gateway.test/{route}"),
        Duration::from_secs(600),
    );
    if let Some(task) = task {
        mint.claims.push(("task".into(), task.into()));
    }
    mint.sign(DEV_KEY_PEM.as_bytes()).unwrap()
}

/// An admin API request as the test operator.
pub(crate) async fn admin(
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Reply {
    let auth = format!("Bearer {OPERATOR_TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(serde_json::to_vec(&b).unwrap()));
    send(method, &gw.admin_url(path), &headers, body).await
}

/// Creates a task for `agent` through the admin API; returns its id.
pub(crate) async fn create_task(gw: &TestGateway, agent: &str) -> String {
    let r = admin(
        gw,
        Method::POST,
        "/v1/tasks",
        Some(json!({"agent": agent, "purpose": "triage the inbox", "labels": {"env": "test"}, "ttl": "10m"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["task"]["id"].as_str().unwrap().to_owned()
}

/// Issues a grant through the admin API; returns its id.
pub(crate) async fn issue_grant(
    gw: &TestGateway,
    task: &str,
    tool: &str,
    max_uses: Option<u64>,
) -> String {
    let mut body = json!({"task_id": task, "tool": tool, "ttl": "5m", "reason": "test"});
    if let Some(n) = max_uses {
        body["max_uses"] = json!(n);
    }
    let r = admin(gw, Method::POST, "/v1/grants", Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    r.json()["grant"]["id"].as_str().unwrap().to_owned()
}

/// A modern-era (2026-07-28, stateless) `tools/call` POSTed raw.
pub(crate) async fn raw_call(
    gw: &TestGateway,
    route: &str,
    bearer: &str,
    task: Option<&str>,
    tool: &str,
    args: Value,
) -> Reply {
    let auth = format!("Bearer {bearer}");
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", tool),
    ];
    if let Some(task) = task {
        headers.push(("x-toolgate-task", task));
    }
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": tool, "arguments": args,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
    crate::common::post_mcp(&gw.url(&format!("/{route}")), &headers, &body).await
}

/// The refusal text of an `isError` result, or `None` for a success.
pub(crate) fn refusal(reply: &Reply) -> Option<String> {
    let v = reply.json();
    if v["result"]["isError"] == true {
        Some(
            v["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        )
    } else {
        None
    }
}

/// Runs the operator CLI (the real binary) against the gateway's admin API.
pub(crate) async fn cli(gw: &TestGateway, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args(args)
        .env("TOOLGATE_ADMIN_URL", gw.admin_url(""))
        .env("TOOLGATE_ADMIN_TOKEN", OPERATOR_TOKEN)
        .output()
        .await
        .expect("toolgate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
