//! Rows (c)–(f): toolgate as users run it — `toolgate serve` with a config
//! file, default log settings (stderr to a file), ES256 JWT-SVIDs of the
//! published dev issuer, the `allowlist` and `jit-grants` modules, and a
//! task with a live unlimited grant issued through the admin API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;

use toolgate::identify::mint::{self, Mint};

use super::procs::{self, Proc};

pub(crate) const AGENT: &str = "spiffe://toolgate.dev/agent/bench";
pub(crate) const AUDIENCE: &str = "http://bench.local/mcp";
const ADMIN_TOKEN: &str = "tgadm_load-benchmark-not-a-secret";

/// The module crates the gateway's policy uses.
pub(crate) const MODULES: [&str; 2] = ["allowlist", "jit-grants"];

/// The policy of every gateway row (and of the scale rows): callers of
/// toolgate.dev may call `echo`, `stream` and the `tool_*1` tools, each
/// only under a live grant of their task.
pub(crate) fn policy_toml(wasm: &Path) -> String {
    format!(
        "[policy_limits]\nwatch = false\n\n\
         [[policies]]\nname = \"allowlist\"\nmodule = \"{}\"\n\
         [policies.config]\nrules = [{{ subjects = [\"spiffe://toolgate.dev/agent/*\"], tools = [\"echo\", \"stream\", \"tool_*1\"] }}]\n\n\
         [[policies]]\nname = \"jit-grants\"\nmodule = \"{}\"\n",
        wasm.join("allowlist.wasm").display(),
        wasm.join("jit_grants.wasm").display(),
    )
}

/// Under a profiler time runs some 50× slower: the policy's deadline and
/// request budget are widened so that no decision is refused for time (a
/// refused one skips its modules, and the count would not be the row's).
fn profiled_limits(policy: &str, wrap: &[String]) -> String {
    if wrap.is_empty() {
        return policy.to_owned();
    }
    policy.replace(
        "[policy_limits]\n",
        "[policy_limits]\ndeadline = \"1s\"\nrequest_budget = \"60s\"\n",
    )
}

/// Builds the policy modules (release, wasm32; cargo caches the build).
pub(crate) fn build_modules(repo: &Path) -> PathBuf {
    let dir = repo.join("policy-modules");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&dir)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET");
    for m in MODULES {
        cmd.args(["-p", m]);
    }
    let out = cmd.output().expect("cargo runs");
    assert!(
        out.status.success(),
        "building the policy modules failed (rustup target add wasm32-unknown-unknown):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("target/wasm32-unknown-unknown/release")
}

/// A running gateway and what a caller needs to use it.
pub(crate) struct Gateway {
    pub(crate) proc: Proc,
    pub(crate) port: u16,
    pub(crate) admin: u16,
    pub(crate) token: String,
    pub(crate) session: String,
}

/// Starts `toolgate serve` in front of `upstream`, pinned to `cpu`, with
/// one tokio worker when `one_worker`, under `wrap` (a profiler's command
/// line) when not empty, writing the decision log to `audit` when given,
/// running `bin` instead of this build's binary when given (`LOAD_C_BIN`);
/// sets up the task, grant and session.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    repo: &Path,
    wasm: &Path,
    upstream: u16,
    out: &Path,
    cpu: Option<usize>,
    one_worker: bool,
    wrap: &[String],
    audit: Option<&Path>,
    bin: Option<&Path>,
) -> Gateway {
    let (port, admin) = (procs::free_port(), procs::free_port());
    let config = format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"http://bench.local\"\ndrain_timeout = \"1s\"\n\n\
         [admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[admin.tokens]]\nname = \"bench\"\nrole = \"admin\"\nsha256 = \"{hash}\"\n\n\
         [[issuers]]\nname = \"dev\"\nissuer = \"{issuer}\"\nmode = \"spiffe\"\n\
         trust_domains = [\"toolgate.dev\"]\njwks_file = \"{jwks}\"\ntask_claim = \"task_id\"\n\n\
         {policy}\n\
         [[routes]]\nname = \"tools\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:{upstream}/mcp\"\n\
         [routes.auth]\nissuers = [\"dev\"]\n{audit}",
        // `LOAD_AUDIT_TOML`: more `[audit]` settings to try under load
        // (e.g. `batch_interval = "10ms"`).
        audit = audit.map_or(String::new(), |dir| format!(
            "\n[audit]\ndir = {}\n{}\n",
            toml::Value::String(dir.display().to_string()),
            std::env::var("LOAD_AUDIT_TOML").unwrap_or_default()
        )),
        hash = toolgate::admin::auth::hash_token_hex(ADMIN_TOKEN),
        issuer = mint::DEV_ISSUER,
        jwks = repo.join("config/dev/jwks.json").display(),
        policy = profiled_limits(&policy_toml(wasm), wrap),
    );
    let name = match (audit, bin) {
        (None, _) => "gateway",
        (Some(_), None) => "gateway-audit",
        (Some(_), Some(_)) => "gateway-base-audit",
    };
    let path = out.join(format!("{name}.toml"));
    std::fs::write(&path, config).expect("gateway config");
    let toolgate = bin.unwrap_or(Path::new(env!("CARGO_BIN_EXE_toolgate")));
    let mut cmd = match wrap.split_first() {
        Some((program, args)) => {
            let mut cmd = procs::command(Path::new(program), cpu);
            cmd.args(args).arg(toolgate);
            cmd
        }
        None => procs::command(toolgate, cpu),
    };
    cmd.arg("serve").arg("--config").arg(&path);
    // Production log settings: the defaults, stderr to a file.
    cmd.env_remove("TOOLGATE_LOG").env_remove("RUST_LOG");
    if one_worker {
        cmd.env("TOKIO_WORKER_THREADS", "1");
    }
    let mut proc = procs::spawn_logged("toolgate", cmd, &out.join(format!("{name}.stderr.log")));
    // Compiling the modules can take a while in a debug build (or under a profiler).
    procs::wait_port(&mut proc, port, Duration::from_secs(600));
    procs::wait_port(&mut proc, admin, Duration::from_secs(30));

    let (status, task) = admin_call(
        admin,
        "/v1/tasks",
        Some(json!({"agent": AGENT, "purpose": "load benchmark", "ttl": "6h"})),
    )
    .await;
    assert_eq!(status, 201, "task created: {task}");
    let task = task["task"]["id"].as_str().expect("task id").to_owned();
    let (status, grant) = admin_call(
        admin,
        "/v1/grants",
        Some(json!({"task_id": task, "tool": "*", "ttl": "6h", "reason": "load benchmark"})),
    )
    .await;
    assert_eq!(status, 201, "grant issued: {grant}");

    let mut mint = Mint::dev(AGENT, AUDIENCE, Duration::from_secs(6 * 3600));
    mint.claims.push(("task_id".into(), task));
    let token = mint
        .sign(mint::DEV_KEY_PEM.as_bytes())
        .expect("dev token signs");
    let session = open_session(port, &token).await;
    Gateway {
        proc,
        port,
        admin,
        token,
        session,
    }
}

/// `initialize` through the gateway: the session every later call names.
async fn open_session(port: u16, token: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "toolgate-load", "version": "1"}}});
    let req = Request::post("/mcp")
        .header("host", format!("127.0.0.1:{port}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let (status, headers, body) = send(port, req).await;
    assert_eq!(
        status,
        200,
        "initialize: {}",
        String::from_utf8_lossy(&body)
    );
    headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("the upstream opened a session")
        .to_owned()
}

/// One admin API call (POST with a body, or POST without one).
pub(crate) async fn admin_call(port: u16, path: &str, body: Option<Value>) -> (u16, Value) {
    let req = Request::post(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            body.map(|b| b.to_string()).unwrap_or_default(),
        )))
        .expect("request");
    let (status, _, body) = send(port, req).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// A `GET` on the admin API: status and JSON body.
pub(crate) async fn admin_get(port: u16, path: &str) -> (u16, Value) {
    let req = Request::get(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .body(Full::new(Bytes::new()))
        .expect("request");
    let (status, _, body) = send(port, req).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn send(port: u16, req: Request<Full<Bytes>>) -> (u16, http::HeaderMap, Bytes) {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.expect("answer");
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}
