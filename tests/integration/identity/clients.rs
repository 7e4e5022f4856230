//! Real MCP clients (Python SDK in both eras, TypeScript SDK) with a real
//! JWT-SVID, through a SPIFFE-authenticated route to the real Python server.

use std::time::Duration;

use toolgate::identify::mint::{DEV_ISSUER, DEV_JWKS, DEV_KEY_PEM, DEV_KID, Mint};

use super::*;
use crate::common::peers::{PyServer, py_client, ts_client};

fn assert_scenario(who: &str, out: &Value) {
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{who}: {out}"))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["add", "countdown", "echo"] {
        assert!(
            tools.contains(&want),
            "{who}: tools/list lacks {want}: {out}"
        );
    }
    assert_eq!(out["echo"], "hello", "{who}: {out}");
    assert_eq!(out["add"].as_f64(), Some(5.0), "{who}: {out}");
    assert_eq!(out["countdown"]["text"], "liftoff", "{who}: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_call_through_a_spiffe_route_with_a_minted_svid() {
    let py = PyServer::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("dev.json");
    std::fs::write(&jwks, DEV_JWKS).unwrap();
    let gw = TestGateway::start(&format!(
        "{}\n[[issuers]]\nname = \"dev\"\nissuer = \"{DEV_ISSUER}\"\nmode = \"spiffe\"\n\
         trust_domains = [\"toolgate.dev\"]\njwks_file = {}\n{}",
        server(),
        toml_path(&jwks),
        route("tools", "/mcp", &py.url(), Some("issuers = [\"dev\"]")),
    ))
    .await;
    let url = gw.url("/mcp");
    let mint = Mint::dev(
        "spiffe://toolgate.dev/agent/real-client",
        &format!("{PUBLIC}/mcp"),
        Duration::from_secs(300),
    );
    assert_eq!(mint.kid.as_deref(), Some(DEV_KID));
    let token = mint.sign(DEV_KEY_PEM.as_bytes()).unwrap();
    let header = format!("Authorization: Bearer {token}");

    let legacy_args = [
        "--url", &url, "--era", "legacy", "--header", &header, "scenario",
    ];
    let modern_args = [
        "--url", &url, "--era", "modern", "--header", &header, "scenario",
    ];
    let ts_args = ["--url", &url, "--header", &header, "scenario"];
    let (legacy, modern, ts) = tokio::join!(
        py_client(&legacy_args),
        py_client(&modern_args),
        ts_client(&ts_args),
    );
    let legacy = legacy.unwrap_or_else(|e| panic!("python legacy: {e}"));
    assert_scenario("python legacy", &legacy);
    assert!(legacy["session_id"].is_string(), "{legacy}");
    let modern = modern.unwrap_or_else(|e| panic!("python modern: {e}"));
    assert_scenario("python modern", &modern);
    assert_eq!(modern["protocol_version"], "2026-07-28", "{modern}");
    let ts = ts.unwrap_or_else(|e| panic!("typescript: {e}"));
    assert_scenario("typescript", &ts);

    // Without the token the real client is turned away.
    let refused = py_client(&["--url", &url, "--era", "legacy", "list"]).await;
    let err = refused.expect_err("no token, no tools");
    assert!(err.contains("401"), "{err}");

    // The server never saw the caller's token, in any header.
    let requests = py.requests();
    assert!(requests.len() > 10, "{requests:?}");
    let signature = token.rsplit('.').next().unwrap();
    for r in &requests {
        let headers = r["headers"].to_string();
        assert!(
            !headers.contains(&token) && !headers.contains(signature),
            "caller token leaked upstream: {r}"
        );
        assert!(r["headers"]["authorization"].is_null(), "{r}");
    }
    assert!(
        requests.iter().any(|r| r["method"] == "DELETE"),
        "legacy sessions were ended through the gateway"
    );
}
