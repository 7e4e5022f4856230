//! Identify stage: the typed identity handed to later stages. (These types
//! merge into `identify.rs`.)

use std::sync::Arc;

use std::sync::OnceLock;

use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

use super::spiffe::SpiffeId;

/// The caller, as later stages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Identity {
    /// No credential was verified for this call.
    Anonymous,
    /// A verified workload token (JWT-SVID or OAuth access token).
    Workload(#[serde(serialize_with = "serialize_workload")] Arc<Workload>),
}

impl Identity {
    /// The identity as the policy input carries it, serialized once.
    pub fn wire_json(&self) -> &RawValue {
        static ANONYMOUS: OnceLock<Box<RawValue>> = OnceLock::new();
        let cell = match self {
            Self::Anonymous => &ANONYMOUS,
            Self::Workload(w) => &w.derived.wire,
        };
        cell.get_or_init(|| {
            serde_json::value::to_raw_value(self).unwrap_or_else(|_| {
                // Plain data always serializes; a module given null denies.
                RawValue::from_string("null".to_owned()).expect("null is valid JSON")
            })
        })
    }

    /// The subject as it appears in decision logs.
    pub fn subject(&self) -> &str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Workload(workload) => &workload.subject,
        }
    }
}

/// What a verified token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Workload {
    /// `sub`.
    pub subject: String,
    /// `iss`.
    pub issuer: String,
    /// `sub` parsed as a SPIFFE ID (SPIFFE mode only).
    pub spiffe: Option<SpiffeId>,
    /// `aud`, a string or an array in the token.
    pub audience: Vec<String>,
    /// From `scope` (space-separated) or, without it, `scp` (array or string).
    pub scopes: Vec<String>,
    /// `exp`, unix seconds.
    pub expires_at: u64,
    /// Only the claims the issuer's rules select, never the whole set.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// Who acts for whom (RFC 8693 `act`).
    pub delegation: Delegation,
    /// From the configured task claim, if any.
    pub task_id: Option<String>,
    /// What is made of this workload once, not per call: the identity is
    /// shared by every call made with the same (cached) token.
    #[serde(skip)]
    pub derived: Derived,
}

/// Forms of a workload built lazily, once: its policy input JSON, its
/// principal and its decision-log form. Never part of equality.
#[derive(Debug, Clone, Default)]
pub struct Derived {
    wire: OnceLock<Box<RawValue>>,
    principal: OnceLock<String>,
    log: OnceLock<Box<[u8]>>,
}

impl PartialEq for Derived {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Derived {}

/// The RFC 8693 `act` chain of a token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Delegation {
    /// When `act` is present: the token's `sub`, the party acted for.
    pub user: Option<String>,
    /// `act.sub`, the current actor; `None` when there is no `act`.
    pub agent: Option<String>,
    /// `act.act.sub`, `act.act.act.sub`, ...: earlier actors, most recent first.
    pub intermediaries: Vec<String>,
}

fn serialize_workload<S: Serializer>(workload: &Arc<Workload>, s: S) -> Result<S::Ok, S::Error> {
    Workload::serialize(workload, s)
}

impl Workload {
    /// The decision log's `identity` object for this workload: made by
    /// `make` the first time it is asked for, then kept with the workload
    /// (which every call with the same cached token shares).
    pub fn log_json(&self, make: impl FnOnce() -> Vec<u8>) -> &[u8] {
        self.derived.log.get_or_init(|| make().into_boxed_slice())
    }
}

impl Identity {
    /// Who owns what this caller opens (MCP sessions): issuer, subject and
    /// the acting agents. `None` for anonymous callers, who own nothing.
    pub fn principal(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::Workload(w) => Some(w.derived.principal.get_or_init(|| {
                let mut key = format!("{}\n{}", w.issuer, w.subject);
                for actor in w
                    .delegation
                    .agent
                    .iter()
                    .chain(&w.delegation.intermediaries)
                {
                    key.push('\n');
                    key.push_str(actor);
                }
                key
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_kind_tag_and_subject() {
        let workload = Workload {
            subject: "spiffe://example.org/agent".into(),
            issuer: "https://issuer.example".into(),
            spiffe: SpiffeId::parse("spiffe://example.org/agent").ok(),
            audience: vec!["toolgate".into()],
            scopes: vec!["read".into()],
            expires_at: 42,
            claims: serde_json::Map::new(),
            delegation: Delegation::default(),
            task_id: None,
            derived: Default::default(),
        };
        let identity = Identity::Workload(Arc::new(workload));
        assert_eq!(identity.subject(), "spiffe://example.org/agent");
        let json = serde_json::to_value(&identity).unwrap();
        assert_eq!(json["kind"], "workload");
        assert_eq!(json["spiffe"]["id"], "spiffe://example.org/agent");
        assert_eq!(json["spiffe"]["trust_domain"], "example.org");
        assert_eq!(json["spiffe"]["path"], "/agent");
        assert_eq!(json["expires_at"], 42);
        assert_eq!(Identity::Anonymous.subject(), "anonymous");
        let anon = serde_json::to_value(Identity::Anonymous).unwrap();
        assert_eq!(anon, serde_json::json!({"kind": "anonymous"}));
    }
}
