//! The decision input (ABI.md "Input", version 1) as typed Rust.
//!
//! Every field defaults, and an explicit `null` reads as the default too, so
//! a test vector may give only what it cares about and the host may send
//! `null` for context it does not have yet. Unknown fields are ignored, as
//! the ABI requires; a known field of the wrong type is an error (the host
//! then fails closed with `policy_error`).

mod identity;
mod task;

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub use identity::{Delegation, Identity, Spiffe, Workload};
pub use task::{Counters, Grant, RecentCall, Task};

/// One decision's input.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct Input {
    /// The input format's version; `1` for this SDK.
    pub version: u32,
    /// Whether a call is being decided, a `tools/list` entry or a grant request.
    #[serde(deserialize_with = "nullable")]
    pub phase: Phase,
    /// The route the call came in on.
    #[serde(deserialize_with = "nullable")]
    pub route: Route,
    /// The tool and its arguments.
    #[serde(deserialize_with = "nullable")]
    pub tool: Tool,
    /// The JSON-RPC method (`tools/call`), or the HTTP method on `http` routes.
    #[serde(deserialize_with = "nullable")]
    pub method: String,
    /// Who is calling.
    #[serde(deserialize_with = "nullable")]
    pub identity: Identity,
    /// The task the call belongs to, if any.
    pub task: Option<Task>,
    /// The task's grants that match this tool (already filtered by the host).
    #[serde(deserialize_with = "nullable")]
    pub grants: Vec<Grant>,
    /// The task's call counters so far (not counting this call).
    pub counters: Option<Counters>,
    /// The task's latest calls, newest last.
    #[serde(deserialize_with = "nullable")]
    pub recent_calls: Vec<RecentCall>,
    /// Facts about the HTTP request that carried the call.
    #[serde(deserialize_with = "nullable")]
    pub request: Request,
    /// When the decision is made.
    #[serde(deserialize_with = "nullable")]
    pub time: Time,
    /// The whole input document as received, for modules that evaluate it
    /// as JSON (Rego-style). Filled by the SDK, never read from the input.
    #[serde(skip)]
    pub raw: Value,
}

impl Default for Input {
    fn default() -> Self {
        Self {
            version: 1,
            phase: Phase::default(),
            route: Route::default(),
            tool: Tool::default(),
            method: String::new(),
            identity: Identity::default(),
            task: None,
            grants: Vec::new(),
            counters: None,
            recent_calls: Vec::new(),
            request: Request::default(),
            time: Time::default(),
            raw: Value::Null,
        }
    }
}

impl Input {
    /// Reads an input document, keeping it whole in [`Input::raw`].
    pub fn from_value(raw: Value) -> Result<Self, serde_json::Error> {
        let mut input = Self::deserialize(&raw)?;
        input.raw = raw;
        Ok(input)
    }

    /// The argument at a JSON pointer into `tool.arguments` (`"/path"`).
    pub fn argument(&self, pointer: &str) -> Option<&Value> {
        self.tool.arguments.pointer(pointer)
    }
}

/// Why a decision is asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// A `tools/call`, or one request on an `http` route.
    #[default]
    Call,
    /// Whether a tool appears in a `tools/list` result (no arguments).
    List,
    /// An agent's request for a grant: `tool.arguments` holds the
    /// arguments the grant would cover (or `null`).
    Grant,
}

/// The route a call came in on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Route {
    /// The route's unique name from `toolgate.toml`.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// What speaks behind the route.
    #[serde(deserialize_with = "nullable")]
    pub kind: RouteKind,
}

/// What speaks behind a route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// An MCP server.
    #[default]
    Mcp,
    /// A plain HTTP API: `tool.name` is `"<METHOD> <path>"`.
    Http,
}

/// The tool being called or listed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Tool {
    /// The tool's name (`"<METHOD> <path>"` on `http` routes).
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// The call's arguments; `null` in the list phase. On `http` routes,
    /// `{"query": {...}, "body": ...}`.
    pub arguments: Value,
}

/// Facts about the HTTP request that carried the call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Request {
    /// The MCP protocol era (`legacy` or `current`, as toolgate names them).
    #[serde(deserialize_with = "nullable")]
    pub era: String,
    /// The negotiated MCP protocol version, if known.
    pub protocol_version: Option<String>,
    /// Selected request headers, lower-case names.
    #[serde(deserialize_with = "nullable")]
    pub headers: BTreeMap<String, String>,
}

/// The moment of the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Time {
    /// Milliseconds since the Unix epoch.
    #[serde(deserialize_with = "nullable")]
    pub unix_ms: u64,
}

/// Reads `null` as the type's default, so the host may send `null` for
/// context it does not have (the ABI says "`null`/empty until then").
pub(crate) fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
