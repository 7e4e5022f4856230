//! Hot reload: swapping a module file under load fails no request; a module
//! failing its own vectors is never activated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;

fn vectors(expect: &str) -> String {
    json!({"vectors": [{"name": "any call", "input": {"phase": "call", "tool": {"name": "echo"}}, "expect": expect}]}).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_modules_under_load_fails_no_request() {
    let up = tools_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("live.wat");
    let vectors_file = dir.path().join("live.vectors.json");
    std::fs::copy(fixture("allow.wat"), &module).unwrap();
    std::fs::write(&vectors_file, vectors("allow")).unwrap();
    // Generous deadline: this test is about swapping, on a busy 2-core box.
    let mut config = String::from("[policy_limits]\ndeadline = \"200ms\"\n");
    config.push_str(&route("r", "/mcp", &up.url("/mcp")));
    config.push_str(&policy(
        "live",
        &module,
        "r",
        &format!("vectors = \"{}\"", vectors_file.display()),
    ));
    let gw = Arc::new(TestGateway::start(&config).await);
    assert_eq!(
        call(&gw, "/mcp", "echo").await["result"]["content"][0]["text"],
        "ok"
    );

    let (allowed, denied) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    // The load runs until the test has seen the swap (or, failing that,
    // for at most 30 s).
    let stop = Arc::new(AtomicBool::new(false));
    let give_up = Instant::now() + Duration::from_secs(30);
    let mut load = Vec::new();
    for _ in 0..4 {
        let (gw, allowed, denied, stop) = (
            Arc::clone(&gw),
            Arc::clone(&allowed),
            Arc::clone(&denied),
            Arc::clone(&stop),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) && Instant::now() < give_up {
                let answer = call(&gw, "/mcp", "echo").await;
                if answer["result"]["content"][0]["text"] == "ok" {
                    allowed.fetch_add(1, Ordering::Relaxed);
                } else {
                    assert!(
                        is_refused_with(&answer, "the deny fixture says no"),
                        "unexpected answer: {answer}"
                    );
                    denied.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    // A module that fails its own vectors (deny where allow is expected) is
    // refused: wait (at least 1 s, at most 10 s) until the watcher's reload
    // has been counted as failed, with the load running all along.
    tokio::time::sleep(Duration::from_millis(400)).await;
    std::fs::copy(fixture("deny.wat"), &module).unwrap();
    let copied = Instant::now();
    let mut errors = 0.0;
    while copied.elapsed() < Duration::from_secs(1) || errors < 1.0 {
        assert!(
            copied.elapsed() < Duration::from_secs(10),
            "the refused reload is counted (within 10 s)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        errors =
            crate::common::metric(&gw, "toolgate_policy_reloads_total{result=\"error\"}").await;
    }
    assert_eq!(
        denied.load(Ordering::Relaxed),
        0,
        "a module failing its vectors was activated"
    );
    // ...and once its vectors agree, the swap happens with the load running.
    std::fs::write(&vectors_file, vectors("deny")).unwrap();
    let written = Instant::now();
    while denied.load(Ordering::Relaxed) == 0 && written.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.await.unwrap();
    }
    assert!(allowed.load(Ordering::Relaxed) > 0);
    assert!(
        denied.load(Ordering::Relaxed) > 0,
        "the new module took over without a restart (within 15 s)"
    );
    let answer = call(&gw, "/mcp", "echo").await;
    assert!(is_refused_with(&answer, "policy_deny"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_trigger_reloads_and_reports_a_broken_set() {
    let up = tools_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("m.wat");
    std::fs::copy(fixture("allow.wat"), &module).unwrap();
    let mut config = String::from("[policy_limits]\nwatch = false\n");
    config.push_str(&route("r", "/mcp", &up.url("/mcp")));
    config.push_str(&policy("m", &module, "r", ""));
    let gw = TestGateway::start(&config).await;
    std::fs::copy(fixture("deny.wat"), &module).unwrap();
    let admin = gw.admin_url("/policies/reload");
    let bearer = format!("Bearer {}", crate::common::admin::ADMIN_TOKEN);
    let auth = [("authorization", bearer.as_str())];
    let r = crate::common::send(http::Method::POST, &admin, &auth, bytes::Bytes::new()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(is_refused_with(
        &call(&gw, "/mcp", "echo").await,
        "policy_deny"
    ));
    std::fs::write(&module, "(module (this is not wasm").unwrap();
    let r = crate::common::send(http::Method::POST, &admin, &auth, bytes::Bytes::new()).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "policy_reload_failed");
    assert!(
        is_refused_with(&call(&gw, "/mcp", "echo").await, "policy_deny"),
        "the last good set keeps serving"
    );
    let listed = crate::common::send(
        http::Method::GET,
        &gw.admin_url("/policies"),
        &auth,
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(listed.json()["policies"][0]["name"], "m");
}

/// Reloads counted so far (either result) by a `toolgate serve` process.
async fn reloads(server: &crate::common::process::ServerProcess) -> f64 {
    let text = crate::common::send(
        http::Method::GET,
        &format!("{}/metrics", server.admin_url()),
        &[],
        bytes::Bytes::new(),
    )
    .await
    .text();
    text.lines()
        .filter(|l| l.starts_with("toolgate_policy_reloads_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn wait_for_reloads(server: &crate::common::process::ServerProcess, n: f64) {
    let start = Instant::now();
    while reloads(server).await < n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no reload {n} within 10s; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The watcher reacts to changes of content only: one edit is one reload,
/// and neither its own reads nor an admin or SIGHUP reload start a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_edit_is_one_reload_and_quiet_is_none() {
    use crate::common::process::{ServeDir, sha256_hex};
    const ADMIN: &str = "tg-test-admin-reload-7f3e";
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("live.wat");
    let vectors_file = dir.path().join("live.vectors.json");
    std::fs::copy(fixture("allow.wat"), &module).unwrap();
    std::fs::write(&vectors_file, vectors("allow")).unwrap();
    let serve = ServeDir::with(&format!(
        "[[admin.tokens]]\nname = \"root\"\nrole = \"admin\"\nsha256 = \"{}\"\n\n\
         [policy_limits]\nwatch = true\ncache_dir = \"{}\"\n\n\
         [[policies]]\nname = \"live\"\nmodule = \"{}\"\nvectors = \"{}\"\n",
        sha256_hex(ADMIN),
        dir.path().join("cache").display(),
        module.display(),
        vectors_file.display(),
    ));
    let server = serve.start();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(reloads(&server).await, 0.0, "nothing changed since start");

    // One edit of the module's content: exactly one reload.
    let mut text = std::fs::read_to_string(fixture("allow.wat")).unwrap();
    text.push_str("\n;; edited\n");
    // Written aside and renamed over it, as editors do: a plain write
    // truncates first, and a stall between that and the write would let
    // the watcher see (and reload) the empty file too.
    let aside = dir.path().join("live.wat.new");
    std::fs::write(&aside, text).unwrap();
    std::fs::rename(&aside, &module).unwrap();
    wait_for_reloads(&server, 1.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reloads(&server).await, 1.0, "one edit, one reload");
    let last = |body: serde_json::Value| body["last_reload"].clone();
    let (_, listed) =
        crate::common::process::admin(&server, http::Method::GET, "/v1/policies", ADMIN, None)
            .await;
    let first = last(listed);
    assert_eq!(
        (&first["trigger"], &first["ok"], &first["modules"]),
        (
            &serde_json::json!("file_change"),
            &serde_json::json!(true),
            &serde_json::json!(1)
        ),
        "the API shows the last reload whatever started it: {first}"
    );

    // An admin reload reads the files; those reads start nothing.
    let (status, _) = crate::common::process::admin(
        &server,
        http::Method::POST,
        "/v1/policies/reload",
        ADMIN,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(reloads(&server).await, 2.0);
    let (_, listed) =
        crate::common::process::admin(&server, http::Method::GET, "/v1/policies", ADMIN, None)
            .await;
    let second = last(listed);
    assert_eq!(
        (&second["trigger"], &second["by"]),
        (&serde_json::json!("api"), &serde_json::json!("root")),
        "{second}"
    );
    // Nor does a SIGHUP (the whole config re-read, the watcher renewed).
    server.signal("HUP");
    wait_for_reloads(&server, 3.0).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        reloads(&server).await,
        3.0,
        "10 s of quiet, no reload; log:\n{}",
        server.log()
    );
    let (_, listed) =
        crate::common::process::admin(&server, http::Method::GET, "/v1/policies", ADMIN, None)
            .await;
    assert_eq!(last(listed)["trigger"], "config");
}
