//! Record stage: the decision log's line format (version 1), used to write
//! lines and to read them back. Every line is one JSON object:
//!
//! ```text
//! {"v":1,"seq":42,"id":"<UUIDv7>","ts":"2026-12-04T10:11:12.345Z","kind":"decision",
//!  …fields of the kind…,"prev":"<hash of line 41>","hash":"<hash of this line>"}
//! ```
//!
//! `seq` counts lines from the first line of the log, across files; `hash`
//! is the SHA-256 (hex) of the line's text up to `,"hash":"`. Fields that
//! have no value are left out. Kinds: `decision`, `task`, `grant`,
//! `approval` (task events), `admin`, and `log` (the log's own events:
//! `opened`, `sealed`, `dropped`).

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The current line format version.
pub const VERSION: u32 = 1;

/// One line. `'static` when read back (every field owned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line<'a> {
    pub v: u32,
    pub seq: u64,
    /// UUIDv7: time-ordered.
    pub id: Cow<'a, str>,
    /// RFC 3339, UTC, milliseconds.
    pub ts: Cow<'a, str>,
    #[serde(flatten)]
    pub body: Body<'a>,
    pub prev: Cow<'a, str>,
    /// Read back only: the writer appends it after hashing the rest.
    #[serde(default, skip_serializing)]
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body<'a> {
    Decision(Box<DecisionLine<'a>>),
    Task(EventLine<'a>),
    Grant(EventLine<'a>),
    Approval(EventLine<'a>),
    Admin(AdminLine<'a>),
    Log(LogLine<'a>),
}

/// One decided tool call (`phase` `call`) or grant request (`grant`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionLine<'a> {
    pub phase: Cow<'a, str>,
    pub route: Cow<'a, str>,
    pub method: Cow<'a, str>,
    pub tool: Cow<'a, str>,
    /// Masked per `audit.mask`.
    pub arguments: Arguments<'a>,
    pub identity: IdentityLine<'a>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskLine<'a>>,
    /// Grants the call used up a use of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Cow<'a, str>>,
    /// Who answered the approval that allowed or refused the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<Cow<'a, str>>,
    /// Every module evaluated, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<ModuleLine<'a>>,
    /// `allow`, `deny` or `needs_approval`.
    pub decision: Cow<'a, str>,
    /// The reason code (`policy_allow`, `no_policy`, `audit_unavailable`, …).
    pub reason: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'a, str>>,
    pub latency_us: LatencyLine,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamLine<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<Cow<'a, str>>,
}

/// A call's arguments in a decision line: a value (masked by the writer,
/// or read back), or JSON text serde_json made on the request path when no
/// mask applies, written out as it is. Either serializes as the same JSON
/// and compares by value; reading back always gives a value.
#[derive(Debug, Clone)]
pub enum Arguments<'a> {
    Value(Cow<'a, Value>),
    Json(Cow<'a, str>),
}

impl Arguments<'_> {
    /// The arguments as a value (text that is not JSON reads as `null`).
    pub fn to_value(&self) -> Value {
        match self {
            Self::Value(v) => v.clone().into_owned(),
            Self::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
        }
    }
}

impl PartialEq for Arguments<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Value(a), Self::Value(b)) => a == b,
            (Self::Json(a), Self::Json(b)) => a == b,
            (a, b) => a.to_value() == b.to_value(),
        }
    }
}

impl Serialize for Arguments<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(v) => v.serialize(s),
            Self::Json(text) => serde_json::value::RawValue::from_string(text.clone().into_owned())
                .map_err(serde::ser::Error::custom)?
                .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Arguments<'_> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(|v| Self::Value(Cow::Owned(v)))
    }
}

/// The caller: never a token or a claim set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityLine<'a> {
    /// `anonymous` for a route without authentication.
    pub subject: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<Cow<'a, str>>,
    /// With delegation (RFC 8693 `act`): the user acted for (the token's `sub`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<Cow<'a, str>>,
    /// …the acting agent (`act.sub`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<Cow<'a, str>>,
    /// …and earlier actors, most recent first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<Cow<'a, str>>,
}

/// The task a call or event belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLine<'a> {
    pub id: Cow<'a, str>,
    /// Absent when the task is unknown (refused as `task_invalid`) or purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "no_labels")]
    pub labels: Cow<'a, BTreeMap<String, String>>,
}

/// What one policy module said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModuleLine<'a> {
    pub name: Cow<'a, str>,
    pub version: Cow<'a, str>,
    /// First 12 hex digits of the module's SHA-256 (as in `/v1/policies`).
    pub sha256: Cow<'a, str>,
    /// `allow`, `deny`, `needs_approval`, or `fault`.
    pub verdict: Cow<'a, str>,
    /// The module's own reason; for a fault, its kind (`deadline`, `trap`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Cow<'a, str>>,
}

/// Microseconds spent identifying the caller, deciding (policy), waiting for
/// the upstream's response headers, and in all until the record was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyLine {
    pub identify: u64,
    pub decide: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<u64>,
    pub total: u64,
}

/// The upstream's answer to an allowed call: a status, or why none came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamLine<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Cow<'a, str>>,
}

/// A task, grant or approval change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventLine<'a> {
    /// `task_created`, `grant_issued`, `approval_approved`, …
    pub event: Cow<'a, str>,
    /// The task, grant or approval id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskLine<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Cow<'a, str>>,
    /// Sweeps: how many expired at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<GrantLine<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalLine<'a>>,
}

/// A grant as it stood when the event was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrantLine<'a> {
    pub tool: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<Cow<'a, str>>,
    /// How many constraints narrow it (their values are not logged).
    pub constraints: usize,
    pub expires_at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u64>,
    pub granted_by: Cow<'a, str>,
    /// `operator`, `approval` or `policy`.
    pub source: Cow<'a, str>,
    /// The approval it came from (source `approval` or `policy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Cow<'a, str>>,
    /// The modules that approved it (source `policy`): `name@version#hash`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Cow<'a, str>>,
    pub reason: Cow<'a, str>,
}

/// An approval as it stood when the event was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalLine<'a> {
    /// `call` (a parked call) or `request` (an agent's grant request).
    pub kind: Cow<'a, str>,
    pub route: Cow<'a, str>,
    pub tool: Cow<'a, str>,
    pub agent: Cow<'a, str>,
    /// Masked per `audit.mask`.
    pub arguments: Cow<'a, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Cow<'a, str>>,
}

/// A change requested through the admin API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminLine<'a> {
    pub actor: Cow<'a, str>,
    pub role: Cow<'a, str>,
    pub action: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Cow<'a, str>>,
    pub outcome: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Cow<'a, str>>,
}

/// The log's own events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine<'a> {
    /// `opened` (first line of every file), `sealed` (last line of a file
    /// closed by rotation or shutdown), `dropped` (records not written).
    pub event: Cow<'a, str>,
    /// opened: `start`, `rotation` or `recovery` (after a write failure);
    /// sealed: `rotation` or `shutdown`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cow<'a, str>>,
    /// opened: where the chain continues from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousLine<'a>>,
    /// dropped: how many records were not written since the last line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// The end of the file before, as the writer knew it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviousLine<'a> {
    pub file: Cow<'a, str>,
    /// `seq` and `hash` of its last line.
    pub seq: u64,
    pub hash: Cow<'a, str>,
    /// Length of its chained content, in bytes.
    pub bytes: u64,
    /// Bytes after that: an incomplete write (crash, failing disk).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub torn_bytes: u64,
    /// At a restart, what `HEAD` said if it disagreed with the file: the
    /// file lost lines while the gateway was down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadLine<'a>>,
}

/// The anchor the writer keeps in `HEAD`: the newest line written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadLine<'a> {
    pub file: Cow<'a, str>,
    pub seq: u64,
    pub hash: Cow<'a, str>,
    pub bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn no_labels(labels: &BTreeMap<String, String>) -> bool {
    labels.is_empty()
}
