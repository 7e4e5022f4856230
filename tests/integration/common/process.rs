//! The real `toolgate` binary: a `serve` process on ports the OS picks
//! (read back from its "toolgate listening" log line), its admin API with
//! known tokens, and one-shot CLI runs. A process started here is killed
//! when dropped. `toolgate demo` is in `demo.rs`.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::Value;

/// An operator-role admin token (its SHA-256 is in the config).
pub const OPERATOR_TOKEN: &str = "tg-test-operator-2f1c9a7e5b3d";
/// A viewer-role admin token.
pub const VIEWER_TOKEN: &str = "tg-test-viewer-8d4e6b2a0c1f";

pub const BIN: &str = env!("CARGO_BIN_EXE_toolgate");

/// A directory with a config (listeners on port 0, an on-disk task store,
/// two admin tokens, one route) that survives restarts of the server.
pub struct ServeDir {
    dir: tempfile::TempDir,
}

impl ServeDir {
    pub fn new() -> Self {
        Self::with("")
    }

    /// With more TOML appended (tables such as `[admin.tls]`).
    pub fn with(extra: &str) -> Self {
        Self::draining("1s", extra)
    }

    /// Like [`ServeDir::with`], with `server.drain_timeout = drain`.
    pub fn draining(drain: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("tasks.redb");
        let text = format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"{drain}\"\n\n\
             [admin]\nbind = \"127.0.0.1:0\"\n\n\
             [[admin.tokens]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{}\"\n\n\
             [[admin.tokens]]\nname = \"watcher\"\nrole = \"viewer\"\nsha256 = \"{}\"\n\n\
             [tasks]\nstore = {}\nsweep_interval = \"100ms\"\n\n\
             [[routes]]\nname = \"tools\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:9/mcp\"\n\n\
             {extra}",
            sha256_hex(OPERATOR_TOKEN),
            sha256_hex(VIEWER_TOKEN),
            toml::Value::String(store.display().to_string()),
        );
        std::fs::write(dir.path().join("toolgate.toml"), text).expect("write config");
        Self { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("toolgate.toml")
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn start(&self) -> ServerProcess {
        ServerProcess::start(&self.config())
    }

    /// Starts it with `threads` async worker threads (tokio's
    /// `TOKIO_WORKER_THREADS`; one a core by default), for a test whose
    /// bounds assume how many there are.
    pub fn start_with_threads(&self, threads: usize) -> ServerProcess {
        let mut command = Command::new(BIN);
        command
            .args(SERVE_ARGS)
            .arg(self.config())
            .env("TOKIO_WORKER_THREADS", threads.to_string());
        ServerProcess::spawn(command)
    }

    /// Starts it with SIGXFSZ ignored, so that a file-size limit set later
    /// ([`ServerProcess::limit_file_size`]) fails its writes with EFBIG, as
    /// a full disk fails them with ENOSPC, instead of killing it.
    pub fn start_sizable(&self) -> ServerProcess {
        let mut command = Command::new("sh");
        command
            .args(["-c", "trap '' XFSZ; exec \"$0\" \"$@\"", BIN])
            .args(SERVE_ARGS)
            .arg(self.config());
        ServerProcess::spawn(command)
    }
}

/// `toolgate serve` with JSON logs; the config path follows.
const SERVE_ARGS: [&str; 6] = ["serve", "--log-format", "json", "--log", "info", "--config"];

/// A running `toolgate serve`.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts the binary and waits (up to 30 s) until it says where it listens.
    pub fn start(config: &Path) -> Self {
        let mut command = Command::new(BIN);
        command.args(SERVE_ARGS).arg(config);
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> Self {
        let mut child = command
            .env_remove("TOOLGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("toolgate starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = Arc::clone(&log);
        // Keeps reading to the end so the process never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addrs) = listening(&line) {
                    let _ = tx.send(addrs);
                }
                lines.lock().unwrap().push(line);
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok((addr, admin)) => Self {
                child,
                addr,
                admin,
                log,
            },
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "toolgate did not say where it listens ({e}); its log:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        }
    }

    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// The process's log once `done` holds for it (within 10 s; panics
    /// with the log otherwise): for lines written late, such as the
    /// buffered decision lines.
    pub async fn log_until(&self, done: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            let log = self.log();
            if done(&log) {
                return log;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the awaited line did not come within 10 s:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal by name (`HUP`, `TERM`, ...) with `kill`.
    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Waits up to `within` for the process to exit on its own; its status,
    /// or `None` if it is still running.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        exit_within(&mut self.child, within)
    }

    /// Sets (or with `None` lifts) the process's file-size limit: a write
    /// at or past `bytes` into any file then fails (`prlimit`, util-linux).
    pub fn limit_file_size(&self, bytes: Option<u64>) {
        let soft = bytes.map_or_else(|| "unlimited".to_owned(), |b| b.to_string());
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(self.child.id().to_string())
            .arg(format!("--fsize={soft}:unlimited"))
            .status()
            .expect("prlimit runs");
        assert!(status.success(), "prlimit --fsize={soft} failed");
    }

    /// SIGKILL: no drain, no shutdown hooks, no flush.
    pub fn kill9(mut self) {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("reaped");
        assert!(!status.success(), "killed, not exited: {status:?}");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends process `pid` a signal by name (`HUP`, `TERM`, ...) with `kill`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} failed");
}

/// Waits up to `within` for `child` to exit on its own; its status, or
/// `None` if it is still running.
pub fn exit_within(child: &mut Child, within: Duration) -> Option<ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `(addr, admin)` from the JSON "toolgate listening" log line.
pub fn listening(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let event: Value = serde_json::from_str(line).ok()?;
    let fields = event.get("fields").unwrap_or(&event);
    if fields.get("message")?.as_str()? != "toolgate listening" {
        return None;
    }
    let addr = socket_in(fields.get("addr")?.as_str()?)?;
    let admin = socket_in(fields.get("admin")?.as_str()?)?;
    Some((addr, admin))
}

/// The socket address inside `127.0.0.1:9901` or `Some(127.0.0.1:9901)`.
fn socket_in(text: &str) -> Option<SocketAddr> {
    let inner = text
        .strip_prefix("Some(")
        .and_then(|t| t.strip_suffix(')'))
        .unwrap_or(text);
    inner.trim_matches('"').parse().ok()
}

pub fn sha256_hex(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// One admin API request with a bearer token; the answer's status and JSON.
pub async fn admin(
    server: &ServerProcess,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    let body = match body {
        Some(b) => {
            headers.push(("content-type", "application/json"));
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    let url = format!("{}{path}", server.admin_url());
    let reply = super::send(method, &url, &headers, body).await;
    let json = if reply.body.is_empty() {
        Value::Null
    } else {
        reply.json()
    };
    (reply.status, json)
}

/// What one CLI invocation did.
#[derive(Debug)]
pub struct CliRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// The run succeeded; its stdout.
    pub fn ok(&self) -> &str {
        assert!(
            self.status.success(),
            "toolgate failed ({:?}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(self.ok())
            .unwrap_or_else(|e| panic!("--json output is not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `toolgate <args>` with only the `env` given for the admin connection.
pub async fn toolgate(args: &[&str], env: &[(&str, &str)]) -> CliRun {
    let mut command = tokio::process::Command::new(BIN);
    command
        .args(args)
        .env_remove("TOOLGATE_ADMIN_URL")
        .env_remove("TOOLGATE_ADMIN_TOKEN")
        .env_remove("TOOLGATE_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("toolgate CLI finishes within 60s")
        .expect("toolgate CLI runs");
    CliRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
