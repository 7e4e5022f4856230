//! The gateway under soak, as users run it: `toolgate serve` with a config
//! file, default log settings (stderr to a file), ES256 JWT-SVIDs of the
//! published dev issuer, the shipped `allowlist` and `jit-grants` modules
//! (prebuilt in `policy-modules/dist/`), an on-disk task store, and the
//! decision log on disk with rotation.
//!
//! Routes, all to the same upstream:
//! - `tools` (`/mcp`): `allowlist` + `jit-grants`; the main task holds an
//!   unlimited grant of every tool, so `echo` and `stream` are allowed and
//!   `forbidden` is denied by the allowlist;
//! - `approve` (`/approve/mcp`): the same modules, tasks without grants, so
//!   every call is parked for approval and answered at once (retry later);
//! - `held` (`/held/mcp`): the same, with `approval_wait`: a parked call is
//!   held open until an operator answers;
//! - `churn` (`/churn/mcp`): `jit-grants` with `missing = "deny"`: a call is
//!   allowed exactly while a live grant covers it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use toolgate::identify::mint::{self, Mint};

use super::Plan;
use super::client::Conn;
use super::procs::{self, Proc};

pub(crate) const AGENT: &str = "spiffe://toolgate.dev/agent/soak";
pub(crate) const PUBLIC: &str = "http://soak.local";
const ADMIN_TOKEN: &str = "tgadm_soak-test-not-a-secret";
/// How long the agents' tokens live: several are minted during a run.
const TOKEN_TTL: Duration = Duration::from_secs(900);

/// A running gateway and the main task every plain call runs in.
pub(crate) struct Gateway {
    pub(crate) proc: Proc,
    pub(crate) port: u16,
    pub(crate) admin: u16,
    /// A token of the main task (unlimited grant of `*`) for route `tools`.
    pub(crate) token: String,
}

fn config(plan: &Plan, port: u16, admin: u16, upstream: u16) -> String {
    let out = &plan.out;
    let dist = super::repo().join("policy-modules/dist");
    let route = |name: &str, path: &str, extra: &str| {
        format!(
            "[[routes]]\nname = \"{name}\"\npath = \"{path}\"\n\
             upstream = \"http://127.0.0.1:{upstream}/mcp\"\n{extra}\
             [routes.auth]\nissuers = [\"dev\"]\n\n"
        )
    };
    format!(
        "[server]\nbind = \"127.0.0.1:{port}\"\npublic_url = \"{PUBLIC}\"\ndrain_timeout = \"1s\"\n\n\
         [admin]\nbind = \"127.0.0.1:{admin}\"\n\n\
         [[admin.tokens]]\nname = \"soak\"\nrole = \"operator\"\nsha256 = \"{hash}\"\n\n\
         [[issuers]]\nname = \"dev\"\nissuer = \"{issuer}\"\nmode = \"spiffe\"\n\
         trust_domains = [\"toolgate.dev\"]\njwks_file = \"{jwks}\"\ntask_claim = \"task_id\"\n\n\
         [policy_limits]\nwatch = false\ncache_dir = \"{cache}\"\n{deadline}\n\
         [[policies]]\nname = \"allowlist\"\nmodule = \"{allowlist}\"\n\
         [policies.config]\nrules = [{{ subjects = [\"spiffe://toolgate.dev/agent/*\"], tools = [\"echo\", \"stream\", \"tool_*1\"] }}]\n\n\
         [[policies]]\nname = \"jit-grants\"\nmodule = \"{jit}\"\nroutes = [\"tools\", \"approve\", \"held\"]\n\n\
         [[policies]]\nname = \"jit-deny\"\nmodule = \"{jit}\"\nroutes = [\"churn\"]\n\
         [policies.config]\nmissing = \"deny\"\n\n\
         {tools}{approve}{held}{churn}\
         [tasks]\nstore = \"{store}\"\nretention = \"5s\"\nsweep_interval = \"1s\"\n\n\
         [approvals]\ngrant_ttl = \"30s\"\n\n\
         [audit]\ndir = \"{audit}\"\nmax_file_size = 8388608\nretain = 4\n",
        hash = toolgate::admin::auth::hash_token_hex(ADMIN_TOKEN),
        issuer = mint::DEV_ISSUER,
        jwks = super::repo().join("config/dev/jwks.json").display(),
        cache = out.join("module-cache").display(),
        deadline = plan
            .policy_deadline
            .as_ref()
            .map(|d| format!("deadline = \"{d}\"\nrequest_budget = \"5s\"\n"))
            .unwrap_or_default(),
        allowlist = dist.join("allowlist.wasm").display(),
        jit = dist.join("jit_grants.wasm").display(),
        tools = route("tools", "/mcp", ""),
        approve = route("approve", "/approve/mcp", ""),
        held = route("held", "/held/mcp", "approval_wait = \"20s\"\n"),
        churn = route("churn", "/churn/mcp", ""),
        store = out.join("tasks.redb").display(),
        audit = out.join("audit").display(),
    )
}

/// Starts `toolgate serve` (a fresh store and log in `out`) in front of the
/// upstream on `upstream`; creates the main task and its grant.
pub(crate) async fn start(plan: &Plan, upstream: u16) -> Gateway {
    let out = &plan.out;
    for stale in ["tasks.redb", "audit"] {
        let path = out.join(stale);
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_dir_all(&path);
    }
    let (port, admin) = (procs::free_port(), procs::free_port());
    let path = out.join("gateway.toml");
    std::fs::write(&path, config(plan, port, admin, upstream)).expect("gateway config");
    // Fill the compiled-module cache first (`toolgate check` compiles as
    // `serve` does), so that the gateway under test starts as a restarted
    // one does. Compiling in-process leaves Cranelift's working memory in
    // the heap, and how much of it the allocator hands back during the run
    // varies: from a cold cache RSS sat at 120–150 MiB and drifted by up
    // to ±11 %, from a warm one at ~80 MiB within ±4 % — the drift that the
    // flatness check would read as a leak.
    let check = Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("toolgate check runs");
    assert!(
        check.status.success(),
        "toolgate check on the soak config failed:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_toolgate"));
    cmd.arg("serve").arg("--config").arg(&path);
    // Production log settings: the defaults, stderr to a file.
    cmd.env_remove("TOOLGATE_LOG").env_remove("RUST_LOG");
    let mut proc = procs::spawn_logged("toolgate", cmd, &out.join("gateway.stderr.log"));
    // Compiling the modules can take a while in a debug build.
    procs::wait_port(&mut proc, port, Duration::from_secs(600));
    procs::wait_port(&mut proc, admin, Duration::from_secs(30));

    let mut gw = Gateway {
        proc,
        port,
        admin,
        token: String::new(),
    };
    let mut conn = Conn::new(admin);
    let task = gw.new_task(&mut conn, "main").await.expect("main task");
    let grant = gw
        .admin_call(
            &mut conn,
            Method::POST,
            "/v1/grants",
            Some(
                json!({"task_id": task, "tool": "*", "route": "tools", "ttl": "6h",
                        "reason": "soak: the main task may call every tool"}),
            ),
        )
        .await
        .expect("grant issued");
    assert_eq!(grant.0, 201, "grant issued: {}", grant.1);
    gw.token = token("/mcp", &task);
    gw.open_session(&mut Conn::new(port), "/mcp", &gw.token)
        .await
        .expect("a session on /mcp");
    gw
}

/// A dev JWT-SVID of [`AGENT`] for the route at `path`, in `task`.
pub(crate) fn token(path: &str, task: &str) -> String {
    let mut mint = Mint::dev(AGENT, &format!("{PUBLIC}{path}"), TOKEN_TTL);
    mint.claims.push(("task_id".into(), task.to_owned()));
    mint.sign(mint::DEV_KEY_PEM.as_bytes())
        .expect("dev token signs")
}

/// The headers of an MCP request with `token`.
pub(crate) fn mcp_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".into()),
        ("accept", "application/json, text/event-stream".into()),
        ("mcp-protocol-version", "2025-11-25".into()),
        ("mcp-session-id", super::upstream::SESSION.into()),
        ("authorization", format!("Bearer {token}")),
    ]
}

impl Gateway {
    /// One admin API call: the status and the JSON answer.
    pub(crate) async fn admin_call(
        &self,
        conn: &mut Conn,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let headers = [
            ("authorization", format!("Bearer {ADMIN_TOKEN}")),
            ("content-type", "application/json".into()),
        ];
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let answer = conn.send(method, path, &headers, body).await?;
        Ok((answer.status, answer.json()))
    }

    /// Creates a task of [`AGENT`]; returns its id.
    pub(crate) async fn new_task(&self, conn: &mut Conn, purpose: &str) -> Result<String, String> {
        let (status, task) = self
            .admin_call(
                conn,
                Method::POST,
                "/v1/tasks",
                Some(json!({"agent": AGENT, "purpose": format!("soak: {purpose}"), "ttl": "6h"})),
            )
            .await?;
        match task["task"]["id"].as_str() {
            Some(id) if status == 201 => Ok(id.to_owned()),
            _ => Err(format!("creating a task: HTTP {status} {task}")),
        }
    }

    /// `initialize` on the route at `path` with `token`: the gateway binds
    /// the upstream's session to the caller.
    pub(crate) async fn open_session(
        &self,
        conn: &mut Conn,
        path: &str,
        token: &str,
    ) -> Result<(), String> {
        let body = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "toolgate-soak", "version": "1"}}});
        let mut headers = mcp_headers(token);
        headers.retain(|(k, _)| *k != "mcp-session-id");
        let answer = conn
            .send(Method::POST, path, &headers, Bytes::from(body.to_string()))
            .await?;
        if answer.status == 200 && answer.headers.contains_key("mcp-session-id") {
            Ok(())
        } else {
            Err(format!("initialize on {path}: {}", answer.brief()))
        }
    }
}

/// Lines the gateway logged at ERROR level, or about a panic.
pub(crate) fn logged_errors(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("gateway.stderr.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains("panicked"))
        .map(|l| l.chars().take(400).collect())
        .collect()
}
