//! Start-up stage: trusted token issuers and how a route binds to them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{SecretRef, duration};

/// One trusted issuer of workload tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Issuer {
    /// Name routes use to refer to this issuer.
    pub name: String,
    /// The exact `iss` its tokens carry.
    pub issuer: String,
    /// `spiffe` (JWT-SVIDs) or `oauth` (access tokens).
    #[serde(default)]
    pub mode: IssuerMode,
    /// SPIFFE mode: trust domains whose IDs are accepted as `sub`.
    #[serde(default)]
    pub trust_domains: Vec<String>,
    /// Audiences this issuer's tokens may be accepted for. Empty: any route
    /// audience; otherwise a route binding this issuer must require one of them.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// A JWKS (or SPIFFE bundle) file, read at start-up and on reload.
    pub jwks_file: Option<PathBuf>,
    /// A JWKS (or SPIFFE bundle) URL, fetched over HTTPS and refreshed.
    pub jwks_url: Option<String>,
    /// CA certificates (PEM) to trust for `jwks_url` instead of the system roots.
    pub jwks_ca_file: Option<PathBuf>,
    /// Longest time between JWKS refreshes; `Cache-Control: max-age` and
    /// `spiffe_refresh_hint` may make it shorter, never below `min_refresh_interval`.
    #[serde(default = "Issuer::default_refresh", with = "duration")]
    pub refresh_interval: Duration,
    /// Shortest time between two fetches, also for refetches on an unknown `kid`.
    #[serde(default = "Issuer::default_min_refresh", with = "duration")]
    pub min_refresh_interval: Duration,
    /// Accepted `alg` values. Default: RS256-512, PS256-512, ES256, ES384, EdDSA.
    /// `none` is never accepted; HS256/384/512 only together with `hs_secret`.
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Shared secret for HS* tokens. Refused for an issuer with asymmetric keys.
    pub hs_secret: Option<SecretRef>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    #[serde(default = "Issuer::default_leeway", with = "duration")]
    pub leeway: Duration,
    /// Longest lifetime (`exp` - `iat`) a token may have.
    #[serde(default = "Issuer::default_max_lifetime", with = "duration")]
    pub max_lifetime: Duration,
    /// Claims every token must carry.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Claims copied into the identity policy sees (never the whole claim set).
    #[serde(default)]
    pub selected_claims: Vec<String>,
    /// Claim holding the task id, e.g. `task_id`.
    pub task_claim: Option<String>,
    /// Authorization servers named in protected-resource metadata (RFC 9728).
    /// Default: the issuer itself in `oauth` mode, none in `spiffe` mode.
    pub authorization_servers: Option<Vec<String>>,
}

impl Issuer {
    fn default_refresh() -> Duration {
        Duration::from_secs(300)
    }
    fn default_min_refresh() -> Duration {
        Duration::from_secs(30)
    }
    fn default_leeway() -> Duration {
        Duration::from_secs(30)
    }
    fn default_max_lifetime() -> Duration {
        Duration::from_secs(24 * 3600)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuerMode {
    #[default]
    Oauth,
    Spiffe,
}

/// How a route authenticates its callers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteAuth {
    /// Names of the issuers whose tokens this route accepts.
    pub issuers: Vec<String>,
    /// The `aud` a token must carry. Default: the route's canonical URL,
    /// `server.public_url` + `path` (RFC 8707).
    pub audience: Option<String>,
    /// Scopes a token must all have; missing ones ⇒ 403 `insufficient_scope`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Request header that may name the caller's task. It is only a hint
    /// until the task record names this caller as its agent.
    pub task_header: Option<String>,
}
