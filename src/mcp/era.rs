//! Understand stage: which MCP Streamable HTTP era a request speaks, and the
//! 2026-07-28 rule that `Mcp-Method` / `Mcp-Name` headers match the body.

use base64::Engine;
use http::HeaderMap;
use serde_json::Value;

use super::Message;

pub mod mirrored;

/// Protocol versions that use `initialize` and sessions.
pub const LEGACY_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The stateless protocol version this gateway knows.
pub const MODERN_VERSION: &str = "2026-07-28";

pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
pub const SESSION_HEADER: &str = "mcp-session-id";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";
/// Prefix of the headers a `tools/call` mirrors its arguments into.
pub const PARAM_HEADER_PREFIX: &str = "mcp-param-";
const VERSION_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// JSON-RPC error code for a header that disagrees with the body (2026-07-28).
pub const HEADER_MISMATCH: i64 = -32020;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Era {
    /// 2025-03-26 … 2025-11-25. `version` is `None` before `initialize` has
    /// negotiated one and for 2025-03-26 clients, which send no header.
    Legacy { version: Option<String> },
    /// 2026-07-28 and later: stateless, every request self-describing.
    Modern { version: String },
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0} header does not match the request body")]
    Mismatch(&'static str),
    #[error("{0} header appears more than once")]
    Duplicate(&'static str),
    #[error("{0} header holds a malformed base64 value")]
    BadEncoding(&'static str),
    /// An `Mcp-Param-*` header: `header` is its (lowercase) name.
    #[error("{header} header {why}")]
    Param { header: String, why: &'static str },
}

impl Era {
    /// Classifies like the reference SDKs: a known handshake version (or no
    /// version header at all) is legacy; any other version is the modern era,
    /// whose own checks then decide whether it is served.
    pub fn of(headers: &HeaderMap) -> Self {
        match headers
            .get(PROTOCOL_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            None => Self::Legacy { version: None },
            Some(v) if LEGACY_VERSIONS.contains(&v) => Self::Legacy {
                version: Some(v.to_owned()),
            },
            Some(v) => Self::Modern {
                version: v.to_owned(),
            },
        }
    }

    /// JSON-RPC batches exist only in 2025-03-26 (which sends no version header).
    pub fn allows_batches(&self) -> bool {
        match self {
            Self::Legacy { version: None } => true,
            Self::Legacy { version: Some(v) } => v == "2025-03-26",
            Self::Modern { .. } => false,
        }
    }

    pub fn version(&self) -> Option<&str> {
        match self {
            Self::Legacy { version } => version.as_deref(),
            Self::Modern { version } => Some(version),
        }
    }
}

/// The 2026-07-28 header rungs: `MCP-Protocol-Version` agrees with the
/// envelope's `_meta` version, `Mcp-Method` with the method, and `Mcp-Name`
/// with the named parameter of `tools/call`, `prompts/get`, `resources/read`
/// (and is absent for every other method). `Mcp-Param-*` headers come only
/// with `tools/call`, once each, and each must carry a value the arguments
/// hold: which argument a header mirrors is declared in the tool's schema,
/// checked (in [`mirrored`]) where the gateway has seen the tool listed.
/// The gateway decides on the body, so a header saying otherwise is
/// refused before an upstream that routes on headers can be misled.
pub fn check_modern_headers(headers: &HeaderMap, message: &Message) -> Result<(), Error> {
    let Some(method) = message.method() else {
        // A response names no method: no routing header is true of it.
        for (name, label) in [(METHOD_HEADER, "Mcp-Method"), (NAME_HEADER, "Mcp-Name")] {
            if headers.contains_key(name) {
                return Err(Error::Mismatch(label));
            }
        }
        return check_param_headers(headers, None);
    };
    let version = single(headers, PROTOCOL_VERSION_HEADER, "MCP-Protocol-Version")?;
    let meta_version = message
        .params()
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get(VERSION_META_KEY));
    if let Some(meta_version) = meta_version
        && version.map(Value::from).as_ref() != Some(meta_version)
    {
        return Err(Error::Mismatch("MCP-Protocol-Version"));
    }
    if single(headers, METHOD_HEADER, "Mcp-Method")? != Some(method) {
        return Err(Error::Mismatch("Mcp-Method"));
    }
    let arguments = match method {
        "tools/call" => Some(
            message
                .params()
                .and_then(|p| p.get("arguments"))
                .unwrap_or(&Value::Null),
        ),
        _ => None,
    };
    check_param_headers(headers, arguments)?;
    let name_key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        // A method that names nothing: a name header would be a lie.
        _ if headers.contains_key(NAME_HEADER) => return Err(Error::Mismatch("Mcp-Name")),
        _ => return Ok(()),
    };
    let body_name = message.params().and_then(|p| p.get(name_key));
    let header = single(headers, NAME_HEADER, "Mcp-Name")?
        .map(|raw| decode_header_value(raw).ok_or(Error::BadEncoding("Mcp-Name")))
        .transpose()?;
    match (body_name, header) {
        (Some(Value::String(body)), Some(header)) if *body == header => Ok(()),
        (None, None) => Ok(()),
        _ => Err(Error::Mismatch("Mcp-Name")),
    }
}

/// `Mcp-Param-*` headers: only with a `tools/call` (`arguments` is then
/// its arguments), each once, each a value some argument holds.
fn check_param_headers(headers: &HeaderMap, arguments: Option<&Value>) -> Result<(), Error> {
    let params = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PARAM_HEADER_PREFIX));
    for name in params {
        let param = |why| Error::Param {
            header: name.as_str().to_owned(),
            why,
        };
        let Some(arguments) = arguments else {
            return Err(param("comes only with tools/call"));
        };
        let mut values = headers.get_all(name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(param("appears more than once"));
        };
        let decoded = value
            .to_str()
            .ok()
            .and_then(decode_header_value)
            .ok_or_else(|| param("holds a malformed base64 value"))?;
        if !holds(arguments, &decoded) {
            return Err(param("holds a value the request body's arguments do not"));
        }
    }
    Ok(())
}

/// True if `value` holds, at some property path, a scalar that a client
/// renders as `text` in a header (`true`/`false`, numbers and strings as
/// they read).
fn holds(value: &Value, text: &str) -> bool {
    match value {
        Value::Object(map) => map.values().any(|v| holds(v, text)),
        Value::String(_) | Value::Bool(_) | Value::Number(_) | Value::Null | Value::Array(_) => {
            mirrored::renders_as(value, text)
        }
    }
}

/// Removes the modern era's routing headers (`Mcp-Method`, `Mcp-Name`,
/// `Mcp-Param-*`): for a request of an era that does not define them,
/// where nothing checked them against the body.
pub fn strip_routing_headers(headers: &mut HeaderMap) {
    let params: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PARAM_HEADER_PREFIX))
        .cloned()
        .collect();
    for name in params {
        headers.remove(name);
    }
    headers.remove(METHOD_HEADER);
    headers.remove(NAME_HEADER);
}

fn single<'h>(
    headers: &'h HeaderMap,
    name: &str,
    label: &'static str,
) -> Result<Option<&'h str>, Error> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(Error::Duplicate(label));
    }
    match first {
        None => Ok(None),
        Some(v) => v.to_str().map(Some).map_err(|_| Error::Mismatch(label)),
    }
}

/// Header values that are not plain visible ASCII travel as `=?base64?…?=`.
fn decode_header_value(raw: &str) -> Option<String> {
    let Some(payload) = raw
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    else {
        return Some(raw.to_owned());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests;
