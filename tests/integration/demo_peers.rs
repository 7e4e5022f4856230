//! The demo's example tool server against the real Python SDK client in both
//! eras, directly and through the running `toolgate demo` (issue 12, defect 5:
//! the 2026-07-28 client refused answers without `resultType` / `ttlMs`).

use serde_json::Value;

use crate::common::demo::Demo;
use crate::common::peers::py_client;

/// One scenario run (list, echo, add, countdown with progress); its output.
async fn scenario(url: &str, era: &str, auth: Option<&str>) -> Value {
    let mut args = vec!["--url", url, "--era", era];
    if let Some(auth) = auth {
        args.extend(["--header", auth]);
    }
    args.push("scenario");
    let out = py_client(&args)
        .await
        .unwrap_or_else(|e| panic!("python client, era {era}, against {url}:\n{e}"));
    assert_eq!(
        out["tools"],
        serde_json::json!(["add", "countdown", "echo"]),
        "{out}"
    );
    assert_eq!(out["echo"], "hello", "{out}");
    assert_eq!(out["add"].as_f64(), Some(5.0), "{out}");
    assert_eq!(out["countdown"]["text"], "liftoff", "{out}");
    assert_eq!(
        out["countdown"]["progress"].as_array().map(Vec::len),
        Some(3),
        "{out}"
    );
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_the_python_client_in_both_eras() {
    let demo = Demo::start().await;
    let auth = format!("Authorization: Bearer {}", demo.export("TOKEN"));
    let direct = format!("http://127.0.0.1:{}/mcp", demo.tools);
    let gateway = format!("http://127.0.0.1:{}/mcp", demo.gw);
    let (modern_direct, modern_gw, legacy_gw, auto_direct) = tokio::join!(
        scenario(&direct, "modern", None),
        scenario(&gateway, "modern", Some(&auth)),
        scenario(&gateway, "legacy", Some(&auth)),
        // `auto` asks `server/discover` first and adopts 2026-07-28.
        scenario(&direct, "auto", None),
    );
    for out in [&modern_direct, &modern_gw, &auto_direct] {
        assert_eq!(out["protocol_version"], "2026-07-28", "{out}");
        assert!(out["session_id"].is_null(), "stateless era: {out}");
    }
    assert_eq!(legacy_gw["protocol_version"], "2025-11-25", "{legacy_gw}");
    assert!(legacy_gw["session_id"].is_string(), "{legacy_gw}");

    // The refused call on the locked route is a tool error in 2026-07-28 too.
    let locked = format!("http://127.0.0.1:{}/locked/mcp", demo.gw);
    let locked_auth = format!("Authorization: Bearer {}", demo.export("LOCKED_TOKEN"));
    let args = [
        "--url",
        &locked,
        "--era",
        "modern",
        "--header",
        &locked_auth,
        "call",
        "--tool",
        "echo",
        "--args",
        r#"{"text":"hi"}"#,
    ];
    let out = py_client(&args).await.unwrap();
    assert_eq!(out["isError"], true, "{out}");
}
