//! A decision log whose disk fails mid-run: failing closed, calls are
//! refused with `audit_unavailable` until it can be written again; serving,
//! calls go on and every record not written is counted — and the log says
//! so itself. Either way the log verifies afterwards.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::common::{TestGateway, metric, post_mcp};

/// A gateway in front of `up` whose decision log (small files: a rotation
/// every few calls) is in `dir`; `extra` goes into `[audit]`.
async fn gateway(up: &FakeUpstream, dir: &Path, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "[audit]\ndir = \"{}\"\nmax_file_size = 4096\nfsync = \"never\"\n{extra}\n\
         [[routes]]\nname = \"open\"\npath = \"/open\"\nupstream = \"{}\"\ndefault_decision = \"allow\"\n",
        dir.display(),
        up.url("/mcp")
    ))
    .await
}

/// One tools/call: `Ok` if it reached the tool, `Err(text)` if refused.
async fn call(gw: &TestGateway, n: usize) -> Result<(), String> {
    let body = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"n": n, "pad": "x".repeat(300)}}});
    let v = post_mcp(&gw.url("/open"), &[], &body).await.json();
    if v["result"]["isError"] == true {
        Err(v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_owned())
    } else {
        Ok(())
    }
}

/// Makes `dir` unusable: moved aside, a plain file in its place (root can
/// write anywhere, but not into a file). Returns where it went.
fn break_dir(dir: &Path) -> std::path::PathBuf {
    let aside = dir.with_extension("aside");
    std::fs::rename(dir, &aside).unwrap();
    std::fs::write(dir, "not a directory").unwrap();
    aside
}

fn repair_dir(dir: &Path, aside: &Path) {
    std::fs::remove_file(dir).unwrap();
    std::fs::rename(aside, dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_closed_refuses_calls_until_the_log_is_written_again() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let gw = gateway(&up, &dir, "").await;
    call(&gw, 0).await.unwrap();
    let aside = break_dir(&dir);
    // The open file takes lines until the next rotation needs a new file.
    let mut refused = None;
    for n in 1..200 {
        if let Err(text) = call(&gw, n).await {
            refused = Some(text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let text = refused.expect("a call is refused once the log cannot be written");
    assert!(text.contains("audit_unavailable"), "{text}");
    assert_eq!(metric(&gw, "toolgate_audit_healthy").await, 0.0);
    assert!(metric(&gw, "toolgate_audit_write_errors_total").await >= 1.0);
    assert!(
        metric(&gw, "toolgate_decisions_total{decision=\"deny\",phase=\"call\",reason=\"audit_unavailable\",route=\"open\",tool=\"other\"}").await >= 1.0
    );
    repair_dir(&dir, &aside);
    let mut back = false;
    for n in 200..300 {
        if call(&gw, n).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "calls are served again once the log is written");
    gw.stop().await;
    let (ok, out) = verify_cli(std::slice::from_ref(&dir)).await;
    assert!(ok, "{out}");
    // The file after the failure says where the chain continues from.
    let opened = Records::open(std::slice::from_ref(&dir))
        .unwrap()
        .filter_map(Result::ok)
        .any(|r| matches!(&r.body, Body::Log(l) if l.event == "opened" && l.cause.as_deref() == Some("rotation") && r.line == 1 && r.seq > 2));
    assert!(opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serving_on_failure_counts_every_record_it_could_not_write() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let gw = gateway(&up, &dir, "on_failure = \"serve\"\nqueue = 4").await;
    let aside = break_dir(&dir);
    for n in 0..60 {
        call(&gw, n).await.expect("served while the log fails");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dropped = metric(&gw, "toolgate_audit_dropped_total{cause=\"log_failing\"}").await;
    assert!(dropped >= 1.0, "dropped {dropped}");
    assert_eq!(metric(&gw, "toolgate_audit_healthy").await, 0.0);
    repair_dir(&dir, &aside);
    for _ in 0..100 {
        if metric(&gw, "toolgate_audit_healthy").await == 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The log's own line counts every record lost, whatever the cause: with
    // a queue of 4 some calls may also have found the queue full.
    let mut dropped = 0.0;
    for cause in ["log_failing", "queue_full", "shutdown"] {
        dropped += metric(
            &gw,
            &format!("toolgate_audit_dropped_total{{cause=\"{cause}\"}}"),
        )
        .await;
    }
    // The next line written says how many records were lost.
    call(&gw, 99).await.unwrap();
    let counted: u64 = {
        let mut found = 0;
        for _ in 0..100 {
            found = Records::open(std::slice::from_ref(&dir))
                .unwrap()
                .filter_map(Result::ok)
                .filter_map(|r| match r.body {
                    Body::Log(l) if l.event == "dropped" => l.count,
                    _ => None,
                })
                .sum();
            if found > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found
    };
    assert_eq!(
        counted as f64, dropped,
        "the log itself counts what it lost"
    );
    gw.stop().await;
    let (ok, out) = verify_cli(std::slice::from_ref(&dir)).await;
    assert!(ok, "{out}");
}
