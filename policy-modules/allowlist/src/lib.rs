//! Policy module `allowlist` (decide stage): which workloads — by SPIFFE ID
//! glob or trust domain — may call which tools on which routes. The same
//! rules filter `tools/list`, so an agent sees only what it may call.

use serde::Deserialize;
use toolgate_policy_sdk::{Decision, Field, Identity, Input, Policy, glob, toolgate_policy};

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

    /// The rules read a few strings: only they are sent, as values (see
    /// `decide_values`).
    const INPUT_FIELDS: Option<&'static [&'static str]> = Some(&[
        "/route/name",
        "/tool/name",
        "/identity/kind",
        "/identity/subject",
        "/identity/spiffe/trust_domain",
    ]);
    const INPUT_VALUES: bool = true;

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

    /// Decides from the declared fields' values; anything unusual (a
    /// field of another type, an unknown kind of identity) is left to
    /// `decide`, which reads the same values as a typed input.
    fn decide_values(&self, values: &[Field<'_>]) -> Option<Decision> {
        let [route, tool, kind, subject, domain] = values else {
            return None;
        };
        let (subject, trust_domain) = match (kind, subject, domain) {
            (Field::Absent, Field::Absent, Field::Absent) => (None, None),
            (Field::Str("anonymous"), _, _) => (None, None),
            (Field::Str("workload"), Field::Str(subject), Field::Absent) => (Some(*subject), None),
            (Field::Str("workload"), Field::Str(subject), Field::Str(domain)) => {
                (Some(*subject), Some(*domain))
            }
            _ => return None,
        };
        Some(self.decide_for(&Facts {
            subject,
            trust_domain,
            tool: text(*tool)?,
            route: text(*route)?,
        }))
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

/// A string field; absent reads as empty, as in the typed input.
fn text(field: Field<'_>) -> Option<&str> {
    match field {
        Field::Absent => Some(""),
        other => other.as_str(),
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

#[cfg(test)]
mod tests;
