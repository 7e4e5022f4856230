//! The 2026-07-28 revision feature by feature, through the gateway, with
//! the real Python SDK client in the 2026-07-28 era in front (and, in
//! `typescript`, the real TypeScript SDK v2 client) and the real Python SDK
//! server (or an in-process upstream, for answers no SDK server gives on
//! demand) behind.

mod approvals;
mod lists;
mod rounds;
mod streams;
mod tasks;
mod trace;
mod typescript;

use serde_json::Value;

use crate::common::TestGateway;
use crate::common::peers::py_client;

const CALLER: &str = "Authorization: Bearer caller-token-never-upstream";

/// Two routes to one upstream: `/mcp` allows every call, `/locked` has no
/// policy and so denies every call (and hides every tool).
async fn gateway(upstream: &str) -> TestGateway {
    TestGateway::start(&format!(
        r#"
        [[routes]]
        name = "open"
        path = "/mcp"
        upstream = "{upstream}"
        default_decision = "allow"

        [[routes]]
        name = "locked"
        path = "/locked"
        upstream = "{upstream}"
        "#
    ))
    .await
}

/// Runs the Python SDK client in the 2026-07-28 era (or `era`) in `mode`.
async fn modern(url: &str, era: &str, mode: &[&str]) -> Value {
    let mut args = vec!["--url", url, "--era", era, "--header", CALLER];
    args.extend_from_slice(mode);
    py_client(&args)
        .await
        .unwrap_or_else(|e| panic!("python client ({era}, {mode:?}) on {url}: {e}"))
}
