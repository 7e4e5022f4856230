//! Task-context stage: the records the store keeps — tasks, grants,
//! approvals and per-task counters. Plain owned data: the store hands out
//! copies, never references into its maps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

/// The wall clock in [`Millis`].
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh random id with a readable prefix, e.g. `task_3f9a…` (128 bits).
pub fn new_id(prefix: &str) -> String {
    let mut bytes = [0u8; 16];
    // The OS RNG failing is not recoverable for id generation; fall back to
    // the clock and a counter, which stay unique within this process.
    if getrandom::fill(&mut bytes).is_err() {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&now_ms().to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    format!("{prefix}_{}", hex(&bytes))
}

/// Lowercase hex of `bytes`: the `hex` crate's encoder (the one the
/// gateway uses), under the name its callers know.
pub fn hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Who did something, when, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ending {
    pub by: String,
    pub at_ms: Millis,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Active,
    Completed,
    Cancelled,
    Expired,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }
}

/// A unit of work an agent was given: the scope every grant lives in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    /// The subject (SPIFFE ID or `sub`) of the agent that works on the task.
    pub agent: String,
    /// The `iss` the agent's tokens must come from; `None`: any trusted
    /// issuer (fine for SPIFFE IDs, whose trust domain scopes them; set it
    /// for OAuth subjects, which are only unique per issuer).
    #[serde(default)]
    pub issuer: Option<String>,
    /// The user the agent acts for, if any.
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    /// Why the task exists; required.
    pub purpose: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created_at_ms: Millis,
    pub expires_at_ms: Millis,
    pub created_by: String,
    pub state: TaskState,
    /// Set when the task completed, was cancelled or expired.
    #[serde(default)]
    pub ended: Option<Ending>,
}

impl Task {
    /// The state as of `now`: an active task past its expiry is expired.
    pub fn state_at(&self, now: Millis) -> TaskState {
        match self.state {
            TaskState::Active if now >= self.expires_at_ms => TaskState::Expired,
            state => state,
        }
    }

    pub fn is_active(&self, now: Millis) -> bool {
        self.state_at(now) == TaskState::Active
    }
}

/// One argument constraint of a grant: a JSON pointer into the call's
/// arguments and exactly one test (policy-modules/ABI.md). Read by hand, so
/// that a wrong shape is refused with a message naming the field and the
/// accepted operators.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Constraint {
    pub pointer: String,
    #[serde(flatten)]
    pub test: ConstraintTest,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintTest {
    Equals(Value),
    OneOf(Vec<Value>),
    Glob(String),
    /// Matched against the whole value, in the regex-lite dialect the
    /// policy modules evaluate (`toolgate_pattern::regex`).
    Regex(String),
    Range(Range),
    Prefix(String),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Range {
    // An open bound is left out, never written as `null`: the policy SDK
    // reads `"min": null` as a malformed range that never holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The operators a constraint may use, as error messages list them.
pub const CONSTRAINT_OPERATORS: &str = "equals, one_of, glob, regex, range, prefix";

// === impl Constraint ===

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::<String, Value>::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom(format!(
                "constraints: each constraint is an object {{\"pointer\": \"/arg\", <operator>: ...}} \
                 with one operator of {CONSTRAINT_OPERATORS}"
            ))
        })?;
        Self::from_map(map).map_err(serde::de::Error::custom)
    }
}

impl Constraint {
    fn from_map(mut map: serde_json::Map<String, Value>) -> Result<Self, String> {
        let pointer = match map.remove("pointer") {
            Some(Value::String(pointer)) => pointer,
            Some(_) | None => {
                return Err(
                    "constraints: each constraint needs a \"pointer\": a JSON pointer \
                     into the arguments, such as \"/repo\""
                        .into(),
                );
            }
        };
        let mut operators = map.into_iter();
        let (key, value) = match (operators.next(), operators.next()) {
            (Some(one), None) => one,
            (None, _) => {
                return Err(format!(
                    "constraints: the constraint on {pointer:?} has no operator; \
                     give one of {CONSTRAINT_OPERATORS}"
                ));
            }
            (Some((a, _)), Some((b, _))) => {
                return Err(format!(
                    "constraints: the constraint on {pointer:?} has more than one operator \
                     ({a:?}, {b:?}); give exactly one of {CONSTRAINT_OPERATORS}"
                ));
            }
        };
        let test = ConstraintTest::from_entry(&key, value)
            .map_err(|why| format!("constraints: the constraint on {pointer:?}: {why}"))?;
        Ok(Self { pointer, test })
    }
}

// === impl ConstraintTest ===

impl ConstraintTest {
    fn from_entry(key: &str, value: Value) -> Result<Self, String> {
        let takes = |what: &str| Err(format!("\"{key}\" takes {what}"));
        match (key, value) {
            ("equals", value) => Ok(Self::Equals(value)),
            ("one_of", Value::Array(values)) => Ok(Self::OneOf(values)),
            ("one_of", _) => takes("an array of values"),
            ("glob", Value::String(s)) => Ok(Self::Glob(s)),
            ("regex", Value::String(s)) => Ok(Self::Regex(s)),
            ("prefix", Value::String(s)) => Ok(Self::Prefix(s)),
            ("glob" | "regex" | "prefix", _) => takes("a string"),
            ("range", Value::Object(bounds)) => {
                Range::from_bounds(bounds).map(Self::Range).or_else(|()| {
                    takes("an object {\"min\": number, \"max\": number} (either may be left out)")
                })
            }
            ("range", _) => {
                takes("an object {\"min\": number, \"max\": number} (either may be left out)")
            }
            (other, _) => Err(format!(
                "unknown operator {other:?}; use one of {CONSTRAINT_OPERATORS}"
            )),
        }
    }
}

impl Range {
    fn from_bounds(bounds: serde_json::Map<String, Value>) -> Result<Self, ()> {
        let (mut min, mut max) = (None, None);
        for (key, value) in bounds {
            let slot = match key.as_str() {
                "min" => &mut min,
                "max" => &mut max,
                _ => return Err(()),
            };
            *slot = match value {
                Value::Null => None,
                v => Some(v.as_f64().ok_or(())?),
            };
        }
        Ok(Self { min, max })
    }
}

/// Where a grant came from: every grant traces to a person or a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum GrantSource {
    /// Issued directly by an operator through the admin API.
    Operator,
    /// Created by approving a pending approval.
    Approval { approval_id: String },
    /// An agent's grant request that policy approved at once.
    Policy {
        approval_id: String,
        evidence: Vec<String>,
    },
}

/// A just-in-time permission: one tool (glob), maybe one route, maybe
/// argument constraints, always an expiry, maybe a use limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub task_id: String,
    /// The task's agent, copied so grants can be revoked by subject.
    pub agent: String,
    /// Tool name or glob (`*` any run of characters, `?` one).
    pub tool: String,
    /// `tool` is a literal name, not a glob (approvals of one exact call).
    #[serde(default)]
    pub tool_exact: bool,
    /// `None`: any route.
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    #[serde(default)]
    pub not_before_ms: Option<Millis>,
    pub expires_at_ms: Millis,
    #[serde(default)]
    pub max_uses: Option<u64>,
    #[serde(default)]
    pub uses: u64,
    pub reason: String,
    pub granted_by: String,
    pub created_at_ms: Millis,
    pub source: GrantSource,
    /// Set for grants scoped to one exact call (approvals): SHA-256 of the
    /// canonical JSON of its arguments.
    #[serde(default)]
    pub argument_digest: Option<String>,
    #[serde(default)]
    pub revoked: Option<Ending>,
}

impl Grant {
    /// Usable at `now` on its own terms (the task's state is checked apart).
    pub fn is_live(&self, now: Millis) -> bool {
        self.revoked.is_none()
            && now < self.expires_at_ms
            && self.not_before_ms.is_none_or(|nb| now >= nb)
            && self.max_uses.is_none_or(|max| self.uses < max)
    }

    pub fn uses_left(&self) -> Option<u64> {
        self.max_uses.map(|max| max.saturating_sub(self.uses))
    }

    /// True if the grant names this tool on this route.
    pub fn covers(&self, route: &str, tool: &str) -> bool {
        self.route.as_deref().is_none_or(|r| r == route)
            && if self.tool_exact {
                self.tool == tool
            } else {
                toolgate_pattern::glob::matches(&self.tool, tool)
            }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalKind {
    /// A tool call policy answered `needs_approval` for.
    Call,
    /// An agent asked for a grant itself.
    Request,
}

/// What an approved agent request turns into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestedGrant {
    pub tool: String,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    pub ttl_ms: Millis,
    #[serde(default)]
    pub max_uses: Option<u64>,
}

/// A call (or grant request) waiting for a human.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub kind: ApprovalKind,
    /// Approvals live in a task: the grant approving creates belongs to it.
    pub task_id: String,
    /// Who asked: the caller's subject.
    pub agent: String,
    #[serde(default)]
    pub on_behalf_of: Option<String>,
    pub route: String,
    pub tool: String,
    /// The call's arguments (kind `call`), or those the request names.
    #[serde(default)]
    pub arguments: Value,
    pub argument_digest: String,
    /// Why approval is needed: policy's reason or the agent's justification.
    pub why: String,
    /// For `request`: the grant the agent asked for.
    #[serde(default)]
    pub requested: Option<RequestedGrant>,
    pub created_at_ms: Millis,
    /// A pending approval nobody answers by then expires.
    pub expires_at_ms: Millis,
    pub state: ApprovalState,
    #[serde(default)]
    pub decided: Option<Ending>,
    /// The grant approving created.
    #[serde(default)]
    pub grant_id: Option<String>,
}

impl Approval {
    pub fn state_at(&self, now: Millis) -> ApprovalState {
        match self.state {
            ApprovalState::Pending if now >= self.expires_at_ms => ApprovalState::Expired,
            state => state,
        }
    }
}

/// Per-task call counters (policy-modules/ABI.md `counters`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub total: u64,
    pub denied: u64,
    pub per_tool: BTreeMap<String, u64>,
}

/// One entry of a task's recent calls (ABI.md `recent_calls`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentCall {
    pub tool: String,
    pub route: String,
    pub decision: String,
    pub at_ms: Millis,
}

/// A task's counters and recent calls, as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub counters: Counters,
    /// Shared entries: every call copies its task's activity as it was
    /// before the call, which then costs a reference count per entry
    /// rather than three strings.
    pub recent: Vec<std::sync::Arc<RecentCall>>,
}

/// SHA-256 (hex) of the canonical JSON of a call's arguments: object keys
/// sorted, no whitespace. Scopes an approval's grant to one exact call.
pub fn argument_digest(arguments: &Value) -> String {
    let mut canonical = Vec::new();
    write_canonical(arguments, &mut canonical);
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical).as_ref())
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(key.clone()), out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        scalar => {
            // Serializing a scalar Value cannot fail.
            let _ = serde_json::to_writer(&mut *out, scalar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn digest_ignores_key_order_and_whitespace() {
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b: Value = serde_json::from_str(r#"{ "a": {"x":"s","y":[1,2]}, "b":1 }"#).unwrap();
        assert_eq!(argument_digest(&a), argument_digest(&b));
        assert_ne!(argument_digest(&a), argument_digest(&json!({"b": 2})));
    }

    #[test]
    fn constraints_round_trip_in_the_abi_shape() {
        let c: Constraint =
            serde_json::from_value(json!({"pointer": "/amount", "range": {"max": 100}})).unwrap();
        assert_eq!(
            c.test,
            ConstraintTest::Range(Range {
                min: None,
                max: Some(100.0)
            })
        );
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["pointer"], "/amount");
        assert!(serde_json::from_value::<Constraint>(json!({"pointer": "/a", "nope": 1})).is_err());
    }

    fn refusal(value: Value) -> String {
        serde_json::from_value::<Constraint>(value)
            .expect_err("refused")
            .to_string()
    }

    #[test]
    fn a_wrong_constraint_is_refused_naming_the_field_and_the_operators() {
        let unknown = refusal(json!({"pointer": "/a", "nope": 1}));
        assert!(unknown.starts_with("constraints: "), "{unknown}");
        assert!(unknown.contains("unknown operator \"nope\""), "{unknown}");
        assert!(unknown.contains(CONSTRAINT_OPERATORS), "{unknown}");
        assert!(!unknown.contains("variant"), "{unknown}");
        let two = refusal(json!({"pointer": "/a", "glob": "x", "prefix": "y"}));
        assert!(two.contains("more than one operator"), "{two}");
        let none = refusal(json!({"pointer": "/a"}));
        assert!(none.contains("no operator"), "{none}");
        let no_pointer = refusal(json!({"equals": 1}));
        assert!(no_pointer.contains("\"pointer\""), "{no_pointer}");
        let typed = refusal(json!({"pointer": "/a", "glob": 3}));
        assert!(typed.contains("\"glob\" takes a string"), "{typed}");
        let range = refusal(json!({"pointer": "/a", "range": {"min": "low"}}));
        assert!(range.contains("\"range\" takes an object"), "{range}");
        let shape = refusal(json!("just a string"));
        assert!(shape.contains(CONSTRAINT_OPERATORS), "{shape}");
    }

    #[test]
    fn ids_are_unique_and_prefixed() {
        let a = new_id("task");
        assert!(a.starts_with("task_") && a.len() == 37);
        assert_ne!(a, new_id("task"));
    }
}
