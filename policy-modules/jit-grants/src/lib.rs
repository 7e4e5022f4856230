//! Policy module `jit-grants` (decide stage): a call goes ahead only under a
//! live just-in-time grant of its task — right tool and route, every
//! argument constraint met, before the deadline, with uses left. Without
//! one the call is denied or parked for approval, as configured.

use serde::Deserialize;
use serde_json::Value;
use toolgate_policy_sdk::{
    Decision, Field, Grant, Input, Phase, Policy, Violation, glob, toolgate_policy,
};

toolgate_policy!(JitGrants);

/// The module's config: `{"missing": "needs_approval"}`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What to answer when no live grant covers the call.
    #[serde(default)]
    pub missing: Missing,
}

/// The answer for a call no live grant covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missing {
    /// Refuse outright.
    Deny,
    /// Park the call for a human, who may grant it.
    #[default]
    NeedsApproval,
}

/// The configured module.
#[derive(Debug)]
pub struct JitGrants {
    missing: Missing,
}

impl Policy for JitGrants {
    type Config = Config;

    /// Sent as values (see `decide_values`): the grants are the only
    /// structure read, and the arguments only when a grant that names the
    /// call has constraints.
    const INPUT_FIELDS: Option<&'static [&'static str]> = Some(&[
        "/phase",
        "/route/name",
        "/tool/name",
        "/tool/arguments",
        "/grants",
        "/time/unix_ms",
    ]);
    const INPUT_VALUES: bool = true;

    fn configure(config: Config) -> Result<Self, String> {
        Ok(Self {
            missing: config.missing,
        })
    }

    fn decide(&self, input: &Input) -> Decision {
        self.decide_for(&Call {
            phase: input.phase,
            route: &input.route.name,
            tool: &input.tool.name,
            arguments: &input.tool.arguments,
            grants: &input.grants,
            now: input.time.unix_ms,
        })
    }

    /// Decides from the declared fields' values; anything unusual (a field
    /// of another type, an unknown phase) is left to `decide`, which reads
    /// the same values as a typed input and says what is wrong.
    fn decide_values(&self, values: &[Field<'_>]) -> Option<Decision> {
        let [phase, route, tool, arguments, grants, now] = values else {
            return None;
        };
        let phase = match phase {
            Field::Absent | Field::Null | Field::Str("call") => Phase::Call,
            Field::Str("list") => Phase::List,
            Field::Str("grant") => Phase::Grant,
            Field::Str(_) | Field::Json(_) => return None,
        };
        let (route, tool) = (text(*route)?, text(*tool)?);
        let now = match now {
            Field::Absent | Field::Null => 0,
            Field::Json(n) => n.parse().ok()?,
            Field::Str(_) => return None,
        };
        let grants: Vec<Grant> = match grants {
            Field::Absent | Field::Null => Vec::new(),
            Field::Json(list) => serde_json::from_str(list).ok()?,
            Field::Str(_) => return None,
        };
        let constrained = phase != Phase::List
            && grants
                .iter()
                .any(|g| !g.constraints.is_empty() && names(g, tool, route));
        let arguments = match arguments {
            _ if !constrained => Value::Null,
            Field::Absent | Field::Null => Value::Null,
            Field::Str(s) => Value::String((*s).to_owned()),
            Field::Json(json) => serde_json::from_str(json).ok()?,
        };
        Some(self.decide_for(&Call {
            phase,
            route,
            tool,
            arguments: &arguments,
            grants: &grants,
            now,
        }))
    }
}

/// What a decision reads, from either form of the input.
struct Call<'a> {
    phase: Phase,
    route: &'a str,
    tool: &'a str,
    /// `null` when no grant naming the call has constraints (values form).
    arguments: &'a Value,
    grants: &'a [Grant],
    now: u64,
}

impl JitGrants {
    fn decide_for(&self, call: &Call<'_>) -> Decision {
        let (tool, now) = (call.tool, call.now);
        let mut nearest: Option<Miss<'_>> = None;
        for grant in call
            .grants
            .iter()
            .filter(|g| names(g, call.tool, call.route))
        {
            let miss = if !grant.is_live(now) {
                Miss::Dead(grant)
            } else if call.phase == Phase::List {
                // Listing shows a tool any live grant names; the arguments
                // are not known until the call.
                return allowed(grant);
            } else {
                match grant
                    .constraints
                    .iter()
                    .try_for_each(|c| c.check(call.arguments))
                {
                    Ok(()) => return allowed(grant),
                    Err(violation) => Miss::Constraint(grant, violation),
                }
            };
            if nearest.as_ref().is_none_or(|n| miss.nearer_than(n)) {
                nearest = Some(miss);
            }
        }
        let mut reason = match call.phase {
            Phase::List => format!("no live grant covers tool {tool:?}"),
            Phase::Call | Phase::Grant => {
                format!("no live grant covers tool {tool:?} with these arguments")
            }
        };
        if let Some(miss) = &nearest {
            reason.push_str("; ");
            reason.push_str(&miss.describe(now));
        }
        match self.missing {
            Missing::Deny => Decision::deny(reason),
            Missing::NeedsApproval => Decision::needs_approval(reason),
        }
    }
}

/// Whether a grant is for this tool (glob) on this route (if it names one).
fn names(grant: &Grant, tool: &str, route: &str) -> bool {
    glob::matches(&grant.tool, tool) && grant.route.as_deref().is_none_or(|r| r == route)
}

/// A string field; absent or `null` reads as empty, as in the typed input.
fn text(field: Field<'_>) -> Option<&str> {
    match field {
        Field::Absent | Field::Null => Some(""),
        other => other.as_str(),
    }
}

fn allowed(grant: &Grant) -> Decision {
    Decision::allow().annotate("grant", grant.id.as_str())
}

/// Why a grant for the right tool did not cover the call.
enum Miss<'a> {
    /// Expired or used up.
    Dead(&'a Grant),
    /// Live, but an argument constraint failed: the nearest miss.
    Constraint(&'a Grant, Violation),
}

impl Miss<'_> {
    fn nearer_than(&self, other: &Miss<'_>) -> bool {
        matches!((self, other), (Miss::Constraint(..), Miss::Dead(_)))
    }

    fn describe(&self, now_ms: u64) -> String {
        match self {
            Miss::Constraint(grant, violation) => format!("grant {}: {violation}", grant.id),
            Miss::Dead(grant) if grant.expires_at.saturating_mul(1000) <= now_ms => {
                format!("grant {} expired", grant.id)
            }
            Miss::Dead(grant) => format!("grant {} has no uses left", grant.id),
        }
    }
}

#[cfg(test)]
mod tests;
