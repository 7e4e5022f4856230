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
        let subject = match &input.identity {
            Identity::Anonymous => None,
            Identity::Workload(w) => Some(w.subject.as_str()),
        };
        self.decide_for(&Facts {
            subject,
            trust_domain: input.identity.trust_domain(),
            tool: &input.tool.name,
            route: &input.route.name,
        })
    }

    /// The rules read four strings: decode only those (see `lean`).
    fn decide_fast(&self, input: &[u8]) -> Option<Decision> {
        let lean = lean::Input::parse(input)?;
        Some(self.decide_for(&lean.facts()?))
    }
}

/// What a rule is matched against.
struct Facts<'a> {
    /// `None` for an anonymous caller.
    subject: Option<&'a str>,
    trust_domain: Option<&'a str>,
    tool: &'a str,
    route: &'a str,
}

impl Allowlist {
    fn decide_for(&self, facts: &Facts<'_>) -> Decision {
        match self.rules.iter().position(|rule| rule.matches(facts)) {
            Some(index) => Decision::allow().annotate("rule", index),
            None => Decision::deny(format!(
                "no allowlist rule lets {} call tool {:?} on route {:?}",
                facts.subject.unwrap_or(ANONYMOUS),
                facts.tool,
                facts.route
            )),
        }
    }
}

// === impl Rule ===

impl Rule {
    fn matches(&self, facts: &Facts<'_>) -> bool {
        self.matches_subject(facts.subject)
            && self.trust_domains.as_ref().is_none_or(|domains| {
                facts
                    .trust_domain
                    .is_some_and(|td| domains.iter().any(|d| d == td))
            })
            && self.tools.as_ref().is_none_or(|tools| {
                tools
                    .iter()
                    .any(|pattern| glob::matches(pattern, facts.tool))
            })
            && self
                .routes
                .as_ref()
                .is_none_or(|routes| routes.iter().any(|r| r == facts.route))
    }

    /// Anonymous callers match only a rule that lists `anonymous`; the entry
    /// never matches a workload, even one whose `sub` is "anonymous".
    fn matches_subject(&self, subject: Option<&str>) -> bool {
        match (subject, &self.subjects) {
            (None, Some(subjects)) => subjects.iter().any(|s| s == ANONYMOUS),
            (None, None) => false,
            (Some(_), None) => true,
            (Some(subject), Some(subjects)) => subjects
                .iter()
                .filter(|s| *s != ANONYMOUS)
                .any(|pattern| glob::matches(pattern, subject)),
        }
    }
}

/// The few input fields the rules read, borrowed from the input bytes.
mod lean {
    use std::borrow::Cow;

    use serde::Deserialize;

    use super::Facts;

    #[derive(Deserialize)]
    pub(super) struct Input<'a> {
        #[serde(borrow, default)]
        route: Named<'a>,
        #[serde(borrow, default)]
        tool: Named<'a>,
        #[serde(borrow, default)]
        identity: Option<Identity<'a>>,
    }

    #[derive(Deserialize, Default)]
    struct Named<'a> {
        #[serde(borrow, default)]
        name: Cow<'a, str>,
    }

    #[derive(Deserialize)]
    struct Identity<'a> {
        #[serde(borrow)]
        kind: Cow<'a, str>,
        #[serde(borrow, default)]
        subject: Option<Cow<'a, str>>,
        #[serde(borrow, default)]
        spiffe: Option<Spiffe<'a>>,
    }

    #[derive(Deserialize)]
    struct Spiffe<'a> {
        #[serde(borrow)]
        trust_domain: Cow<'a, str>,
    }

    impl<'a> Input<'a> {
        /// `None` when the input is not shaped as expected: the typed path
        /// then decides (and reports what is wrong).
        pub(super) fn parse(bytes: &'a [u8]) -> Option<Self> {
            serde_json::from_slice(bytes).ok()
        }

        pub(super) fn facts(&self) -> Option<Facts<'_>> {
            let (subject, trust_domain) = match &self.identity {
                None => (None, None),
                Some(id) if id.kind == "anonymous" => (None, None),
                Some(id) if id.kind == "workload" => (
                    Some(id.subject.as_deref()?),
                    id.spiffe.as_ref().map(|s| &*s.trust_domain),
                ),
                Some(_) => return None,
            };
            Some(Facts {
                subject,
                trust_domain,
                tool: &self.tool.name,
                route: &self.route.name,
            })
        }
    }
}

#[cfg(test)]
mod tests;
