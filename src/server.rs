//! Start-up: bind the listeners, build the first snapshot and run until
//! told to stop. Used by `serve`, `demo` and the integration tests alike.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin;
use crate::config::{Config, ListenerRole};
use crate::gateway::Gateway;
use crate::listener::{self, ConnInfo};
use crate::record::Recorder;
use crate::snapshot::{self, Snapshot};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    #[error("TLS: {0}")]
    Tls(#[from] listener::tls::Error),
    #[error("tasks.store: {0}")]
    Store(#[from] crate::tasks::Error),
    #[error("audit: {0}")]
    Audit(#[from] crate::audit::Error),
}

/// A started gateway.
#[derive(Debug)]
pub struct Running {
    /// Where agents connect (the bound address; port 0 in config becomes real here).
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting and starts draining.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Waits until both listeners have drained.
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        if let Some(audit) = self.gateway.recorder().audit() {
            audit.close().await;
        }
    }
}

/// Binds and starts serving `config`.
pub async fn start(config: &Config) -> Result<Running, Error> {
    crate::install_crypto_provider();
    let snapshot = Snapshot::build(config, None)?;
    let tls = config
        .server
        .tls
        .as_ref()
        .map(listener::tls::server_config)
        .transpose()?;
    let mut recorder = Recorder::new();
    let tasks = crate::tasks::Tasks::open(&config.tasks, &config.approvals, recorder.registry())?;
    recorder = start_audit(config, recorder, &tasks)?;
    let gateway = Gateway::new(snapshot, recorder, tasks);
    register_gauges(&gateway);
    crate::identify::jwks::start_all(&gateway).await;
    gateway.watch_policies();
    let shutdown = CancellationToken::new();
    let gw = Arc::clone(&gateway);
    let sweeper = gateway
        .tasks()
        .spawn_sweeper(move || gw.snapshot(), shutdown.clone());
    let drain = config.server.drain_timeout;
    let (agent_limits, admin_limits) = listener_limits(config);

    let main = bind(config.server.bind).await?;
    let addr = main.local_addr().map_err(|source| Error::Bind {
        addr: config.server.bind,
        source,
    })?;
    let gw = Arc::clone(&gateway);
    // Boxed: the request's future is large (every stage's state), and
    // hyper moves the service's future a few times before polling it; a
    // box makes each move a pointer's, not a memcpy of kilobytes a call.
    let handler = move |req, conn: ConnInfo| Box::pin(Arc::clone(&gw).handle(req, conn));
    let mut tasks = vec![
        sweeper,
        tokio::spawn(listener::serve_with(
            main,
            tls,
            handler,
            shutdown.clone(),
            drain,
            agent_limits,
        )),
    ];

    let mut admin_addr = None;
    if config.admin.enabled {
        let admin_tls = config
            .admin
            .tls
            .as_ref()
            .map(listener::tls::admin_server_config)
            .transpose()?;
        let admin = bind(config.admin.bind).await?;
        admin_addr = admin.local_addr().ok();
        let state = admin::Admin::new(Arc::clone(&gateway), &config.admin);
        let handler = move |req, conn: ConnInfo| admin::handle(Arc::clone(&state), req, conn);
        tasks.push(tokio::spawn(listener::serve_with(
            admin,
            admin_tls,
            handler,
            shutdown.clone(),
            drain,
            admin_limits,
        )));
    }
    // `admin` is left out when the admin listener is off (no `Some(…)` in logs).
    tracing::info!(
        %addr,
        admin = admin_addr.map(tracing::field::display),
        routes = config.routes.len(),
        "toolgate listening"
    );
    Ok(Running {
        addr,
        admin_addr,
        gateway,
        shutdown,
        tasks,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })
}

/// Starts the decision log (`[audit]`) and records through it; learns the
/// tool names policies name, for bounded metric labels.
fn start_audit(
    config: &Config,
    recorder: Recorder,
    tasks: &Arc<crate::tasks::Tasks>,
) -> Result<Recorder, Error> {
    recorder.tools().configure(
        config
            .policies
            .iter()
            .flat_map(|p| p.tools.iter().map(String::as_str)),
    );
    let Some(cfg) = &config.audit else {
        tracing::warn!(
            "no [audit] section: decisions are counted and traced, but not written to a decision log"
        );
        return Ok(recorder);
    };
    let audit =
        crate::audit::AuditLog::start(cfg, Some(Arc::clone(tasks.store())), recorder.registry())?;
    tasks.events().attach(audit.clone());
    Ok(recorder.with_audit(audit))
}

/// Gauges computed at scrape time: loaded modules, tasks, grants, approvals.
fn register_gauges(gateway: &Arc<Gateway>) {
    let weak = Arc::downgrade(gateway);
    let modules: crate::record::gauges::ModuleList = Box::new(move || {
        weak.upgrade().map_or_else(Vec::new, |g| {
            g.snapshot()
                .policy
                .modules()
                .iter()
                .map(|m| (m.name.to_string(), m.version.to_string(), m.hash.clone()))
                .collect()
        })
    });
    let gauges = crate::record::gauges::Gauges::new(modules, Arc::clone(gateway.tasks().store()));
    let _ = gateway.recorder().registry().register(Box::new(gauges));
}

/// Each listener's limits. The agents' connection cap is lowered to fit the
/// open-file limit (raised first), so a flood of agent connections leaves
/// the admin listener its own descriptors.
fn listener_limits(config: &Config) -> (listener::Limits, listener::Limits) {
    let mut agents = listener::Limits::new(&config.server.connections, ListenerRole::Agents);
    let admin = listener::Limits::new(&config.admin.connections, ListenerRole::Admin);
    if let Some(open_files) = listener::fds::raise_open_file_limit() {
        let admin_cap = if config.admin.enabled {
            admin.max_connections
        } else {
            0
        };
        let fitted = listener::fds::fit_agent_cap(agents.max_connections, open_files, admin_cap);
        if fitted < agents.max_connections {
            tracing::warn!(
                configured = agents.max_connections,
                lowered_to = fitted,
                open_file_limit = open_files,
                "server.connections.max_connections lowered to fit the open-file limit"
            );
            agents.max_connections = fitted;
        }
    }
    (agents, admin)
}
