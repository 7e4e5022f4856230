//! Command line: `serve`, `check`, `demo`, `token mint`, and the operator
//! commands `task`, `grant`, `approval` (see [`ops`]). Start-up errors are
//! reported here and turned into exit codes; nothing below this layer prints.

pub mod admin_token;
pub mod audit;
pub mod check;
pub mod ops;
pub mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use crate::config;
use crate::demo;
use crate::server;
use crate::snapshot::Snapshot;

#[derive(Debug, Parser)]
#[command(
    name = "toolgate",
    version,
    about = "Authorization gateway for AI agents' tool calls"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter, e.g. `info` or `info,toolgate::decision=warn`. The
    /// default keeps the file watcher's (`notify`) info lines — e.g. that
    /// it could not remove a watch the kernel had already dropped — out of
    /// the log.
    #[arg(
        long,
        global = true,
        env = "TOOLGATE_LOG",
        default_value = "info,notify=warn"
    )]
    pub log: String,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short, default_value = "config/toolgate.toml")]
        config: PathBuf,
    },
    /// Check a config file and print every problem with its location.
    Check(check::CheckArgs),
    /// Run the gateway in front of an example MCP tool server, both on loopback.
    Demo {
        /// Gateway port.
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Example tool server port.
        #[arg(long, default_value_t = 8181)]
        tools_port: u16,
        /// Admin (metrics) port.
        #[arg(long, default_value_t = 9901)]
        admin_port: u16,
    },
    /// Make an admin API token (printed once) and its `[[admin.tokens]]` block.
    AdminToken(admin_token::AdminTokenArgs),
    /// Dev tokens.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    #[command(flatten)]
    Ops(ops::OpsCommand),
    /// The decision log: `verify`, `tail`, `search`, `denials`, `drift`, `trace`.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
}

pub fn run(cli: Cli) -> ExitCode {
    init_logging(&cli.log, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Check(args) => return check::run(&args),
        Command::Token { command } => return token::run(command),
        Command::AdminToken(args) => return admin_token::run(args),
        Command::Audit { command } => return audit::run(command),
        Command::Ops(command) => return runtime.block_on(ops::run(command)),
        Command::Serve { config } => runtime.block_on(serve(config)),
        Command::Demo {
            port,
            tools_port,
            admin_port,
        } => runtime.block_on(demo::run(port, tools_port, admin_port)),
    };
    crate::record::stderr::flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(path: PathBuf) -> anyhow::Result<()> {
    let cfg = config::load_file(&path).map_err(|d| anyhow::anyhow!("{d}"))?;
    let running = server::start(&cfg).await?;
    let gateway = std::sync::Arc::clone(&running.gateway);
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup())?;
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut reload_requests = gateway.config_reloads();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => reload(&path, &cfg, &gateway).await,
            Ok(()) = reload_requests.changed() => reload(&path, &cfg, &gateway).await,
        }
    }
    tracing::info!("shutting down: draining in-flight calls");
    running.shutdown();
    running.wait().await;
    Ok(())
}

/// SIGHUP: re-read the config and swap in a new snapshot; a bad file keeps
/// the running one. Listener addresses and TLS need a restart.
async fn reload(
    path: &Path,
    started: &config::Config,
    gateway: &std::sync::Arc<crate::gateway::Gateway>,
) {
    let cfg = match config::load_file(path) {
        Ok(cfg) => cfg,
        Err(d) => {
            tracing::error!("reload refused, keeping the running config:\n{d}");
            return;
        }
    };
    if cfg.server.bind != started.server.bind || cfg.admin.bind != started.admin.bind {
        tracing::warn!("listener addresses changed; they take effect on restart");
    }
    // Compiling policy modules is CPU work: keep it off the request path.
    let previous = gateway.snapshot();
    let built = tokio::task::spawn_blocking(move || Snapshot::build(&cfg, Some(&previous))).await;
    let built = match built {
        Ok(result) => result,
        Err(e) => {
            tracing::error!("reload task failed, keeping the running config: {e}");
            return;
        }
    };
    match built {
        Ok(snapshot) => {
            let routes = snapshot.routes().len();
            gateway.swap(snapshot);
            // Keys a fetcher published while the new snapshot was being
            // built would be lost with the old snapshot: publish them again.
            for fetcher in gateway.snapshot().fetchers() {
                gateway.publish_keys(fetcher, fetcher.last_good());
            }
            let modules = gateway.snapshot().policy.modules().len();
            gateway.note_policy_reload(crate::decide::reload::Trigger::Config, Ok(modules));
            crate::identify::jwks::start_all(gateway).await;
            gateway.watch_policies();
            tracing::info!(routes, "config reloaded");
        }
        Err(e) => {
            gateway.note_policy_reload(
                crate::decide::reload::Trigger::Config,
                Err(&format!("{e:#}")),
            );
            tracing::error!("reload refused, keeping the running config: {e}");
        }
    }
}

fn signal(kind: tokio::signal::unix::SignalKind) -> anyhow::Result<tokio::signal::unix::Signal> {
    Ok(tokio::signal::unix::signal(kind)?)
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: bad log filter {filter:?} ({e}); using \"info\"");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(crate::record::stderr::Stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // Decision lines (one a call) by a faster writer of the same format.
    use crate::record::decision_line::DecisionLines;
    let _ = match format {
        LogFormat::Text => builder
            .event_format(DecisionLines::text(tracing_subscriber::fmt::format()))
            .try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .event_format(DecisionLines::json(
                tracing_subscriber::fmt::format().json().flatten_event(true),
            ))
            .try_init(),
    };
}
