//! The real MCP peers from `tests/peers/`: the Python SDK server and the
//! Python and TypeScript SDK clients (both TypeScript SDK lines), installed
//! once per test run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// Runs `tests/peers/setup.sh` once per process (it is itself idempotent).
pub fn setup() {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = DONE.get_or_init(|| {
        let out = std::process::Command::new("bash")
            .arg(peers_dir().join("setup.sh"))
            .output()
            .map_err(|e| format!("cannot run setup.sh: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tests/peers/setup.sh failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn python() -> PathBuf {
    peers_dir().join(".venv/bin/python")
}

/// The Python SDK's MCP server (both eras) at `/mcp`, with a header log.
pub struct PyServer {
    child: Child,
    pub port: u16,
    header_log: PathBuf,
    _dir: tempfile::TempDir,
}

impl PyServer {
    pub async fn start(extra: &[&str]) -> Self {
        setup();
        let dir = tempfile::tempdir().expect("tempdir");
        let header_log = dir.path().join("headers.jsonl");
        let mut child = Command::new(python())
            .arg(peers_dir().join("mcp_server.py"))
            .args(["--port", "0", "--header-log"])
            .arg(&header_log)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("python MCP server starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    return port.trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("python MCP server prints LISTENING <port>");
        Self {
            child,
            port,
            header_log,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Sends a signal by name (`KILL`, `STOP`, `CONT`) with `kill`.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().expect("the server is still running");
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Waits (up to 10 s) until the process is gone.
    pub async fn wait_gone(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("the server exits within 10s")
            .expect("reaped");
    }

    /// Every HTTP request the server received: `{method, path, headers}`.
    pub fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.header_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Runs the Python SDK client; `Ok` is its JSON output, `Err` its stderr.
pub async fn py_client(args: &[&str]) -> Result<Value, String> {
    setup();
    run(Command::new(python())
        .arg(peers_dir().join("mcp_client.py"))
        .args(args))
    .await
}

/// Runs the TypeScript SDK client (legacy era).
pub async fn ts_client(args: &[&str]) -> Result<Value, String> {
    setup();
    run(Command::new("node")
        .arg(peers_dir().join("mcp_client.mjs"))
        .args(args))
    .await
}

/// Runs the TypeScript SDK v2 client (`@modelcontextprotocol/client`),
/// pinned to the 2026-07-28 era.
pub async fn ts_modern_client(args: &[&str]) -> Result<Value, String> {
    setup();
    run(Command::new("node")
        .arg(peers_dir().join("mcp_client_v2.mjs"))
        .args(args))
    .await
}

async fn run(cmd: &mut Command) -> Result<Value, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        cmd.stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await
    .map_err(|_| "client timed out".to_owned())?
    .map_err(|e| format!("cannot run client: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        return Err(stderr);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "client output is not JSON ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
