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
    let token = |path: &str| {
        Mint::dev(
            DEMO_AGENT,
            &format!("http://{}{path}", running.addr),
            Duration::from_secs(3600),
        )
        .sign(mint::DEV_KEY_PEM.as_bytes())
    };
    let tokens = Tokens {
        agent: token("/mcp")?,
        locked: token("/locked/mcp")?,
        admin: admin_token,
    };
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
    locked: String,
    admin: String,
}

fn banner(gw: SocketAddr, tools: SocketAddr, admin: Option<SocketAddr>, tokens: &Tokens) -> String {
    let Tokens {
        agent: token,
        locked,
        admin: admin_token,
    } = tokens;
    let call = r#"'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'"#;
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
             and sign in with that token.\n\n"
        )
    });
    format!(
        "\ntoolgate demo: the gateway in front of an example MCP tool server, both on loopback.\n\n\
         \x20 gateway      http://{gw}/mcp          route \"demo\": tools echo, add, countdown\n\
         \x20              http://{gw}/locked/mcp   route \"locked\": same tools, every call denied\n\
         \x20 tool server  http://{tools}/mcp\n\
         \x20 metrics      {metrics}\n\n\
         Dev tokens (1 h) for the workload {DEMO_AGENT}, one per route audience:\n\
         \x20 export TOKEN={token}\n\
         \x20 export LOCKED_TOKEN={locked}\n\
         More: toolgate token mint --sub spiffe://toolgate.dev/agent/me --aud http://{gw}/mcp\n\n\
         Call a tool through the gateway:\n\
         \x20 curl -s http://{gw}/mcp -H \"authorization: Bearer $TOKEN\" \\\n      {headers} \\\n      -d {call}\n\n\
         See the same call refused (an isError result the agent's model can read):\n\
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
            locked: "locked.jwt".into(),
            admin: "tgadm_x".into(),
        };
        let text = banner(addr(8080), addr(8181), Some(addr(9901)), &tokens);
        for line in [
            "export TOKEN=agent.jwt",
            "export LOCKED_TOKEN=locked.jwt",
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
