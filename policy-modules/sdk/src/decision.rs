//! A module's answer for one call (ABI.md "Output"): a verdict, a reason for
//! refusals, and annotations for the decision log.

use std::borrow::Cow;

use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// What a module decided. Built with [`Decision::allow`], [`Decision::deny`]
/// or [`Decision::needs_approval`]; the fields stay private so a refusal
/// always carries a reason, as the ABI requires.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    decision: Verdict,
    reason: Option<String>,
    /// In the order first annotated; few, so a list (no map to build).
    annotations: Vec<(Cow<'static, str>, Value)>,
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
            annotations: Vec::new(),
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
    /// log only; never shown to the agent). A key annotated again is replaced.
    pub fn annotate(mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Value>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.annotations.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.annotations.push((key, value)),
        }
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

    /// The annotations, in the order first made.
    pub fn annotations(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.annotations.iter().map(|(k, v)| (&**k, v))
    }

    /// The annotation under `key`, if any.
    pub fn annotation(&self, key: &str) -> Option<&Value> {
        self.annotations
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Appends the decision as the ABI's output JSON: what [`Serialize`]
    /// makes, written directly (it is written once per call).
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b"{\"decision\":\"");
        out.extend_from_slice(self.decision.as_str().as_bytes());
        out.push(b'"');
        if let Some(reason) = &self.reason {
            out.extend_from_slice(b",\"reason\":");
            serde_json::to_writer(&mut *out, reason)?;
        }
        if !self.annotations.is_empty() {
            out.extend_from_slice(b",\"annotations\":{");
            for (i, (key, value)) in self.annotations.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                serde_json::to_writer(&mut *out, value)?;
            }
            out.push(b'}');
        }
        out.push(b'}');
        Ok(())
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
            annotations: Vec::new(),
        }
    }
}

/// `{"decision": …, "reason": …, "annotations": {…}}`, absent parts left out.
impl Serialize for Decision {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("decision", &self.decision)?;
        if let Some(reason) = &self.reason {
            map.serialize_entry("reason", reason)?;
        }
        if !self.annotations.is_empty() {
            map.serialize_entry("annotations", &Annotations(&self.annotations))?;
        }
        map.end()
    }
}

struct Annotations<'a>(&'a [(Cow<'static, str>, Value)]);

impl Serialize for Annotations<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
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
    fn written_json_is_the_serialized_decision() {
        let decisions = [
            Decision::allow(),
            Decision::allow().annotate("rule", 3).annotate("rule", 4),
            Decision::deny("a \"quoted\" reason\n").annotate(String::from("k"), json!({"a": [1]})),
            Decision::needs_approval("ask")
                .annotate("x", "y")
                .annotate("z", true),
        ];
        for decision in decisions {
            let mut out = Vec::new();
            decision.write_json(&mut out).expect("writes");
            let written: Value = serde_json::from_slice(&out).expect("JSON");
            assert_eq!(
                written,
                serde_json::to_value(&decision).expect("serializes")
            );
        }
        let twice = Decision::allow().annotate("rule", 3).annotate("rule", 4);
        assert_eq!(twice.annotation("rule"), Some(&json!(4)));
        assert_eq!(twice.annotations().count(), 1);
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
