//! Policy module `allowlist` (decide stage): which workloads — by SPIFFE ID
//! glob or trust domain — may call which tools on which routes. The same
//! rules filter `tools/list`, so an agent sees only what it may call.

use serde::Deserialize;
use toolgate_policy_sdk::{Decision, Identity, Input, Policy, glob, toolgate_policy};

toolgate_policy!(Allowlist);

/// The module's config: `{"rules": [...]}`. No rules allow nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A caller may call a tool if any rule matches.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One rule; it matches when every field it has matches.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Subject globs (`spiffe://example.org/agent/*`). The entry `anonymous`
    /// matches callers without a credential, and only them.
    pub subjects: Option<Vec<String>>,
    /// SPIFFE trust domains (`example.org`), exact.
    pub trust_domains: Option<Vec<String>>,
    /// Tool name globs (`search_*`).
    pub tools: Option<Vec<String>>,
    /// Route names, exact.
    pub routes: Option<Vec<String>>,
}

/// The configured allowlist.
#[derive(Debug)]
pub struct Allowlist {
    rules: Vec<Rule>,
}

/// The subjects entry that stands for callers without a credential.
const ANONYMOUS: &str = "anonymous";

impl Policy for Allowlist {
    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        let mut errors = Vec::new();
        for (i, rule) in config.rules.iter().enumerate() {
            if rule.subjects.is_none()
                && rule.trust_domains.is_none()
                && rule.tools.is_none()
                && rule.routes.is_none()
            {
                errors.push(format!(
                    "rule {i} has no fields and would allow every workload every tool; \
                     say so explicitly with \"tools\": [\"*\"]"
                ));
            }
            for domain in rule.trust_domains.iter().flatten() {
                if domain.contains("://") || domain.contains('/') {
                    errors.push(format!(
                        "rule {i}: trust domain {domain:?} must be a bare name like example.org"
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(Self {
                rules: config.rules,
            })
        } else {
            Err(errors.join("; "))
        }
    }

    fn decide(&self, input: &Input) -> Decision {
        match self.rules.iter().position(|rule| rule.matches(input)) {
            Some(index) => Decision::allow().annotate("rule", index),
            None => Decision::deny(format!(
                "no allowlist rule lets {} call tool {:?} on route {:?}",
                input.identity.subject(),
                input.tool.name,
                input.route.name
            )),
        }
    }
}

// === impl Rule ===

impl Rule {
    fn matches(&self, input: &Input) -> bool {
        self.matches_subject(&input.identity)
            && self.trust_domains.as_ref().is_none_or(|domains| {
                input
                    .identity
                    .trust_domain()
                    .is_some_and(|td| domains.iter().any(|d| d == td))
            })
            && self.tools.as_ref().is_none_or(|tools| {
                tools
                    .iter()
                    .any(|pattern| glob::matches(pattern, &input.tool.name))
            })
            && self
                .routes
                .as_ref()
                .is_none_or(|routes| routes.contains(&input.route.name))
    }

    /// Anonymous callers match only a rule that lists `anonymous`; the entry
    /// never matches a workload, even one whose `sub` is "anonymous".
    fn matches_subject(&self, identity: &Identity) -> bool {
        match (identity, &self.subjects) {
            (Identity::Anonymous, Some(subjects)) => subjects.iter().any(|s| s == ANONYMOUS),
            (Identity::Anonymous, None) => false,
            (Identity::Workload(_), None) => true,
            (Identity::Workload(workload), Some(subjects)) => subjects
                .iter()
                .filter(|s| *s != ANONYMOUS)
                .any(|pattern| glob::matches(pattern, &workload.subject)),
        }
    }
}

#[cfg(test)]
mod tests;
