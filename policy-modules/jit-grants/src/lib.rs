//! Policy module `jit-grants` (decide stage): a call goes ahead only under a
//! live just-in-time grant of its task — right tool and route, every
//! argument constraint met, before the deadline, with uses left. Without
//! one the call is denied or parked for approval, as configured.

use serde::Deserialize;
use toolgate_policy_sdk::{
    Decision, Grant, Input, Phase, Policy, Violation, glob, toolgate_policy,
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

    const INPUT_FIELDS: Option<&'static [&'static str]> =
        Some(&["/phase", "/route/name", "/tool", "/grants", "/time/unix_ms"]);

    fn configure(config: Config) -> Result<Self, String> {
        Ok(Self {
            missing: config.missing,
        })
    }

    fn decide(&self, input: &Input) -> Decision {
        let tool = &input.tool.name;
        let now = input.time.unix_ms;
        let mut nearest: Option<Miss<'_>> = None;
        for grant in input.grants.iter().filter(|g| names_call(g, input)) {
            let miss = if !grant.is_live(now) {
                Miss::Dead(grant)
            } else if input.phase == Phase::List {
                // Listing shows a tool any live grant names; the arguments
                // are not known until the call.
                return allowed(grant);
            } else {
                match grant
                    .constraints
                    .iter()
                    .try_for_each(|c| c.check(&input.tool.arguments))
                {
                    Ok(()) => return allowed(grant),
                    Err(violation) => Miss::Constraint(grant, violation),
                }
            };
            if nearest.as_ref().is_none_or(|n| miss.nearer_than(n)) {
                nearest = Some(miss);
            }
        }
        let mut reason = match input.phase {
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
fn names_call(grant: &Grant, input: &Input) -> bool {
    glob::matches(&grant.tool, &input.tool.name)
        && grant
            .route
            .as_ref()
            .is_none_or(|route| *route == input.route.name)
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
