//! Understand stage: which MCP Streamable HTTP era a request speaks, and the
//! 2026-07-28 rule that `Mcp-Method` / `Mcp-Name` headers match the body.

use base64::Engine;
use http::HeaderMap;
use serde_json::Value;

use super::Message;

/// Protocol versions that use `initialize` and sessions.
pub const LEGACY_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The stateless protocol version this gateway knows.
pub const MODERN_VERSION: &str = "2026-07-28";

pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
pub const SESSION_HEADER: &str = "mcp-session-id";
pub const METHOD_HEADER: &str = "mcp-method";
pub const NAME_HEADER: &str = "mcp-name";
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
/// with the named parameter of `tools/call`, `prompts/get`, `resources/read`.
/// The gateway decides on the body, so a header saying otherwise is refused
/// before an upstream that routes on headers can be misled.
pub fn check_modern_headers(headers: &HeaderMap, message: &Message) -> Result<(), Error> {
    let Some(method) = message.method() else {
        return Ok(());
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
    let name_key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
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
mod tests {
    use super::*;
    use crate::mcp::Envelope;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn call(name: &str) -> Message {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","_meta":{{"{VERSION_META_KEY}":"{MODERN_VERSION}"}}}}}}"#
        );
        Envelope::parse(body.as_bytes()).unwrap().messages.remove(0)
    }

    #[test]
    fn eras_are_classified_by_version_header() {
        assert_eq!(Era::of(&headers(&[])), Era::Legacy { version: None });
        assert!(Era::of(&headers(&[])).allows_batches());
        let legacy = Era::of(&headers(&[(PROTOCOL_VERSION_HEADER, "2025-06-18")]));
        assert!(!legacy.allows_batches());
        let modern = Era::of(&headers(&[(PROTOCOL_VERSION_HEADER, MODERN_VERSION)]));
        assert!(matches!(modern, Era::Modern { .. }));
    }

    #[test]
    fn matching_headers_pass_and_mismatches_are_named() {
        let good = [
            (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
            (METHOD_HEADER, "tools/call"),
            (NAME_HEADER, "echo"),
        ];
        check_modern_headers(&headers(&good), &call("echo")).unwrap();
        let encoded = format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode("écho")
        );
        let enc = [
            (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
            (METHOD_HEADER, "tools/call"),
            (NAME_HEADER, encoded.as_str()),
        ];
        check_modern_headers(&headers(&enc), &call("écho")).unwrap();

        let cases: [(&[(&'static str, &str)], &str); 5] = [
            (
                &[
                    (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                    (METHOD_HEADER, "tools/list"),
                    (NAME_HEADER, "echo"),
                ],
                "Mcp-Method",
            ),
            (
                &[
                    (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                    (NAME_HEADER, "echo"),
                ],
                "Mcp-Method",
            ),
            (
                &[
                    (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                    (METHOD_HEADER, "tools/call"),
                    (NAME_HEADER, "rm"),
                ],
                "Mcp-Name",
            ),
            (
                &[
                    (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                    (METHOD_HEADER, "tools/call"),
                ],
                "Mcp-Name",
            ),
            (
                &[
                    (PROTOCOL_VERSION_HEADER, MODERN_VERSION),
                    (METHOD_HEADER, "tools/call"),
                    (NAME_HEADER, "echo"),
                    (NAME_HEADER, "echo"),
                ],
                "more than once",
            ),
        ];
        for (pairs, want) in cases {
            let err = check_modern_headers(&headers(pairs), &call("echo")).unwrap_err();
            assert!(err.to_string().contains(want), "{pairs:?}: {err}");
        }
        let wrong_version = [
            (PROTOCOL_VERSION_HEADER, "2027-01-01"),
            (METHOD_HEADER, "tools/call"),
            (NAME_HEADER, "echo"),
        ];
        assert!(check_modern_headers(&headers(&wrong_version), &call("echo")).is_err());
    }
}
