//! `toolgate demo`: the gateway with the embedded demo config in front of an
//! example MCP tool server, both on loopback, so a newcomer can make a tool
//! call through the gateway with nothing else installed.

pub mod tool_server;
mod tools;

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;

use crate::admin::auth;
use crate::config::{self, AdminToken, Role};
use crate::identify::mint::{self, Mint};
use crate::server;

/// The demo config, compiled in; `config/demo.toml` in the repository.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
const DEMO_TOOLS_PORT: &str = "8181";
/// The SPIFFE ID the demo's tokens are minted for.
pub const DEMO_AGENT: &str = "spiffe://toolgate.dev/agent/demo";

/// The shipped policy modules the demo runs, prebuilt from `policy-modules/`
/// (see `policy-modules/dist/README.md`): a machine with only Rust, without
/// the WASM target, still sees real modules decide.
const DEMO_MODULES: [(&str, &[u8]); 3] = [
    (
        "allowlist.wasm",
        include_bytes!("../policy-modules/dist/allowlist.wasm"),
    ),
    (
        "jit_grants.wasm",
        include_bytes!("../policy-modules/dist/jit_grants.wasm"),
    ),
    (
        "task_budget.wasm",
        include_bytes!("../policy-modules/dist/task_budget.wasm"),
    ),
];

pub async fn run(port: u16, tools_port: u16, admin_port: u16) -> anyhow::Result<()> {
    // Registered before anything is printed: a SIGTERM right after the
    // banner must drain, not kill.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let text = DEMO_CONFIG.replace(
        &format!("127.0.0.1:{DEMO_TOOLS_PORT}"),
        &format!("127.0.0.1:{tools_port}"),
    );
    // The demo config names dev/jwks.json; give it the embedded copy.
    let dir = std::env::temp_dir().join(format!("toolgate-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("dev")).context("demo scratch directory")?;
    std::fs::write(dir.join("dev/jwks.json"), mint::DEV_JWKS).context("demo JWKS")?;
    std::fs::create_dir_all(dir.join("policies")).context("demo scratch directory")?;
    for (name, bytes) in DEMO_MODULES {
        std::fs::write(dir.join("policies").join(name), bytes).context("demo policy module")?;
    }
    let loaded = config::load_str(&text, "config/demo.toml (embedded)", &dir);
    let mut cfg = match loaded {
        Ok(cfg) => cfg,
        Err(d) => {
            let _ = std::fs::remove_dir_all(&dir);
            anyhow::bail!("{d}");
        }
    };
    cfg.server.bind.set_port(port);
    cfg.admin.bind.set_port(admin_port);
    // A fresh admin-role token for this run: the admin API is never open.
    let admin_token = auth::generate_token()
        .map_err(|e| anyhow::anyhow!("admin token: no randomness from the OS: {e}"))?;
    cfg.admin.tokens.push(AdminToken {
        name: "demo".to_owned(),
        role: Role::Admin,
        sha256: auth::hash_token_hex(&admin_token),
    });

    let tools_addr = SocketAddr::from(([127, 0, 0, 1], tools_port));
    let tools = tool_server::start(tools_addr).await.with_context(|| {
        format!("example tool server on {tools_addr} (choose another with --tools-port)")
    })?;
    let running = server::start(&cfg).await;
    let _ = std::fs::remove_dir_all(&dir);
    let running = running.context("gateway (choose other ports with --port / --admin-port)")?;
    let token = |path: &str, task: Option<&str>| {
        let mut mint = Mint::dev(
            DEMO_AGENT,
            &format!("http://{}{path}", running.addr),
            Duration::from_secs(3600),
        );
        if let Some(task) = task {
            mint.claims.push(("task_id".to_owned(), task.to_owned()));
        }
        mint.sign(mint::DEV_KEY_PEM.as_bytes())
    };
    let (task, grant) = start_task(&running.gateway)?;
    let tokens = Tokens {
        agent: token("/mcp", None)?,
        ops: token("/ops/mcp", Some(&task))?,
        locked: token("/locked/mcp", None)?,
        admin: admin_token,
        task,
        grant,
    };
    // One call waits in the approvals inbox from the start: `add` on the
    // route "ops", which no grant of the task covers.
    park_one_call(running.addr, &tokens.ops).await;
    // A closed stdout (e.g. piped into `head`) must not take the demo down.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        banner(running.addr, tools.addr, running.admin_addr, &tokens)
    );
    let _ = out.flush();
    drop(out);

    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    running.shutdown();
    tools.shutdown();
    running.wait().await;
    Ok(())
}

/// What the banner prints for the user to paste.
struct Tokens {
    agent: String,
    /// For the route "ops", carrying the demo task's id.
    ops: String,
    locked: String,
    admin: String,
    task: String,
    grant: String,
}

/// The demo task, and its grant of 3 uses of `echo` on the route "ops"
/// for 10 minutes: (task id, grant id).
fn start_task(gateway: &crate::gateway::Gateway) -> anyhow::Result<(String, String)> {
    let snapshot = gateway.snapshot();
    let caps = || crate::tasks::Caps {
        tasks: &snapshot.tasks,
        approvals: &snapshot.approvals,
    };
    let tasks = gateway.tasks();
    let task = tasks
        .create_task(
            caps(),
            crate::tasks::NewTask {
                agent: DEMO_AGENT.to_owned(),
                issuer: None,
                on_behalf_of: None,
                purpose: "show toolgate deciding tool calls".to_owned(),
                labels: [("team".to_owned(), "demo".to_owned())].into(),
                ttl: Some("1h".to_owned()),
            },
            "demo",
        )
        .map_err(|e| anyhow::anyhow!("demo task: {e}"))?;
    let grant = tasks
        .issue_grant(
            caps(),
            crate::tasks::NewGrant {
                task_id: task.id.clone(),
                tool: "echo".to_owned(),
                route: Some("ops".to_owned()),
                constraints: Vec::new(),
                not_before: None,
                expires_at: None,
                ttl: Some("10m".to_owned()),
                max_uses: Some(3),
                reason: "the demo: echo may be called 3 times".to_owned(),
            },
            "demo",
        )
        .map_err(|e| anyhow::anyhow!("demo grant: {e}"))?;
    Ok((task.id, grant.id))
}

/// Calls `add` on the route "ops" once, so that policy parks it: the
/// approvals inbox has a call waiting. Best effort: the banner says how to
/// make the same call by hand.
async fn park_one_call(gateway: SocketAddr, token: &str) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":40}}}"#;
    let request = format!(
        "POST /ops/mcp HTTP/1.1\r\nhost: {gateway}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\naccept: application/json, text/event-stream\r\n\
         mcp-protocol-version: 2025-06-18\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(gateway).await?;
        stream.write_all(request.as_bytes()).await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "the demo could not park its example call"),
        Err(_) => tracing::warn!("the demo's example call did not finish in 10 s"),
    }
}

fn banner(gw: SocketAddr, tools: SocketAddr, admin: Option<SocketAddr>, tokens: &Tokens) -> String {
    let Tokens {
        agent: token,
        ops,
        locked,
        admin: admin_token,
        task,
        grant,
    } = tokens;
    let call = r#"'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'"#;
    let delete = r#"'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_all","arguments":{}}}'"#;
    let add = r#"'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":40}}}'"#;
    let headers =
        "-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'";
    let metrics = admin.map_or_else(
        || "(admin listener off)".to_owned(),
        |a| format!("http://{a}/metrics"),
    );
    let admin_api = admin.map_or_else(String::new, |a| {
        format!(
            "Admin API (tasks, grants, approvals) with an admin-role token made for this run\n\
             (the `toolgate` CLI reads it from TOOLGATE_ADMIN_TOKEN too):\n\
             \x20 export TOOLGATE_ADMIN_TOKEN={admin_token}\n\
             \x20 curl -s -H \"Authorization: Bearer $TOOLGATE_ADMIN_TOKEN\" http://{a}/v1/tasks\n\n\
             Operator console (approvals, tasks, grants, policy): open http://{a}/console/\n\
             and sign in with that token; the parked call waits in its inbox. Or approve it here:\n\
             \x20 cargo run --release -- approval list\n\n"
        )
    });
    format!(
        "\ntoolgate demo: the gateway in front of an example MCP tool server, both on loopback.\n\n\
         \x20 gateway      http://{gw}/mcp          route \"demo\": WASM modules allowlist + task-budget\n\
         \x20              http://{gw}/ops/mcp      route \"ops\": jit-grants, every call needs a live grant\n\
         \x20              http://{gw}/locked/mcp   route \"locked\": no policy, every call denied\n\
         \x20 tool server  http://{tools}/mcp\n\
         \x20 metrics      {metrics}\n\n\
         Dev tokens (1 h) for the workload {DEMO_AGENT}, one per route audience:\n\
         \x20 export TOKEN={token}\n\
         \x20 export OPS_TOKEN={ops}\n\
         \x20 export LOCKED_TOKEN={locked}\n\
         OPS_TOKEN names the demo task {task}, which holds\n\
         grant {grant}: 3 uses of echo on route \"ops\", for 10 minutes.\n\
         More: toolgate token mint --sub spiffe://toolgate.dev/agent/me --aud http://{gw}/mcp\n\n\
         A script of calls, one per outcome:\n\n\
         1. allowed by the allowlist module:\n\
         \x20 curl -s http://{gw}/mcp -H \"authorization: Bearer $TOKEN\" \\\n      {headers} \\\n      -d {call}\n\n\
         2. denied by the allowlist module (an isError result the agent's model can read):\n\
         \x20 curl -s http://{gw}/mcp -H \"authorization: Bearer $TOKEN\" \\\n      {headers} \\\n      -d {delete}\n\n\
         3. allowed by the task's grant, 3 times; the 4th call is parked (the grant is used up):\n\
         \x20 curl -s http://{gw}/ops/mcp -H \"authorization: Bearer $OPS_TOKEN\" \\\n      {headers} \\\n      -d {call}\n\n\
         4. parked for a human's approval (no grant covers add); one such call already waits:\n\
         \x20 curl -s http://{gw}/ops/mcp -H \"authorization: Bearer $OPS_TOKEN\" \\\n      {headers} \\\n      -d {add}\n\n\
         5. denied: the route \"locked\" has no policy:\n\
         \x20 curl -s http://{gw}/locked/mcp -H \"authorization: Bearer $LOCKED_TOKEN\" \\\n      {headers} \\\n      -d {call}\n\n\
         Without a token the gateway answers 401 and points at its metadata:\n\
         \x20 curl -si http://{gw}/mcp {headers} -d {call}\n\n\
         {admin_api}\
         Point an MCP client (Streamable HTTP) at http://{gw}/mcp with the token. Ctrl-C stops the demo.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banner_prints_every_token_and_how_to_use_it() {
        let addr = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let tokens = Tokens {
            agent: "agent.jwt".into(),
            ops: "ops.jwt".into(),
            locked: "locked.jwt".into(),
            admin: "tgadm_x".into(),
            task: "t-1".into(),
            grant: "g-1".into(),
        };
        let text = banner(addr(8080), addr(8181), Some(addr(9901)), &tokens);
        for line in [
            "export TOKEN=agent.jwt",
            "export LOCKED_TOKEN=locked.jwt",
            "export OPS_TOKEN=ops.jwt",
            "demo task t-1",
            "grant g-1",
            "export TOOLGATE_ADMIN_TOKEN=tgadm_x",
            "curl -s -H \"Authorization: Bearer $TOOLGATE_ADMIN_TOKEN\" http://127.0.0.1:9901/v1/tasks",
            "open http://127.0.0.1:9901/console/",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.trim_end().ends_with("Ctrl-C stops the demo."));
        let off = banner(addr(8080), addr(8181), None, &tokens);
        assert!(
            !off.contains("ADMIN_TOKEN"),
            "no admin listener, no admin token"
        );
    }
}
