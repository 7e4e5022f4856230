//! `load profile`: instructions per request of row (b), (c), (g) or (e),
//! counted by callgrind. On a shared, loaded machine instruction counts
//! repeat where CPU time does not. The process under test (the gateway,
//! or for (b) the bare proxy) runs under `valgrind --tool=callgrind` with
//! one worker; after a warm-up the counters are
//! zeroed, one connection sends the row's request for a while, and the
//! counters are dumped: the dump's total divided by the requests answered
//! is the figure. The dump stays in `target/load/profile/` for
//! `callgrind_annotate`.

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

/// The rows the profile mode can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Row {
    /// Row (c)'s call through the bare proxy: the baseline's count.
    B,
    /// An allowed `tools/call`.
    C,
    /// Row (c) with the decision log on.
    G,
    /// A `tools/list` of 100 tools filtered by policy.
    E,
}

impl Row {
    /// The row named by `--row` (`c`, `e`, `g`).
    pub(crate) fn parse(key: &str) -> Option<Self> {
        match key {
            "b" => Some(Self::B),
            "c" => Some(Self::C),
            "g" => Some(Self::G),
            "e" => Some(Self::E),
            _ => None,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::B => "b",
            Self::C => "c",
            Self::G => "g",
            Self::E => "e",
        }
    }

    /// The request the row sends, and what its answer must hold.
    fn request(self) -> (Bytes, Expect) {
        match self {
            Self::B | Self::C | Self::G => (
                Bytes::from(
                    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                           "params": {"name": "echo", "arguments": {"text": "hello"}}})
                    .to_string(),
                ),
                Expect {
                    status: 200,
                    contains: r#""text":"hello""#,
                    lacks: Some(r#""isError":true"#),
                },
            ),
            // As in the full run (rounds.rs).
            Self::E => (
                Bytes::from(r#"{"jsonrpc":"2.0","id":8,"method":"tools/list","params":{}}"#),
                Expect {
                    status: 200,
                    contains: r#""name":"tool_011""#,
                    lacks: Some(r#""name":"forbidden""#),
                },
            ),
        }
    }
}

pub(crate) fn run(seconds: u64, row: Row) {
    let audit = row == Row::G;
    let out = repo().join("target/load/profile");
    std::fs::create_dir_all(&out).expect("profile folder");
    for stale in dumps(&out) {
        let _ = std::fs::remove_file(stale);
    }
    let _ = std::fs::remove_dir_all(out.join("audit"));
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
    // Row (b) profiles the bare proxy; the gateway (not profiled then)
    // still runs, for the session and token that (b) sends as (c) does.
    let bare = row == Row::B;
    let gw = rt.block_on(gateway::start(
        &repo(),
        &wasm,
        upstream_port,
        &out,
        None,
        true,
        if bare { &[] } else { &wrap },
        audit.then(|| out.join("audit")).as_deref(),
        None,
    ));
    let proxy = bare.then(|| {
        let mut cmd = Command::new(&wrap[0]);
        cmd.args(&wrap[1..])
            .arg(&me)
            .args(["proxy", "--upstream", &upstream_port.to_string()])
            .env("TOKIO_WORKER_THREADS", "1");
        procs::spawn_listening("bare proxy", cmd)
    });
    let (body, expect) = row.request();
    let target = Arc::new(Target {
        port: proxy.as_ref().map_or(gw.port, |(_, port)| *port),
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
        body,
        expect,
    });
    let pid = proxy
        .as_ref()
        .map_or(gw.proc.pid(), |(p, _)| p.pid())
        .to_string();
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
        "row ({}): {} requests, {} instructions, {} instructions per request\n\
         dump: {}\n\
         annotate: callgrind_annotate --inclusive=yes {}",
        row.key(),
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
