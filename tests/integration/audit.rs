//! The decision log through the whole gateway: the exact line of each kind
//! of decision and event (real JWT-SVIDs, the real `jit-grants` module, a
//! trapping module), masked arguments nowhere in clear, `toolgate audit
//! verify` (the real binary) on a log that was rotated, and what calls get
//! while the log's disk fails.

mod disk_full;
mod failure;
mod groups;
mod lines;
mod live;
mod masking;
mod process;
mod reports;
mod trace;
mod verify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use toolgate::audit::line::Body;
use toolgate::audit::read::{Record, Records};

use crate::common::upstream::FakeUpstream;
use crate::policy::tools_upstream;

/// Waits until the log in `dir` holds `n` verified records (or 10 s).
pub(crate) async fn records(dir: &Path, n: usize) -> Vec<Record> {
    records_until(dir, |all| all.len() >= n, &format!("{n} records")).await
}

/// Waits until the log in `dir` holds `n` records of `call`-phase
/// decisions (a request's records reach the log after its answer).
pub(crate) async fn call_decisions(dir: &Path, n: usize) -> Vec<Record> {
    let calls = |all: &[Record]| {
        all.iter()
            .filter(|r| matches!(&r.body, Body::Decision(d) if d.phase == "call"))
            .count()
    };
    records_until(dir, |all| calls(all) >= n, &format!("{n} call decisions")).await
}

async fn records_until(dir: &Path, done: impl Fn(&[Record]) -> bool, wanted: &str) -> Vec<Record> {
    let mut last = Vec::new();
    for _ in 0..200 {
        let read: Result<Vec<Record>, _> = Records::open(&[dir.to_path_buf()])
            .expect("log dir reads")
            .collect();
        if let Ok(all) = read {
            if done(&all) {
                return all;
            }
            last = all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{} records after 10s, wanted {wanted}: {last:#?}",
        last.len()
    );
}

/// The records of `dir` that are not the log's own lines.
pub(crate) fn events(records: &[Record]) -> Vec<&Record> {
    records
        .iter()
        .filter(|r| !matches!(r.body, Body::Log(_)))
        .collect()
}

/// A record's line as JSON, without what changes from run to run: its
/// id, time, hashes, seq, latencies and trace id; `ids` are replaced by
/// their placeholders wherever they appear.
pub(crate) fn normalized(record: &Record, ids: &[(&str, &str)]) -> Value {
    let line = toolgate::audit::line::Line {
        v: 1,
        seq: record.seq,
        id: record.id.as_str().into(),
        ts: record.ts.as_str().into(),
        body: record.body.clone(),
        prev: "".into(),
        hash: String::new(),
    };
    let mut text = serde_json::to_string(&line).unwrap();
    for (id, placeholder) in ids {
        text = text.replace(id, placeholder);
    }
    let mut v: Value = serde_json::from_str(&text).unwrap();
    let obj = v.as_object_mut().unwrap();
    for key in ["id", "ts", "prev", "seq", "latency_us", "trace_id"] {
        obj.remove(key);
    }
    if let Some(g) = obj.get_mut("grant").and_then(Value::as_object_mut) {
        g.remove("expires_at_ms");
    }
    v
}

/// `toolgate audit verify` (the real binary): success and its output.
pub(crate) async fn verify_cli(paths: &[PathBuf]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("audit")
        .arg("verify")
        .args(paths)
        .output()
        .await
        .expect("toolgate runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// An upstream answering every tools/call with "ok".
pub(crate) async fn upstream() -> FakeUpstream {
    tools_upstream().await
}
