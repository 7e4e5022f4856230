//! Shared state: the one immutable snapshot of everything hot-reloadable —
//! routes with their upstream clients, limits, trusted issuers with their
//! current keys, and the policy set. A reload (or a JWKS refresh) builds a
//! new snapshot off the request path and swaps it in once.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderName;

use crate::config::{Config, DefaultDecision, Limits, RouteKind, Timeouts};
use crate::decide::PolicySet;
use crate::forward::client::{self, Upstream};
use crate::identify::issuer::{self, TrustedIssuer};
use crate::identify::jwks::JwksFetcher;
use crate::identify::keys::KeySet;
use crate::identify::metadata;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("route {route:?}: {error}")]
    Upstream { route: String, error: client::Error },
    #[error("issuer {issuer:?}: {error}")]
    Issuer {
        issuer: String,
        error: issuer::Error,
    },
    #[error("route {route:?}: {what}")]
    Auth { route: String, what: String },
    #[error(transparent)]
    Policy(#[from] crate::decide::Error),
    #[error("approvals.webhook: {0}")]
    Webhook(String),
    #[error("approvals.state_key: {0}")]
    ApprovalKey(String),
}

/// The configured approval page, or the console inbox on the admin listener.
fn approval_page(config: &Config) -> Option<String> {
    if let Some(url) = &config.approvals.elicitation_url {
        return Some(url.clone());
    }
    let admin = &config.admin;
    let scheme = if admin.tls.is_some() { "https" } else { "http" };
    admin.enabled.then(|| {
        format!(
            "{scheme}://{}{}/inbox#{{approval}}",
            admin.bind,
            crate::config::CONSOLE_PREFIX
        )
    })
}

/// A route ready to serve.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub prefix: String,
    pub kind: RouteKind,
    pub upstream: Upstream,
    pub timeouts: Timeouts,
    pub default_decision: DefaultDecision,
    /// How long a call parked for approval is held open (zero: not held).
    pub approval_wait: std::time::Duration,
    /// `None`: anonymous callers are accepted.
    pub auth: Option<RouteAuth>,
}

/// Who may call a route.
#[derive(Debug)]
pub struct RouteAuth {
    /// Names of the trusted issuers whose tokens are accepted.
    pub issuers: Vec<String>,
    /// The `aud` tokens must carry (the route's canonical URL by default).
    pub audience: String,
    pub scopes: Vec<String>,
    pub task_header: Option<HeaderName>,
    /// Where the route's protected-resource metadata is served (RFC 9728).
    pub metadata_url: String,
    /// Audience and trusted issuers: routes that share it verify a token
    /// the same way, so they may share its verified-token cache entry.
    pub cache_scope: String,
    pub authorization_servers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<Arc<Route>>,
    pub limits: Limits,
    pub policy: Arc<PolicySet>,
    /// What `policy` was built from, so a policy-only reload can rebuild it.
    pub policies: Arc<[crate::config::Policy]>,
    pub policy_limits: crate::config::PolicyLimits,
    pub issuers: Arc<HashMap<String, Arc<TrustedIssuer>>>,
    /// Each issuer's current keys, by issuer name.
    pub keys: Arc<HashMap<String, Arc<KeySet>>>,
    /// Bumped whenever any key set changes; verified-token cache entries
    /// from an older generation are not trusted.
    pub keys_generation: u64,
    pub base_url: String,
    /// Task and grant caps, and the approval flow's settings.
    pub tasks: Arc<crate::config::Tasks>,
    pub approvals: Arc<crate::config::Approvals>,
    /// Announces new pending approvals, if configured.
    pub webhook: Option<Arc<crate::tasks::webhook::Webhook>>,
    /// Where a human acts on an approval (`{approval}` its id), if anywhere.
    pub approval_page: Option<String>,
    /// The configured key that signs approval `requestState`s.
    pub approval_key: Option<crate::config::Secret>,
}

impl Snapshot {
    /// Builds a snapshot from a checked config (see [`crate::config::load_file`]).
    /// `previous` lends JWKS fetchers (and their last good keys) to issuers
    /// whose source did not change.
    pub fn build(config: &Config, previous: Option<&Snapshot>) -> Result<Self, Error> {
        let base_url = config.server.base_url();
        let mut issuers = HashMap::new();
        let mut keys = HashMap::new();
        for cfg in &config.issuers {
            let reuse = previous
                .and_then(|p| p.issuers.get(&cfg.name))
                .and_then(|i| i.fetcher())
                .filter(|f| f.same_source(cfg))
                .cloned();
            let (trusted, set) =
                TrustedIssuer::build(cfg, reuse).map_err(|error| Error::Issuer {
                    issuer: cfg.name.clone(),
                    error,
                })?;
            keys.insert(cfg.name.clone(), set);
            issuers.insert(cfg.name.clone(), Arc::new(trusted));
        }
        let mut routes = Vec::with_capacity(config.routes.len());
        for r in &config.routes {
            if r.default_decision == DefaultDecision::Allow {
                tracing::warn!(route = %r.name, "route allows every call no policy decides (default_decision = \"allow\")");
            }
            let prefix = r.path.trim_end_matches('/').to_owned();
            let auth = match &r.auth {
                None => {
                    tracing::warn!(route = %r.name, "route accepts anonymous callers (no [routes.auth])");
                    None
                }
                Some(a) => Some(route_auth(&r.name, &prefix, &base_url, a, &issuers)?),
            };
            routes.push(Arc::new(Route {
                name: r.name.clone(),
                prefix,
                kind: r.kind,
                upstream: Upstream::build(r).map_err(|error| Error::Upstream {
                    route: r.name.clone(),
                    error,
                })?,
                timeouts: r.timeouts,
                default_decision: r.default_decision,
                approval_wait: r.approval_wait,
                auth,
            }));
        }
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Self {
            routes,
            limits: config.limits.clone(),
            policy: Arc::new(PolicySet::build(&config.policies, &config.policy_limits)?),
            policies: config.policies.clone().into(),
            policy_limits: config.policy_limits.clone(),
            issuers: Arc::new(issuers),
            keys: Arc::new(keys),
            keys_generation: previous.map_or(0, |p| p.keys_generation + 1),
            base_url,
            tasks: Arc::new(config.tasks.clone()),
            approvals: Arc::new(config.approvals.clone()),
            webhook: config
                .approvals
                .webhook
                .as_ref()
                .map(|hook| crate::tasks::webhook::Webhook::new(hook).map(Arc::new))
                .transpose()
                .map_err(|e| Error::Webhook(e.to_string()))?,
            approval_page: approval_page(config),
            approval_key: config
                .approvals
                .state_key
                .as_ref()
                .map(crate::config::SecretRef::resolve)
                .transpose()
                .map_err(Error::ApprovalKey)?,
        })
    }

    /// The route serving `path` and the part of the path after its prefix.
    /// Prefixes match whole segments: `/mcp` serves `/mcp` and `/mcp/x`, not `/mcpx`.
    pub fn route_for<'p>(&self, path: &'p str) -> Option<(&Arc<Route>, &'p str)> {
        self.routes.iter().find_map(|route| {
            let rest = path.strip_prefix(route.prefix.as_str())?;
            (rest.is_empty() || rest.starts_with('/')).then_some((route, rest))
        })
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// This snapshot with `fetcher`'s issuer using `keys`, if the issuer
    /// still gets its keys from that fetcher.
    pub fn with_keys(&self, fetcher: &Arc<JwksFetcher>, keys: Arc<KeySet>) -> Option<Self> {
        let issuer = self.issuers.get(&fetcher.issuer)?;
        if !issuer.fetcher().is_some_and(|f| Arc::ptr_eq(f, fetcher)) {
            return None;
        }
        let mut all = (*self.keys).clone();
        all.insert(fetcher.issuer.clone(), keys);
        let mut next = self.clone();
        next.keys = Arc::new(all);
        next.keys_generation += 1;
        Some(next)
    }

    /// This snapshot with a new policy set.
    pub fn with_policy(&self, policy: Arc<PolicySet>) -> Self {
        let mut next = self.clone();
        next.policy = policy;
        next
    }

    /// Every JWKS fetcher this snapshot's issuers use.
    pub fn fetchers(&self) -> impl Iterator<Item = &Arc<JwksFetcher>> {
        self.issuers.values().filter_map(|i| i.fetcher())
    }
}

fn route_auth(
    route: &str,
    prefix: &str,
    base_url: &str,
    cfg: &crate::config::RouteAuth,
    issuers: &HashMap<String, Arc<TrustedIssuer>>,
) -> Result<RouteAuth, Error> {
    let err = |what: String| Error::Auth {
        route: route.to_owned(),
        what,
    };
    let mut authorization_servers = Vec::new();
    for name in &cfg.issuers {
        let issuer = issuers
            .get(name)
            .ok_or_else(|| err(format!("issuer {name:?} is not defined in [[issuers]]")))?;
        for server in &issuer.authorization_servers {
            if !authorization_servers.contains(server) {
                authorization_servers.push(server.clone());
            }
        }
    }
    let task_header = cfg
        .task_header
        .as_deref()
        .map(HeaderName::try_from)
        .transpose()
        .map_err(|_| err("task_header is not a valid header name".into()))?;
    let path = if prefix.is_empty() { "/" } else { prefix };
    let mut auth = RouteAuth {
        issuers: cfg.issuers.clone(),
        audience: cfg
            .audience
            .clone()
            .unwrap_or_else(|| format!("{base_url}{path}")),
        scopes: cfg.scopes.clone(),
        task_header,
        metadata_url: String::new(),
        cache_scope: String::new(),
        authorization_servers,
    };
    let mut names = cfg.issuers.clone();
    names.sort();
    auth.cache_scope = format!("{}\n{}", auth.audience, names.join(","));
    auth.metadata_url = format!(
        "{base_url}{}{}",
        metadata::WELL_KNOWN,
        if prefix.is_empty() { "" } else { prefix }
    );
    Ok(auth)
}

#[cfg(test)]
mod tests;
