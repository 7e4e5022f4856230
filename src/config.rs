//! Start-up stage: the TOML configuration model. Everything here is plain data;
//! `load` turns a file into it (collecting every error first) and `validate`
//! checks what serde cannot.

mod audit;
mod bind;
mod connections;
pub mod duration;
mod issuer;
mod load;
mod paths;
mod peel;
mod policy;
mod secret;
mod tasks;
pub mod timestamp;
mod validate;
mod validate_identity;
mod validate_policy;
mod validate_tasks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use audit::{Audit, Fsync, Mask, MaskAction, OnFailure};
pub use connections::{Connections, ListenerRole};
pub use issuer::{Issuer, IssuerMode, RouteAuth};
pub use load::{Diagnostic, Diagnostics, load_file, load_str};
pub use policy::{Policy, PolicyLimits, PolicyPhase};
pub use secret::{Secret, SecretRef};
pub use tasks::{Approvals, Tasks, Webhook};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub issuers: Vec<Issuer>,
    #[serde(default)]
    pub policy_limits: PolicyLimits,
    #[serde(default)]
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub tasks: Tasks,
    #[serde(default)]
    pub approvals: Approvals,
    /// The decision log; without it decisions are only counted and traced.
    pub audit: Option<Audit>,
}

/// The main listener agents connect to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// Address to listen on, e.g. `127.0.0.1:8080` or `localhost:8080`.
    #[serde(
        default = "Server::default_bind",
        deserialize_with = "bind::deserialize"
    )]
    pub bind: SocketAddr,
    /// Optional TLS for the main listener.
    pub tls: Option<ServerTls>,
    /// The gateway's external base URL, e.g. `https://tools.example.com`.
    /// Route audiences and protected-resource metadata are built from it.
    /// Default: `http://` (or `https://`) + `bind`.
    pub public_url: Option<String>,
    /// How long graceful shutdown waits for in-flight calls and streams.
    #[serde(default = "Server::default_drain", with = "duration")]
    pub drain_timeout: Duration,
    /// Timeouts and caps of the agents' connections.
    #[serde(default)]
    pub connections: Connections,
}

impl Server {
    /// The external base URL, without a trailing '/'.
    pub fn base_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{}", self.bind)
            }
        }
    }

    fn default_bind() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    fn default_drain() -> Duration {
        Duration::from_secs(30)
    }
}

impl Default for Server {
    fn default() -> Self {
        Self {
            bind: Self::default_bind(),
            tls: None,
            public_url: None,
            drain_timeout: Self::default_drain(),
            connections: Connections::default(),
        }
    }
}

/// Certificate chain and private key (PEM files).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Where the admin listener serves the operator console.
pub const CONSOLE_PREFIX: &str = "/console";

/// The operator listener: health, readiness, metrics and the admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    /// Address to listen on; loopback by default. `enabled = false` turns it off.
    #[serde(
        default = "Admin::default_bind",
        deserialize_with = "bind::deserialize"
    )]
    pub bind: SocketAddr,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Optional TLS, and optional client-certificate authentication.
    pub tls: Option<AdminTls>,
    /// Bearer tokens, stored as SHA-256 hashes (`toolgate admin-token`).
    #[serde(default)]
    pub tokens: Vec<AdminToken>,
    /// Client certificates (by URI or DNS SAN) mapped to roles; needs `tls.client_ca_file`.
    #[serde(default)]
    pub clients: Vec<AdminClient>,
    /// Timeouts and caps of the admin listener's own connections.
    #[serde(default)]
    pub connections: Connections,
}

/// TLS for the admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// PEM CA certificates client certificates are verified against. With
    /// it, a client may authenticate by certificate (see `admin.clients`).
    pub client_ca_file: Option<PathBuf>,
    /// Refuse connections without a valid client certificate.
    #[serde(default)]
    pub require_client_cert: bool,
}

/// What an admin caller may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read tasks, grants, approvals, policies.
    Viewer,
    /// Also create and end tasks, issue and revoke grants, answer approvals.
    Operator,
    /// Also reload policies and config.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }
}

/// One admin bearer token: its name (the actor in records) and role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    pub name: String,
    pub role: Role,
    /// Lowercase hex SHA-256 of the token.
    pub sha256: String,
}

/// A client certificate identity mapped to a role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminClient {
    /// A URI SAN (e.g. a SPIFFE ID) or DNS SAN of the certificate.
    pub san: String,
    pub role: Role,
}

impl Admin {
    fn default_bind() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9901))
    }
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            bind: Self::default_bind(),
            enabled: true,
            tls: None,
            tokens: Vec::new(),
            clients: Vec::new(),
            connections: Connections::default(),
        }
    }
}

/// Gateway-wide limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes (default 1 MiB). Larger ⇒ 413.
    #[serde(default = "Limits::default_body")]
    pub max_request_body: usize,
    /// Largest upstream JSON response or single SSE event the gateway will
    /// inspect (for `tools/list` filtering), in bytes (default 16 MiB).
    #[serde(default = "Limits::default_inspect")]
    pub max_inspected_response: usize,
}

impl Limits {
    fn default_body() -> usize {
        1024 * 1024
    }
    fn default_inspect() -> usize {
        16 * 1024 * 1024
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body: Self::default_body(),
            max_inspected_response: Self::default_inspect(),
        }
    }
}

/// One upstream tool behind a path prefix on the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Unique name; appears in logs, metrics and decisions.
    pub name: String,
    /// Path prefix on the gateway, e.g. `/mcp/github`. Matched on segment boundaries.
    pub path: String,
    /// Upstream base URL (http or https). The part of the request path after the
    /// prefix is appended to its path.
    pub upstream: String,
    /// `mcp` (JSON-RPC aware) or `http` (each request is one tool call).
    #[serde(default)]
    pub kind: RouteKind,
    /// Credential the gateway attaches upstream. The caller's own token is never forwarded.
    pub upstream_auth: Option<UpstreamAuth>,
    /// Who may call: the issuers whose tokens are accepted, the audience and
    /// scopes required. Without it the route takes anonymous callers (logged
    /// as a warning at start-up).
    pub auth: Option<RouteAuth>,
    /// PEM file of CA certificates to trust for an https upstream instead of the system roots.
    pub upstream_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What the decide stage answers when no policy applies to a call. `deny`
    /// (the default) fails closed; `allow` is logged loudly at start-up.
    #[serde(default)]
    pub default_decision: DefaultDecision,
    /// How long a call policy parks for approval is held open, waiting for
    /// an operator's answer, before the caller is told to retry. `0s` (the
    /// default): answer at once.
    #[serde(default, with = "duration")]
    pub approval_wait: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    #[default]
    Mcp,
    Http,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultDecision {
    #[default]
    Deny,
    Allow,
}

/// A static header sent to the upstream, its value a secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawUpstreamAuth")]
pub struct UpstreamAuth {
    /// Header name, e.g. `Authorization` or `X-Api-Key`.
    pub header: String,
    /// Where the value comes from: `{ env = "NAME" }` or `{ file = "path" }`.
    pub value: SecretRef,
    /// Text put before the secret. Default: `"Bearer "` for the
    /// `Authorization` header (the scheme nearly every API expects there),
    /// nothing for any other header; `prefix = ""` sends the secret alone.
    pub prefix: String,
}

/// `[routes.upstream_auth]` as written: the prefix's default depends on the header.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstreamAuth {
    #[serde(default = "RawUpstreamAuth::default_header")]
    header: String,
    value: SecretRef,
    prefix: Option<String>,
}

impl RawUpstreamAuth {
    fn default_header() -> String {
        "authorization".to_owned()
    }
}

impl From<RawUpstreamAuth> for UpstreamAuth {
    fn from(raw: RawUpstreamAuth) -> Self {
        let prefix = raw.prefix.unwrap_or_else(|| {
            if raw.header.eq_ignore_ascii_case("authorization") {
                "Bearer ".to_owned()
            } else {
                String::new()
            }
        });
        Self {
            header: raw.header,
            value: raw.value,
            prefix,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP (and TLS) connect.
    #[serde(default = "Timeouts::default_connect", with = "duration")]
    pub connect: Duration,
    /// From sending the request until the upstream's response headers.
    #[serde(default = "Timeouts::default_first_byte", with = "duration")]
    pub first_byte: Duration,
    /// Longest silence allowed inside a streamed response body.
    #[serde(default = "Timeouts::default_idle", with = "duration")]
    pub stream_idle: Duration,
    /// How long an unused pooled connection to the upstream stays open.
    #[serde(default = "Timeouts::default_pool_idle", with = "duration")]
    pub pool_idle: Duration,
}

impl Timeouts {
    fn default_connect() -> Duration {
        Duration::from_secs(5)
    }
    fn default_first_byte() -> Duration {
        Duration::from_secs(30)
    }
    fn default_idle() -> Duration {
        Duration::from_secs(300)
    }
    fn default_pool_idle() -> Duration {
        Duration::from_secs(90)
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Self::default_connect(),
            first_byte: Self::default_first_byte(),
            stream_idle: Self::default_idle(),
            pool_idle: Self::default_pool_idle(),
        }
    }
}

fn default_true() -> bool {
    true
}
