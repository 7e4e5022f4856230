//! A decision log whose disk fills up under a running gateway (the real
//! binary, with a file-size limit set by `prlimit`: the kernel then fails
//! writes with EFBIG as a full disk fails them with ENOSPC, part-way
//! through a line too). Failing closed, calls are refused with
//! `audit_unavailable` while nothing can be written — even the first line
//! of a new file — and served again, without a restart, once space is
//! back; the log verifies, and every call that reached the tool is in it
//! or counted as dropped by the log itself.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use serde_json::json;

use super::*;
use crate::common::metric_in;
use crate::common::process::{ServeDir, ServerProcess};

/// One tools/call numbered `n`: `Ok` if it reached the tool, `Err(text)`
/// if refused.
async fn call(addr: SocketAddr, n: usize) -> Result<(), String> {
    let body = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"n": n}}});
    let v = crate::common::post_mcp(&format!("http://{addr}/open"), &[], &body)
        .await
        .json();
    if v["result"]["isError"] == true {
        Err(v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_owned())
    } else if v["result"].is_object() {
        Ok(())
    } else {
        Err(v.to_string())
    }
}

async fn metric(server: &ServerProcess, name: &str) -> f64 {
    let url = format!("{}/metrics", server.admin_url());
    let text = crate::common::send(Method::GET, &url, &[], bytes::Bytes::new())
        .await
        .text();
    metric_in(&text, name)
}

/// The `n` of every allowed call decision in the log of `dir`.
fn logged_calls(dir: &std::path::Path) -> (BTreeSet<u64>, u64) {
    let mut allowed = BTreeSet::new();
    let mut dropped = 0;
    for record in Records::open(&[dir.to_path_buf()]).unwrap() {
        let record = record.expect("the log verifies");
        let line = normalized(&record, &[]);
        if line["kind"] == "decision"
            && line["decision"] == "allow"
            && let Some(n) = line["arguments"]["n"].as_u64()
        {
            allowed.insert(n);
        }
        if let Body::Log(l) = &record.body
            && l.event == "dropped"
        {
            dropped += l.count.unwrap_or(0);
        }
    }
    (allowed, dropped)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_calls_until_space_is_back_and_loses_nothing_silently() {
    let up = upstream().await;
    let audit = tempfile::tempdir().unwrap();
    let dir = audit.path().join("log");
    let serve = ServeDir::with(&format!(
        "[audit]\ndir = {}\nfsync = \"never\"\n\n\
         [[routes]]\nname = \"open\"\npath = \"/open\"\nupstream = \"{}\"\ndefault_decision = \"allow\"\n",
        toml::Value::String(dir.display().to_string()),
        up.url("/mcp")
    ));
    let server = serve.start_sizable();
    let mut reached = BTreeSet::new();
    for n in 0..5 {
        call(server.addr, n)
            .await
            .expect("served while the disk has room");
        reached.insert(n as u64);
    }
    call_decisions(&dir, 5).await;

    // The disk is full: no write past the first 64 bytes of any file, so
    // not even a new file's first line fits.
    server.limit_file_size(Some(64));
    let mut refused = None;
    let mut n = 5;
    while n < 400 {
        match call(server.addr, n).await {
            Ok(()) => {
                reached.insert(n as u64);
            }
            Err(text) => {
                refused = Some(text);
                n += 1;
                break;
            }
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let text = refused.expect("a call is refused once the disk is full");
    assert!(text.contains("audit_unavailable"), "{text}");
    // It stays refused while the disk is full (the writer keeps trying).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = call(server.addr, n).await;
    n += 1;
    assert!(
        again
            .as_ref()
            .is_err_and(|t| t.contains("audit_unavailable")),
        "still full: {again:?}"
    );
    assert_eq!(metric(&server, "toolgate_audit_healthy").await, 0.0);
    assert!(metric(&server, "toolgate_audit_write_errors_total").await >= 1.0);

    // Space is back: calls are served again, without a restart.
    server.limit_file_size(None);
    let mut back = None;
    for _ in 0..100 {
        if call(server.addr, n).await.is_ok() {
            reached.insert(n as u64);
            back = Some(n);
            n += 1;
            break;
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_back = back.expect("calls are served again once the disk has room");
    for _ in 0..5 {
        call(server.addr, n).await.expect("served after recovery");
        reached.insert(n as u64);
        n += 1;
    }
    assert_eq!(metric(&server, "toolgate_audit_healthy").await, 1.0);
    // Every call before the disk filled and after it had room again must
    // reach the log (its records are written within a batch interval).
    let must: BTreeSet<u64> = reached
        .iter()
        .copied()
        .filter(|&n| n < 5 || n >= first_back as u64)
        .collect();
    let mut allowed = BTreeSet::new();
    for _ in 0..100 {
        allowed = logged_calls(&dir).0;
        if must.is_subset(&allowed) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);

    let (ok, out) = verify_cli(std::slice::from_ref(&dir)).await;
    assert!(ok, "the log verifies after the disk filled up: {out}");
    let (_, dropped) = logged_calls(&dir);
    for n in &must {
        assert!(
            allowed.contains(n),
            "call {n} reached the tool but is not in the log"
        );
    }
    // One that reached the tool while the disk filled is in the log or
    // counted by the log's own `dropped` line.
    let missing = reached.iter().filter(|n| !allowed.contains(n)).count() as u64;
    assert!(
        missing <= dropped,
        "{missing} calls reached the tool unlogged, the log counts {dropped} dropped"
    );
}
