//! `server/discover` and list caching: a result filtered per caller is
//! filtered as `tools/list` is, and never left shareable between callers.

use serde_json::{Value, json};
use toolgate::forward::body::MAX_PRIVATE_TTL_MS;

use super::*;
use crate::common::peers::{PyServer, ts_modern_client};
use crate::common::upstream::{self, FakeUpstream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_lists_and_discover_become_private_with_a_capped_ttl() {
    let server = PyServer::start(&["--public-cache"]).await;
    // Baseline: the server itself says "share this for an hour".
    let direct = modern(&server.url(), "modern", &["list"]).await;
    assert_eq!(direct["cache_scope"], "public", "{direct}");
    assert_eq!(direct["ttl_ms"], 3_600_000, "{direct}");

    let gw = gateway(&server.url()).await;
    for (route, tools) in [("/mcp", 4), ("/locked", 0)] {
        let url = gw.url(route);
        let list = modern(&url, "modern", &["list"]).await;
        assert_eq!(list["protocol_version"], "2026-07-28", "{list}");
        assert_eq!(list["tools"].as_array().unwrap().len(), tools, "{list}");
        assert_eq!(list["cache_scope"], "private", "{route}: {list}");
        assert_eq!(list["ttl_ms"], MAX_PRIVATE_TTL_MS, "{route}: {list}");

        let discover = modern(&url, "modern", &["discover"]).await;
        let result = &discover["result"];
        assert_eq!(result["resultType"], "complete", "{discover}");
        assert_eq!(result["supportedVersions"], json!(["2026-07-28"]));
        assert_eq!(result["cacheScope"], "private", "{route}: {discover}");
        assert_eq!(result["ttlMs"], MAX_PRIVATE_TTL_MS, "{route}: {discover}");
    }

    // The legacy era carries no cache hints, and gets none added.
    let legacy = modern(&gw.url("/mcp"), "legacy", &["list"]).await;
    assert_eq!(legacy["tools"].as_array().unwrap().len(), 4, "{legacy}");
    assert_eq!(legacy["cache_scope"], Value::Null, "{legacy}");
    assert_eq!(legacy["ttl_ms"], Value::Null, "{legacy}");
}

/// A discover result that carries a tool list (as an extension may) is
/// filtered for the caller like `tools/list`; a short `ttlMs` is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_list_in_server_discover_is_filtered_per_caller() {
    let up = FakeUpstream::start(|seen| async move {
        let request: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        upstream::json(
            200,
            &json!({"jsonrpc": "2.0", "id": request["id"], "result": {
                "resultType": "complete",
                "supportedVersions": ["2026-07-28"],
                "capabilities": {"tools": {}},
                "cacheScope": "public",
                "ttlMs": 5_000,
                "tools": [
                    {"name": "echo", "inputSchema": {"type": "object"}},
                    {"name": "delete_all", "inputSchema": {"type": "object"}},
                ],
            }}),
        )
    })
    .await;
    let gw = gateway(&up.url("/mcp")).await;
    for (route, want) in [
        ("/mcp", json!(["echo", "delete_all"])),
        ("/locked", json!([])),
    ] {
        let out = modern(&gw.url(route), "modern", &["discover"]).await;
        let result = &out["result"];
        let names: Vec<&Value> = result["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("{route}: {out}"))
            .iter()
            .map(|t| &t["name"])
            .collect();
        assert_eq!(json!(names), want, "{route}: {out}");
        assert_eq!(result["cacheScope"], "private", "{route}: {out}");
        assert_eq!(result["ttlMs"], 5_000, "shorter than the cap, kept: {out}");

        // The TypeScript SDK v2 client, at connect and asked again.
        let args = ["--url", &gw.url(route), "--header", CALLER, "discover"];
        let out = ts_modern_client(&args)
            .await
            .unwrap_or_else(|e| panic!("typescript v2 client on {route}: {e}"));
        for result in [&out["at_connect"], &out["result"]] {
            let names: Vec<&Value> = result["tools"]
                .as_array()
                .unwrap_or_else(|| panic!("{route}: {out}"))
                .iter()
                .map(|t| &t["name"])
                .collect();
            assert_eq!(json!(names), want, "{route}: {out}");
            assert_eq!(result["cacheScope"], "private", "{route}: {out}");
        }
    }
    let methods: Vec<String> = up
        .seen()
        .iter()
        .map(|s| serde_json::from_slice::<Value>(&s.body).unwrap()["method"].to_string())
        .collect();
    assert!(
        methods.iter().all(|m| m == "\"server/discover\""),
        "the discover passed through to the upstream: {methods:?}"
    );
}
