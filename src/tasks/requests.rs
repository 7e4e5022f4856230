//! Task-context stage: what callers send to create tasks and grants and to
//! answer approvals (admin API and agents' grant requests), and the checks
//! on it. Every refusal names the field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, millis};
use crate::store::{Constraint, ConstraintTest, Millis};

#[cfg(test)]
#[path = "requests_tests.rs"]
mod tests;

/// `POST /v1/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// The agent's subject (SPIFFE ID or token `sub`).
    pub agent: String,
    /// The `iss` the agent's tokens must come from (recommended for OAuth
    /// subjects, which are unique only per issuer).
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    pub purpose: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// e.g. `"30m"`; default `tasks.default_ttl`, at most `tasks.max_ttl`.
    #[serde(default)]
    pub ttl: Option<String>,
}

/// `POST /v1/grants`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    pub task_id: String,
    /// Tool name or glob.
    pub tool: String,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// Unix seconds.
    #[serde(default)]
    pub not_before: Option<u64>,
    /// Unix seconds; or give `ttl`. One of them is required.
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub max_uses: Option<u64>,
    pub reason: String,
}

/// `POST /v1/approvals/{id}/approve`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Lifetime of the grant approving creates (default `approvals.grant_ttl`).
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub max_uses: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// An agent asking for a grant itself (`POST /_toolgate/grant-requests`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The route the grant is for; the caller's token must be valid for it.
    pub route: String,
    /// The task; default the task the caller's token names.
    #[serde(default)]
    pub task_id: Option<String>,
    pub tool: String,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// The arguments of the call the grant is for, if one (shown to the
    /// approver, and to policy in the `grant` phase).
    #[serde(default)]
    pub arguments: Option<serde_json::Value>,
    #[serde(default)]
    pub ttl: Option<String>,
    #[serde(default)]
    pub max_uses: Option<u64>,
    /// Why the agent needs it; required.
    pub reason: String,
}

pub(crate) fn duration(field: &'static str, text: &str) -> Result<Duration, Error> {
    crate::config::duration::parse(text).map_err(|message| Error::Invalid { field, message })
}

/// A lifetime `field` within `(0, cap]`; `knob` is the config key of the
/// cap and `what` the thing that lives, for the message
/// (`ttl: 2d is longer than 1d, the longest a grant may live (tasks.max_grant_ttl)`).
pub(crate) fn within(
    field: &'static str,
    ttl: Duration,
    cap: Duration,
    knob: &str,
    what: &str,
) -> Result<(), Error> {
    use crate::config::duration::human;
    if ttl.is_zero() {
        return Err(Error::invalid(field, "must be longer than 0s"));
    }
    if ttl > cap {
        return Err(Error::invalid(
            field,
            format!(
                "{} is longer than {}, the longest a {what} may live ({knob})",
                human(ttl),
                human(cap)
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_text(field: &'static str, text: &str, max: usize) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::invalid(field, "is required"));
    }
    if text.len() > max {
        return Err(Error::invalid(field, format!("is longer than {max} bytes")));
    }
    if text.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

pub(super) fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), Error> {
    if labels.len() > 64 {
        return Err(Error::invalid("labels", "at most 64 labels"));
    }
    for (k, v) in labels {
        check_text("labels", k, 128)?;
        if v.len() > 1024 || v.chars().any(char::is_control) {
            return Err(Error::invalid(
                "labels",
                format!("value of {k:?} is too long or has control characters"),
            ));
        }
    }
    Ok(())
}

/// The grant's `(not_before, expires_at)` in ms: expiry mandatory, capped.
pub(super) fn window(
    req: &NewGrant,
    now: Millis,
    cap: Duration,
) -> Result<(Option<Millis>, Millis), Error> {
    let not_before = req.not_before.map(|s| s.saturating_mul(1000));
    let start = not_before.unwrap_or(now).max(now);
    let expires = match (req.expires_at, req.ttl.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(Error::invalid(
                "ttl",
                "give either ttl or expires_at, not both",
            ));
        }
        (None, None) => {
            return Err(Error::invalid(
                "expires_at",
                "a grant must expire: give ttl (e.g. \"15m\") or expires_at (Unix seconds)",
            ));
        }
        (Some(at), None) => at.saturating_mul(1000),
        (None, Some(ttl)) => {
            let ttl = duration("ttl", ttl)?;
            within("ttl", ttl, cap, "tasks.max_grant_ttl", "grant")?;
            start.saturating_add(millis(ttl))
        }
    };
    let field = if req.ttl.is_some() {
        "ttl"
    } else {
        "expires_at"
    };
    if expires <= now || expires <= start {
        return Err(Error::invalid(
            field,
            "is not in the future (or not after not_before)",
        ));
    }
    if expires - now > millis(cap) {
        return Err(Error::invalid(
            field,
            format!(
                "the grant would end at {}, more than {} from now, the longest a grant may \
                 live (tasks.max_grant_ttl)",
                crate::config::timestamp::rfc3339(expires),
                crate::config::duration::human(cap)
            ),
        ));
    }
    Ok((not_before, expires))
}

/// A tool glob and constraints a grant may carry.
pub(crate) fn check_grant_scope(tool: &str, constraints: &[Constraint]) -> Result<(), Error> {
    check_text("tool", tool, 512)?;
    if constraints.len() > 64 {
        return Err(Error::invalid("constraints", "at most 64 constraints"));
    }
    for c in constraints {
        if !(c.pointer.is_empty() || c.pointer.starts_with('/')) {
            return Err(Error::invalid(
                "constraints",
                format!(
                    "pointer {:?} is not a JSON pointer (\"\" or \"/a/b\")",
                    c.pointer
                ),
            ));
        }
        match &c.test {
            ConstraintTest::Regex(re) => {
                // The policy SDK's engine and anchoring: a pattern the host
                // accepts is one every module can evaluate.
                regex_lite::RegexBuilder::new(&format!("^(?:{re})$"))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| Error::invalid("constraints", format!("regex {re:?}: {e}")))?;
            }
            ConstraintTest::Range(r) => {
                if r.min.is_none() && r.max.is_none() {
                    return Err(Error::invalid("constraints", "range needs min or max"));
                }
                if let (Some(min), Some(max)) = (r.min, r.max)
                    && min > max
                {
                    return Err(Error::invalid("constraints", "range min is above max"));
                }
            }
            ConstraintTest::OneOf(values) if values.is_empty() => {
                return Err(Error::invalid(
                    "constraints",
                    "one_of needs at least one value",
                ));
            }
            ConstraintTest::Equals(_)
            | ConstraintTest::OneOf(_)
            | ConstraintTest::Glob(_)
            | ConstraintTest::Prefix(_) => {}
        }
    }
    Ok(())
}
