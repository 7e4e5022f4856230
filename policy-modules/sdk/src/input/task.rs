//! The live task context of a call: the task, its grants, its counters and
//! its recent calls (`null`/empty until the host's task feature fills them).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::nullable;
use crate::Constraint;

/// The task a call belongs to.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Task {
    /// The task's id.
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    /// What the task is for, in words.
    #[serde(deserialize_with = "nullable")]
    pub purpose: String,
    /// Free-form labels set when the task was opened.
    #[serde(deserialize_with = "nullable")]
    pub labels: Map<String, Value>,
    /// The agent running the task.
    pub agent: Option<String>,
    /// The user the task is done for.
    pub on_behalf_of: Option<String>,
    /// Seconds since the task was opened.
    #[serde(deserialize_with = "nullable")]
    pub age_secs: u64,
    /// Seconds until the task expires, if it does.
    pub remaining_secs: Option<u64>,
}

/// A just-in-time grant: one tool (glob), optionally one route, under
/// argument constraints, until a deadline, for a number of uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Grant {
    /// The grant's id (for decision logs).
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    /// The tool the grant covers, a glob.
    #[serde(deserialize_with = "nullable")]
    pub tool: String,
    /// The route the grant is limited to; `None` covers every route.
    pub route: Option<String>,
    /// Conditions every argument of the call must meet.
    #[serde(deserialize_with = "nullable")]
    pub constraints: Vec<Constraint>,
    /// Unix seconds after which the grant is dead. A grant without one reads
    /// as `0`, already dead: grants must say when they end.
    #[serde(deserialize_with = "nullable")]
    pub expires_at: u64,
    /// Uses left; `None` means unlimited until `expires_at`.
    pub uses_left: Option<u64>,
    /// Why the grant was given.
    #[serde(deserialize_with = "nullable")]
    pub reason: String,
    /// Who gave it.
    #[serde(deserialize_with = "nullable")]
    pub granted_by: String,
}

impl Grant {
    /// Whether the grant is alive at `unix_ms`: before its deadline and not
    /// used up. Says nothing about which call it covers.
    pub fn is_live(&self, unix_ms: u64) -> bool {
        self.expires_at.saturating_mul(1000) > unix_ms && self.uses_left != Some(0)
    }
}

/// The task's counters, not counting the call being decided.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Calls decided so far in the task.
    #[serde(deserialize_with = "nullable")]
    pub total: u64,
    /// Of those, calls denied.
    #[serde(deserialize_with = "nullable")]
    pub denied: u64,
    /// Calls so far per tool name.
    #[serde(deserialize_with = "nullable")]
    pub per_tool: BTreeMap<String, u64>,
}

/// One earlier call of the task.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RecentCall {
    /// The tool called.
    #[serde(deserialize_with = "nullable")]
    pub tool: String,
    /// The route it went through.
    #[serde(deserialize_with = "nullable")]
    pub route: String,
    /// `allow`, `deny` or `needs_approval`.
    #[serde(deserialize_with = "nullable")]
    pub decision: String,
    /// When, in milliseconds since the Unix epoch.
    #[serde(deserialize_with = "nullable")]
    pub at_ms: u64,
}
