//! Reading the decision log of a running gateway while calls keep it
//! writing and rotating: `toolgate audit verify` (the real CLI) and the
//! admin API's queries, run again and again as lines are being written and
//! files begun, never fail on what is only in progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::common::process::{ServeDir, VIEWER_TOKEN, admin};

/// Clients calling the gateway at once, for as long as the reads go on.
const CALLERS: usize = 4;
/// How long the reads go on.
const READING: Duration = Duration::from_secs(6);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_queries_on_a_log_being_written_and_rotated_never_fail() {
    let up = upstream().await;
    let audit = tempfile::tempdir().unwrap();
    let dir = audit.path().join("log");
    // Small files, so that the reads meet many rotations; no batching
    // interval, so that lines are written as calls come.
    let serve = ServeDir::with(&format!(
        "[audit]\ndir = {}\nfsync = \"never\"\nmax_file_size = 8192\nretain = 4\nbatch_interval = \"0s\"\n\n\
         [[routes]]\nname = \"open\"\npath = \"/open\"\nupstream = \"{}\"\ndefault_decision = \"allow\"\n",
        toml::Value::String(dir.display().to_string()),
        up.url("/mcp")
    ));
    let server = serve.start();
    let url = format!("http://{}/open", server.addr);

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|c| {
            let (url, stop, calls) = (url.clone(), Arc::clone(&stop), Arc::clone(&calls));
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
                                      "params": {"name": "echo", "arguments": {"c": c, "n": n}}});
                    let r = crate::common::post_mcp(&url, &[], &body).await;
                    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
                    calls.fetch_add(1, Ordering::Relaxed);
                    n += 1;
                }
            })
        })
        .collect();
    call_decisions(&dir, 20).await;

    let started = Instant::now();
    let (mut verified, mut queried) = (0, 0);
    let rotations_before = rotations(&dir);
    // At least `READING`, and on until the reads met 5 verifies and 5 new
    // files however slow the machine (a minute at most).
    while started.elapsed() < READING || verified < 5 || rotations(&dir) - rotations_before < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "in a minute, {verified} verifies and {} new files, {} calls",
            rotations(&dir) - rotations_before,
            calls.load(Ordering::Relaxed)
        );
        let (ok, out) = verify_cli(std::slice::from_ref(&dir)).await;
        assert!(ok, "verify failed on a live log: {out}");
        verified += 1;
        for path in ["/v1/decisions?limit=5", "/v1/reports/denials?since=1h"] {
            let (status, body) = admin(&server, Method::GET, path, VIEWER_TOKEN, None).await;
            assert_eq!(status, StatusCode::OK, "{path} on a live log: {body}");
            queried += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let rotated = rotations(&dir) - rotations_before;
    // The reads raced the writer (the loop saw to it that many calls and
    // files went by meanwhile).
    eprintln!(
        "{verified} verifies and {queried} queries over {rotated} new files, {} calls",
        calls.load(Ordering::Relaxed)
    );
    let (ok, out) = verify_cli(std::slice::from_ref(&dir)).await;
    assert!(ok, "{out}");
}

/// The number of the newest log file in `dir`: how many files were begun.
fn rotations(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("decisions-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0)
}
