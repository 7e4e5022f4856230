//! `load profile`: instructions per call of row (c), counted by callgrind.
//! On a shared, loaded machine instruction counts repeat where CPU time
//! does not. The gateway runs under `valgrind --tool=callgrind` with one
//! worker; after a warm-up the counters are zeroed, one connection sends
//! the (c) call for a while, and the counters are dumped: the dump's total
//! divided by the calls answered is the figure. The dump stays in
//! `target/load/profile/` for `callgrind_annotate`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::gateway;
use super::generate::{self, Expect, Target};
use super::procs;
use super::repo;

pub(crate) fn run(seconds: u64) {
    let out = repo().join("target/load/profile");
    std::fs::create_dir_all(&out).expect("profile folder");
    for stale in dumps(&out) {
        let _ = std::fs::remove_file(stale);
    }
    let wasm = gateway::build_modules(&repo());
    let me = std::env::current_exe().expect("own path");
    let mut upstream_cmd = procs::command(&me, None);
    upstream_cmd.arg("upstream");
    let (_upstream, upstream_port) = procs::spawn_listening("upstream", upstream_cmd);
    let wrap: Vec<String> = [
        "valgrind",
        "--tool=callgrind",
        "--quiet",
        &format!(
            "--callgrind-out-file={}",
            out.join("callgrind.out").display()
        ),
    ]
    .map(str::to_owned)
    .to_vec();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let gw = rt.block_on(gateway::start(
        &repo(),
        &wasm,
        upstream_port,
        &out,
        None,
        true,
        &wrap,
        None,
    ));
    let target = Arc::new(Target {
        port: gw.port,
        path: "/mcp".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            (
                "accept".into(),
                "application/json, text/event-stream".into(),
            ),
            ("mcp-protocol-version".into(), "2025-11-25".into()),
            ("mcp-session-id".into(), gw.session.clone()),
            ("authorization".into(), format!("Bearer {}", gw.token)),
        ],
        body: Bytes::from(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": "echo", "arguments": {"text": "hello"}}})
            .to_string(),
        ),
        expect: Expect {
            status: 200,
            contains: r#""text":"hello""#,
            lacks: Some(r#""isError":true"#),
        },
    });
    let pid = gw.proc.pid().to_string();
    let (warm, _) = rt.block_on(generate::closed(&target, 1, Duration::from_secs(5)));
    assert!(
        warm.bad == 0 && warm.ok > 0,
        "warm-up: {:?}",
        warm.first_bad
    );
    control(&["-z", &pid]);
    let (tally, _) = rt.block_on(generate::closed(&target, 1, Duration::from_secs(seconds)));
    control(&["-d", &pid]);
    assert!(
        tally.bad == 0 && tally.ok > 0,
        "profiled calls: {:?}",
        tally.first_bad
    );
    let dump = dumps(&out)
        .into_iter()
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .expect("callgrind wrote a dump");
    let text = std::fs::read_to_string(&dump).expect("dump readable");
    let total: u64 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("summary: ")
                .or_else(|| l.strip_prefix("totals: "))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("the dump has a total");
    println!(
        "row (c): {} calls, {} instructions, {} instructions per call\n\
         dump: {}\n\
         annotate: callgrind_annotate --inclusive=yes {}",
        tally.ok,
        total,
        total / tally.ok,
        dump.display(),
        dump.display()
    );
}

/// The callgrind dumps in `out`.
fn dumps(out: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("callgrind.out"))
        })
        .collect()
}

fn control(args: &[&str]) {
    let status = Command::new("callgrind_control")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("callgrind_control runs");
    assert!(status.success(), "callgrind_control {args:?} failed");
}
