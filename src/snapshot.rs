//! Shared state: the one immutable snapshot of everything hot-reloadable —
//! routes with their upstream clients, limits and the policy set. A reload
//! builds a whole new snapshot off the request path and swaps it in once.

use std::sync::Arc;

use crate::config::{Config, DefaultDecision, Limits, RouteKind, Timeouts};
use crate::decide::PolicySet;
use crate::forward::client::{self, Upstream};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("route {route:?}: {source}")]
    Upstream {
        route: String,
        source: client::Error,
    },
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
}

#[derive(Debug)]
pub struct Snapshot {
    /// Longest prefix first, so the first match is the most specific.
    routes: Vec<Arc<Route>>,
    pub limits: Limits,
    pub policy: PolicySet,
}

impl Snapshot {
    /// Builds a snapshot from a checked config (see [`config::load_file`]).
    pub fn build(config: &Config) -> Result<Self, Error> {
        let mut routes = config
            .routes
            .iter()
            .map(|r| {
                if r.default_decision == DefaultDecision::Allow {
                    tracing::warn!(
                        route = %r.name,
                        "route allows every call no policy decides (default_decision = \"allow\")"
                    );
                }
                Ok(Arc::new(Route {
                    name: r.name.clone(),
                    prefix: r.path.trim_end_matches('/').to_owned(),
                    kind: r.kind,
                    upstream: Upstream::build(r).map_err(|source| Error::Upstream {
                        route: r.name.clone(),
                        source,
                    })?,
                    timeouts: r.timeouts,
                    default_decision: r.default_decision,
                }))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Ok(Self {
            routes,
            limits: config.limits.clone(),
            policy: PolicySet::default(),
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;

    #[test]
    fn longest_segment_prefix_wins() {
        let config = config::load_str(
            r#"
            [[routes]]
            name = "root"
            path = "/"
            upstream = "http://127.0.0.1:1"
            [[routes]]
            name = "mcp"
            path = "/mcp"
            upstream = "http://127.0.0.1:2/base"
            [[routes]]
            name = "deep"
            path = "/mcp/deep"
            upstream = "http://127.0.0.1:3"
            "#,
            "test",
            std::path::Path::new("."),
        )
        .unwrap();
        let s = Snapshot::build(&config).unwrap();
        let pick = |p| s.route_for(p).map(|(r, rest)| (r.name.as_str(), rest));
        assert_eq!(pick("/mcp"), Some(("mcp", "")));
        assert_eq!(pick("/mcp/x"), Some(("mcp", "/x")));
        assert_eq!(pick("/mcp/deep/y"), Some(("deep", "/y")));
        assert_eq!(pick("/mcpx"), Some(("root", "/mcpx")));
        let (mcp, _) = s.route_for("/mcp").unwrap();
        assert_eq!(
            mcp.upstream.uri("", Some("a=1")).unwrap(),
            "http://127.0.0.1:2/base?a=1"
        );
    }
}
