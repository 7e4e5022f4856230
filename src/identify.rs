//! Identify stage: who is calling. Workload identity (JWT-SVIDs and OAuth
//! access tokens) plugs in here; until a route requires it, callers are
//! anonymous and policy sees them as such.

use http::request::Parts;
use serde::Serialize;

/// The caller, as later stages see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Identity {
    /// No credential was verified for this call.
    Anonymous,
}

impl Identity {
    /// The subject as it appears in decision logs.
    pub fn subject(&self) -> &str {
        match self {
            Self::Anonymous => "anonymous",
        }
    }
}

/// Identifies the caller of one request.
pub fn identify(_parts: &Parts) -> Identity {
    Identity::Anonymous
}
