//! Policy module `arg-constraints` (decide stage): rules on a call's
//! arguments — file paths under a directory, read-only SQL, URLs to listed
//! hosts, numbers within bounds. It only constrains: tools no rule names,
//! and the list phase, are allowed, so it is combined with a module that
//! decides who may call what (e.g. `allowlist`).

mod path;
mod sql;
mod url;

use serde::Deserialize;
use serde_json::Value;
use toolgate_policy_sdk::{Decision, Input, Phase, Policy, glob, toolgate_policy};

use crate::url::HostPattern;

toolgate_policy!(ArgConstraints);

/// The module's config: `{"rules": [...]}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Every rule whose `tools` match a call applies to it.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One argument of some tools, and the checks it must pass (at least one).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Tool name globs the rule applies to.
    pub tools: Vec<String>,
    /// JSON pointer to the argument (`/path`). A missing argument is denied.
    pub pointer: String,
    /// The argument is a path under this absolute directory.
    pub path_prefix: Option<String>,
    /// The argument is one read-only SQL statement.
    #[serde(default)]
    pub read_only_sql: bool,
    /// The argument is an http(s) URL to one of these hosts (`*.suffix` for
    /// any name below `suffix`; IP addresses only when listed).
    pub url_hosts: Option<Vec<String>>,
    /// The argument is a number of at least this.
    pub min: Option<f64>,
    /// The argument is a number of at most this.
    pub max: Option<f64>,
}

/// The configured module.
#[derive(Debug)]
pub struct ArgConstraints {
    rules: Vec<Checked>,
}

/// A rule with its checks prepared.
#[derive(Debug)]
struct Checked {
    tools: Vec<String>,
    pointer: String,
    checks: Vec<Check>,
}

#[derive(Debug)]
enum Check {
    /// Normalised directory.
    PathPrefix(String),
    ReadOnlySql,
    UrlHosts(Vec<HostPattern>),
    Range {
        min: Option<f64>,
        max: Option<f64>,
    },
}

impl Policy for ArgConstraints {
    type Config = Config;

    const INPUT_FIELDS: Option<&'static [&'static str]> = Some(&["/phase", "/tool"]);

    fn configure(config: Config) -> Result<Self, String> {
        let mut errors = Vec::new();
        let rules = config
            .rules
            .into_iter()
            .enumerate()
            .filter_map(|(i, rule)| match prepare(rule) {
                Ok(rule) => Some(rule),
                Err(problems) => {
                    errors.extend(problems.into_iter().map(|p| format!("rule {i}: {p}")));
                    None
                }
            })
            .collect();
        if errors.is_empty() {
            Ok(Self { rules })
        } else {
            Err(errors.join("; "))
        }
    }

    fn decide(&self, input: &Input) -> Decision {
        if input.phase == Phase::List {
            return Decision::allow();
        }
        let tool = &input.tool.name;
        for (index, rule) in self.rules.iter().enumerate() {
            if !rule
                .tools
                .iter()
                .any(|pattern| glob::matches(pattern, tool))
            {
                continue;
            }
            if let Err(why) = rule.check(input.argument(&rule.pointer)) {
                return Decision::deny(format!("tool {tool:?}: argument {}: {why}", rule.pointer))
                    .annotate("rule", index);
            }
        }
        Decision::allow()
    }
}

/// Checks a rule's config and prepares its checks; every problem is listed.
fn prepare(rule: Rule) -> Result<Checked, Vec<String>> {
    let mut problems = Vec::new();
    let mut checks = Vec::new();
    if rule.tools.is_empty() {
        problems.push("\"tools\" is empty".to_owned());
    }
    if !rule.pointer.starts_with('/') {
        problems.push(format!("pointer {:?} must start with '/'", rule.pointer));
    }
    if let Some(prefix) = &rule.path_prefix {
        match path::normalize(prefix) {
            Ok(prefix) => checks.push(Check::PathPrefix(prefix)),
            Err(e) => problems.push(format!("path_prefix {prefix:?}: {e}")),
        }
    }
    if rule.read_only_sql {
        checks.push(Check::ReadOnlySql);
    }
    if let Some(hosts) = &rule.url_hosts {
        let parsed: Vec<_> = hosts.iter().map(|h| HostPattern::parse(h)).collect();
        problems.extend(
            parsed
                .iter()
                .filter_map(|p| p.as_ref().err().map(|e| format!("url_hosts {e}"))),
        );
        checks.push(Check::UrlHosts(parsed.into_iter().flatten().collect()));
    }
    if rule.min.is_some() || rule.max.is_some() {
        if let (Some(min), Some(max)) = (rule.min, rule.max)
            && min > max
        {
            problems.push(format!("min {min} is greater than max {max}"));
        }
        checks.push(Check::Range {
            min: rule.min,
            max: rule.max,
        });
    }
    let has_check = rule.path_prefix.is_some()
        || rule.read_only_sql
        || rule.url_hosts.is_some()
        || rule.min.is_some()
        || rule.max.is_some();
    if !has_check {
        problems.push("no check (path_prefix, read_only_sql, url_hosts, min/max)".into());
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Checked {
        tools: rule.tools,
        pointer: rule.pointer,
        checks,
    })
}

// === impl Checked ===

impl Checked {
    fn check(&self, value: Option<&Value>) -> Result<(), String> {
        let value = match value {
            None | Some(Value::Null) => return Err("is missing".into()),
            Some(value) => value,
        };
        self.checks.iter().try_for_each(|check| check.run(value))
    }
}

// === impl Check ===

impl Check {
    fn run(&self, value: &Value) -> Result<(), String> {
        match self {
            Self::PathPrefix(prefix) => {
                let path = value.as_str().ok_or("is not a string path")?;
                let normal = path::normalize(path)?;
                if path::within(&normal, prefix) {
                    Ok(())
                } else {
                    Err(format!("path {} is outside {prefix}", shown(path)))
                }
            }
            Self::ReadOnlySql => sql::check(value.as_str().ok_or("is not a string of SQL")?),
            Self::UrlHosts(patterns) => {
                let host = url::host_of(value.as_str().ok_or("is not a string URL")?)?;
                if patterns.iter().any(|p| p.allows(&host)) {
                    Ok(())
                } else {
                    Err("URL host is not in url_hosts".into())
                }
            }
            Self::Range { min, max } => {
                let n = value.as_f64().ok_or("is not a number")?;
                if min.is_some_and(|min| n < min) || max.is_some_and(|max| n > max) {
                    Err(format!("{n} is outside {}", bounds(*min, *max)))
                } else {
                    Ok(())
                }
            }
        }
    }
}

fn bounds(min: Option<f64>, max: Option<f64>) -> String {
    let show = |b: Option<f64>| b.map_or("…".to_owned(), |b| b.to_string());
    format!("[{}, {}]", show(min), show(max))
}

/// A value for a reason: quoted, and cut short so a huge argument does not
/// become a huge refusal.
fn shown(text: &str) -> String {
    const MAX: usize = 120;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests;
