//! Decide stage: one [`Decision`] per tool call (and per tool in a
//! `tools/list` result) from the snapshot's policy set. A denial is a value,
//! not an error; any error while deciding must deny.

use serde_json::Value;

use crate::config::DefaultDecision;
use crate::identify::Identity;
use crate::snapshot::Route;

/// Why a call is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A `tools/call` (or one request on an `http` route).
    Call,
    /// Whether to show a tool in a `tools/list` result.
    List,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::List => "list",
        }
    }
}

/// Everything a decision may depend on. Later stages add the live task context.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    pub phase: Phase,
    pub route: &'a Route,
    pub tool: &'a str,
    pub arguments: &'a Value,
    /// The JSON-RPC method, or the HTTP method on `http` routes.
    pub method: &'a str,
    pub identity: &'a Identity,
}

/// Why a decision came out as it did. The same string is the metric label,
/// the log field and (for refusals) part of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No policy module applies and the route allows by default.
    RouteDefaultAllow,
    /// No policy module applies and the route denies by default.
    NoPolicy,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RouteDefaultAllow => "route_default_allow",
            Self::NoPolicy => "no_policy",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow(Reason),
    Deny { reason: Reason, message: String },
    NeedsApproval { reason: Reason, message: String },
}

impl Decision {
    pub fn verdict(&self) -> &'static str {
        match self {
            Self::Allow(_) => "allow",
            Self::Deny { .. } => "deny",
            Self::NeedsApproval { .. } => "needs_approval",
        }
    }

    pub fn reason(&self) -> Reason {
        match self {
            Self::Allow(r) => *r,
            Self::Deny { reason, .. } | Self::NeedsApproval { reason, .. } => *reason,
        }
    }

    pub fn is_allow(&self) -> bool {
        matches!(self, Self::Allow(_))
    }

    /// The text an agent's model is shown when the call is refused.
    pub fn refusal_text(&self) -> Option<String> {
        match self {
            Self::Allow(_) => None,
            Self::Deny { reason, message } => Some(format!(
                "toolgate denied this call ({}): {message}",
                reason.as_str()
            )),
            Self::NeedsApproval { reason, message } => Some(format!(
                "toolgate needs a human approval for this call ({}): {message}",
                reason.as_str()
            )),
        }
    }
}

/// The policies in force. Policy modules are evaluated here; until a route
/// has one, its `default_decision` answers.
#[derive(Debug, Default)]
pub struct PolicySet {}

impl PolicySet {
    pub fn decide(&self, input: &DecisionInput<'_>) -> Decision {
        match input.route.default_decision {
            DefaultDecision::Allow => Decision::Allow(Reason::RouteDefaultAllow),
            DefaultDecision::Deny => Decision::Deny {
                reason: Reason::NoPolicy,
                message: format!(
                    "no policy allows tool {:?} on route {:?}",
                    input.tool, input.route.name
                ),
            },
        }
    }
}
