//! `toolgate demo`: the gateway with the embedded demo config in front of an
//! example MCP tool server, both on loopback, so a newcomer can make a tool
//! call through the gateway with nothing else installed.

pub mod tool_server;

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context as _;

use crate::config;
use crate::server;

/// The demo config, compiled in; `config/demo.toml` in the repository.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");
const DEMO_TOOLS_PORT: &str = "8181";

pub async fn run(port: u16, tools_port: u16, admin_port: u16) -> anyhow::Result<()> {
    let text = DEMO_CONFIG.replace(
        &format!("127.0.0.1:{DEMO_TOOLS_PORT}"),
        &format!("127.0.0.1:{tools_port}"),
    );
    let mut cfg = config::load_str(&text, "config/demo.toml (embedded)", Path::new("."))
        .map_err(|d| anyhow::anyhow!("{d}"))?;
    cfg.server.bind.set_port(port);
    cfg.admin.bind.set_port(admin_port);

    let tools_addr = SocketAddr::from(([127, 0, 0, 1], tools_port));
    let tools = tool_server::start(tools_addr).await.with_context(|| {
        format!("example tool server on {tools_addr} (choose another with --tools-port)")
    })?;
    let running = server::start(&cfg)
        .await
        .context("gateway (choose other ports with --port / --admin-port)")?;
    println!("{}", banner(running.addr, tools.addr, running.admin_addr));

    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate() => {}
    }
    running.shutdown();
    tools.shutdown();
    running.wait().await;
    Ok(())
}

async fn terminate() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut s) => {
            s.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

fn banner(gw: SocketAddr, tools: SocketAddr, admin: Option<SocketAddr>) -> String {
    let call = r#"'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}'"#;
    let headers =
        "-H 'content-type: application/json' -H 'accept: application/json, text/event-stream'";
    let metrics = admin.map_or_else(
        || "(admin listener off)".to_owned(),
        |a| format!("http://{a}/metrics"),
    );
    format!(
        "\ntoolgate demo: the gateway in front of an example MCP tool server, both on loopback.\n\n\
         \x20 gateway      http://{gw}/mcp          route \"demo\": tools echo, add, countdown\n\
         \x20              http://{gw}/locked/mcp   route \"locked\": same tools, every call denied\n\
         \x20 tool server  http://{tools}/mcp\n\
         \x20 metrics      {metrics}\n\n\
         Call a tool through the gateway:\n\
         \x20 curl -s http://{gw}/mcp {headers} \\\n      -d {call}\n\n\
         See the same call refused (an isError result the agent's model can read):\n\
         \x20 curl -s http://{gw}/locked/mcp {headers} \\\n      -d {call}\n\n\
         Point an MCP client (Streamable HTTP) at http://{gw}/mcp. Ctrl-C stops the demo.\n"
    )
}
