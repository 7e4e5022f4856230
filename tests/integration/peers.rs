//! Real MCP clients (Python SDK 2.3.0 in both eras, TypeScript SDK 1.32.2)
//! talking through the gateway to the real Python SDK server.

use serde_json::Value;

use crate::common::TestGateway;
use crate::common::peers::{PyServer, py_client, ts_client};

const CALLER: &str = "Authorization: Bearer caller-token-never-upstream";
const UPSTREAM_SECRET: &str = "upstream-credential-42";

struct Setup {
    server: PyServer,
    gw: TestGateway,
    _secret: tempfile::NamedTempFile,
}

/// The Python server behind two routes: `/mcp` allows every call, `/locked`
/// has no policy and so denies every call.
async fn setup(server_args: &[&str]) -> Setup {
    let server = PyServer::start(server_args).await;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), format!("{UPSTREAM_SECRET}\n")).unwrap();
    let routes = format!(
        r#"
        [[routes]]
        name = "tools"
        path = "/mcp"
        upstream = "{url}"
        default_decision = "allow"
        [routes.upstream_auth]
        prefix = "Bearer "
        value = {{ file = "{secret}" }}

        [[routes]]
        name = "locked"
        path = "/locked"
        upstream = "{url}"
        "#,
        url = server.url(),
        secret = secret.path().display(),
    );
    let gw = TestGateway::start(&routes).await;
    Setup {
        server,
        gw,
        _secret: secret,
    }
}

/// What every real-client scenario must show, whatever the era.
fn assert_scenario(out: &Value) {
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for want in ["add", "countdown", "echo"] {
        assert!(tools.contains(&want), "tools/list lacks {want}: {out}");
    }
    assert_eq!(out["echo"], "hello", "{out}");
    assert_eq!(out["add"].as_f64(), Some(5.0), "{out}");
    let countdown = &out["countdown"];
    assert_eq!(countdown["text"], "liftoff", "{out}");
    let progress = countdown["progress"].as_array().unwrap();
    assert_eq!(progress.len(), 3, "three progress notifications: {out}");
    // Streamed, not buffered: the first notification (sent ~0.4 s in) must
    // reach the client well before the result (~1.6 s in).
    let first = progress[0][1].as_f64().unwrap();
    let result = countdown["result_t"].as_f64().unwrap();
    assert!(
        result - first > 0.8,
        "progress arrived only with the result (first {first}s, result {result}s): SSE was buffered"
    );
}

/// The caller's token never reached the server; the route's credential did.
fn assert_credentials(server: &PyServer) -> Vec<Value> {
    let requests = server.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        let auth = r["headers"]["authorization"].as_str().unwrap_or("");
        assert!(
            !auth.contains("caller-token"),
            "caller token leaked upstream: {r}"
        );
        assert_eq!(auth, format!("Bearer {UPSTREAM_SECRET}"), "{r}");
    }
    requests
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_legacy_era_end_to_end() {
    let s = setup(&[]).await;
    let url = s.gw.url("/mcp");
    let out = py_client(&[
        "--url", &url, "--era", "legacy", "--header", CALLER, "scenario",
    ])
    .await
    .unwrap();
    assert_scenario(&out);
    assert!(
        out["protocol_version"]
            .as_str()
            .unwrap()
            .starts_with("2025-"),
        "{out}"
    );
    assert!(
        out["session_id"].is_string(),
        "legacy era has a session: {out}"
    );
    let requests = assert_credentials(&s.server);
    let methods: Vec<&str> = requests
        .iter()
        .filter_map(|r| r["method"].as_str())
        .collect();
    assert!(
        methods.contains(&"DELETE"),
        "session DELETE reached the server: {methods:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| r["headers"]["host"] == format!("127.0.0.1:{}", s.server.port)),
        "Host rewritten to the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_modern_era_end_to_end() {
    let s = setup(&[]).await;
    let url = s.gw.url("/mcp");
    let out = py_client(&[
        "--url", &url, "--era", "modern", "--header", CALLER, "scenario",
    ])
    .await
    .unwrap();
    assert_scenario(&out);
    assert_eq!(out["protocol_version"], "2026-07-28", "{out}");
    assert!(
        out["session_id"].is_null(),
        "no sessions in 2026-07-28: {out}"
    );
    let requests = assert_credentials(&s.server);
    let calls: Vec<&Value> = requests
        .iter()
        .filter(|r| r["headers"]["mcp-method"] == "tools/call")
        .collect();
    assert!(
        calls.len() >= 3,
        "tools/call requests with Mcp-Method: {requests:?}"
    );
    assert!(calls.iter().all(|r| r["headers"]["mcp-name"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_client_end_to_end() {
    let s = setup(&[]).await;
    let url = s.gw.url("/mcp");
    let out = ts_client(&["--url", &url, "--header", CALLER, "scenario"])
        .await
        .unwrap();
    assert_scenario(&out);
    let requests = assert_credentials(&s.server);
    assert!(
        requests.iter().any(|r| r["method"] == "DELETE"),
        "terminateSession sent DELETE"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_clients_see_refusals_as_tool_errors_and_filtered_lists() {
    let s = setup(&[]).await;
    let url = s.gw.url("/locked");
    let args = r#"{"text":"hi"}"#;
    let clients: [(&str, &[&str]); 3] = [
        ("python legacy", &["--era", "legacy"]),
        ("python modern", &["--era", "modern"]),
        ("typescript", &[]),
    ];
    for (who, era) in clients {
        let run = |mode: &'static [&'static str]| {
            let mut argv: Vec<&str> = vec!["--url", &url, "--header", CALLER];
            argv.extend_from_slice(era);
            argv.extend_from_slice(mode);
            argv
        };
        let call = run(&["call", "--tool", "echo", "--args"]);
        let mut call = call;
        call.push(args);
        let out = if who == "typescript" {
            ts_client(&call).await
        } else {
            py_client(&call).await
        }
        .unwrap_or_else(|e| panic!("{who}: a refusal must not crash the client: {e}"));
        assert_eq!(out["isError"], true, "{who}: {out}");
        let text = out["text"].as_str().unwrap();
        assert!(
            text.contains("no_policy") && text.contains("echo"),
            "{who}: {text}"
        );

        let list = run(&["list"]);
        let out = if who == "typescript" {
            ts_client(&list).await
        } else {
            py_client(&list).await
        }
        .unwrap_or_else(|e| panic!("{who}: {e}"));
        assert_eq!(
            out["tools"],
            serde_json::json!([]),
            "{who}: list is filtered: {out}"
        );
    }
    // No tools/call ever reached the server through the locked route.
    for r in s.server.requests() {
        assert_ne!(r["headers"]["mcp-method"], "tools/call", "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_response_mode_lists_are_filtered_too() {
    let s = setup(&["--json-response"]).await;
    for (route, want_tools) in [("/mcp", true), ("/locked", false)] {
        let url = s.gw.url(route);
        let out = py_client(&["--url", &url, "--era", "legacy", "list"])
            .await
            .unwrap();
        let n = out["tools"].as_array().unwrap().len();
        assert_eq!(n > 0, want_tools, "{route}: {out}");
    }
}
