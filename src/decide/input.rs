//! Decide stage: the decision input as policy modules receive it — version 1
//! of the JSON document in policy-modules/ABI.md.

use serde::Serialize;
use serde_json::Value;

use super::DecisionInput;
use crate::config::RouteKind;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct Wire<'a> {
    version: u32,
    phase: &'static str,
    route: WireRoute<'a>,
    tool: WireTool<'a>,
    method: &'a str,
    identity: &'a RawValue,
    task: Option<&'a RawValue>,
    grants: &'a RawValue,
    counters: Option<&'a RawValue>,
    recent_calls: &'a RawValue,
    request: WireRequest<'a>,
    time: WireTime,
}

#[derive(Serialize)]
struct WireRoute<'a> {
    name: &'a str,
    kind: &'static str,
}

#[derive(Serialize)]
struct WireTool<'a> {
    name: &'a str,
    arguments: &'a Value,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    era: Option<&'static str>,
    protocol_version: Option<&'a str>,
    headers: Headers<'a>,
}

/// The selected request headers as a JSON object, without copying them.
struct Headers<'a>(&'a [(&'static str, String)]);

impl Serialize for Headers<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct WireTime {
    unix_ms: u64,
}

fn empty_list() -> &'static RawValue {
    static EMPTY: std::sync::OnceLock<Box<RawValue>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| RawValue::from_string("[]".to_owned()).unwrap_or_default())
}

/// Serializes the input once per decision (shared by every module).
pub fn encode(input: &DecisionInput<'_>) -> Vec<u8> {
    let wire = Wire {
        version: 1,
        phase: input.phase.as_str(),
        route: WireRoute {
            name: &input.route.name,
            kind: match input.route.kind {
                RouteKind::Mcp => "mcp",
                RouteKind::Http => "http",
            },
        },
        tool: WireTool {
            name: input.tool,
            arguments: input.arguments,
        },
        method: input.method,
        identity: input.identity.wire_json(),
        task: input.context.task.as_deref(),
        grants: input.context.grants.as_deref().unwrap_or(empty_list()),
        counters: input.context.counters.as_deref(),
        recent_calls: input.context.recent_calls.as_deref().unwrap_or(empty_list()),
        request: WireRequest {
            era: input.request.era,
            protocol_version: input.request.protocol_version.as_deref(),
            headers: Headers(&input.request.headers),
        },
        time: WireTime {
            unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        },
    };
    // Serializing plain data cannot fail; an empty input would be refused
    // by the module's parser, which denies (fail closed).
    serde_json::to_vec(&wire).unwrap_or_default()
}
