//! A module's answer for one call (ABI.md "Output"): a verdict, a reason for
//! refusals, and annotations for the decision log.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a module decided. Built with [`Decision::allow`], [`Decision::deny`]
/// or [`Decision::needs_approval`]; the fields stay private so a refusal
/// always carries a reason, as the ABI requires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    decision: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Map::is_empty")]
    annotations: Map<String, Value>,
}

/// The verdict of a [`Decision`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The call may go ahead (as far as this module is concerned).
    Allow,
    /// The call is refused.
    Deny,
    /// The call waits for a human.
    NeedsApproval,
}

// === impl Decision ===

impl Decision {
    /// Let the call through.
    pub fn allow() -> Self {
        Self {
            decision: Verdict::Allow,
            reason: None,
            annotations: Map::new(),
        }
    }

    /// Refuse the call. `reason` is shown to the agent's model and logged.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self::refusal(Verdict::Deny, reason.into())
    }

    /// Park the call for a human. `reason` is shown to the approver and the
    /// agent's model, and logged.
    pub fn needs_approval(reason: impl Into<String>) -> Self {
        Self::refusal(Verdict::NeedsApproval, reason.into())
    }

    /// The same decision with `key: value` added to its annotations (decision
    /// log only; never shown to the agent).
    pub fn annotate(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.annotations.insert(key.into(), value.into());
        self
    }

    /// The verdict.
    pub fn verdict(&self) -> Verdict {
        self.decision
    }

    /// The reason; always `Some` for refusals.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The annotations.
    pub fn annotations(&self) -> &Map<String, Value> {
        &self.annotations
    }

    /// Whether the verdict is [`Verdict::Allow`].
    pub fn is_allow(&self) -> bool {
        self.decision == Verdict::Allow
    }

    fn refusal(decision: Verdict, reason: String) -> Self {
        // The host rejects a refusal without a reason as a policy error; an
        // empty one would be as unhelpful to the agent, so say so instead.
        let reason = if reason.trim().is_empty() {
            "refused by policy (the module gave no reason)".to_owned()
        } else {
            reason
        };
        Self {
            decision,
            reason: Some(reason),
            annotations: Map::new(),
        }
    }
}

// === impl Verdict ===

impl Verdict {
    /// The verdict as the ABI spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::NeedsApproval => "needs_approval",
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn serializes_as_the_abi_output() {
        let allow = serde_json::to_value(Decision::allow()).expect("serializes");
        assert_eq!(allow, json!({"decision": "allow"}));
        let deny = Decision::deny("path /etc is outside /workspace").annotate("rule", "fs-prefix");
        assert_eq!(
            serde_json::to_value(&deny).expect("serializes"),
            json!({"decision": "deny", "reason": "path /etc is outside /workspace",
                   "annotations": {"rule": "fs-prefix"}})
        );
        let approval = Decision::needs_approval("ask");
        assert_eq!(approval.verdict().as_str(), "needs_approval");
        assert!(!approval.is_allow());
    }

    #[test]
    fn refusals_always_have_a_reason() {
        assert!(
            Decision::deny("  ")
                .reason()
                .is_some_and(|r| !r.trim().is_empty())
        );
    }
}
