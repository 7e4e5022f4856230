//! Forward stage: which headers cross the gateway. Hop-by-hop headers and
//! the caller's credentials stop here; the route's credential, `Host`,
//! `X-Forwarded-*` and the W3C trace context are set for the upstream.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::client::Upstream;
use crate::listener::ConnInfo;
use crate::listener::screen::is_end_to_end;

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Headers that describe one connection and never travel past a proxy (RFC 9110 §7.6.1).
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::CONNECTION
        || name == KEEP_ALIVE
        || name == PROXY_CONNECTION
        || name == header::PROXY_AUTHENTICATE
        || name == header::PROXY_AUTHORIZATION
        || name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
}

/// Removes hop-by-hop headers, including any the `Connection` header names —
/// but never an end-to-end header such as the MCP protocol headers (the
/// listener refuses requests whose `Connection` names one; an upstream's
/// answer keeps them).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none (a header `Connection` names is only
    // stripped with `Connection` itself): one pass over the names tells.
    if !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter(|name| !is_end_to_end(name))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        KEEP_ALIVE,
        PROXY_CONNECTION,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
    ] {
        headers.remove(name);
    }
}

/// Rewrites a caller's request headers for the upstream, in place.
pub fn for_upstream(headers: &mut HeaderMap, conn: ConnInfo, upstream: &Upstream, trace: &Trace) {
    strip_hop_by_hop(headers);
    // The caller's token authenticates it to the gateway, never to the tool.
    headers.remove(header::AUTHORIZATION);
    // The body was read whole and may have been rewritten (refused batch
    // elements removed): its length is the client library's to set, and
    // there is nothing left to `Expect: 100-continue` for.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::EXPECT);
    let original_host = headers.remove(header::HOST);
    // h2 requests carry no Host header; the authority is the same fact.
    headers.insert(header::HOST, upstream.host.clone());
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST, host);
    }
    let ip = conn.remote.ip().to_string();
    let xff = match headers.get(X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {ip}"),
        None => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if conn.tls { "https" } else { "http" }),
    );
    if !trace.inherited {
        headers.remove(TRACESTATE);
    }
    if let Ok(v) = HeaderValue::from_str(&trace.traceparent) {
        headers.insert(TRACEPARENT, v);
    }
    if let Some((name, value)) = &upstream.credential {
        headers.insert(name.clone(), value.clone());
    }
}

/// Cleans an upstream response's headers for the caller, in place.
pub fn for_caller(headers: &mut HeaderMap) {
    strip_hop_by_hop(headers);
}

/// The W3C trace context of one call: the caller's if valid, else a new one.
#[derive(Debug, Clone)]
pub struct Trace {
    pub traceparent: String,
    pub inherited: bool,
    /// The trace id the agent's MCP client named in `_meta`, where it
    /// differs from the header's: the decision log follows the agent.
    meta_trace_id: Option<String>,
}

impl Trace {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match headers.get(TRACEPARENT).and_then(|v| v.to_str().ok()) {
            Some(tp) if valid_traceparent(tp) => Self {
                traceparent: tp.to_ascii_lowercase(),
                inherited: true,
                meta_trace_id: None,
            },
            _ => Self::fresh(),
        }
    }

    /// Adds the trace context an MCP client carried in `params._meta`
    /// (SEP-414). A valid one names the trace the decision log records; a
    /// caller's valid `traceparent` header is still forwarded as it came,
    /// and without one the `_meta` context is forwarded as the header.
    pub fn with_meta(self, meta: Option<&str>) -> Self {
        let Some(tp) = meta.filter(|tp| valid_traceparent(tp)) else {
            return self;
        };
        let tp = tp.to_ascii_lowercase();
        if self.inherited {
            Self {
                meta_trace_id: tp.get(3..35).map(str::to_owned),
                ..self
            }
        } else {
            Self {
                traceparent: tp,
                inherited: true,
                meta_trace_id: None,
            }
        }
    }

    fn fresh() -> Self {
        let bytes = random_24();
        // One buffer, no per-byte formatting and no per-char `String`
        // building (`hex::encode`): this runs on every call without a
        // caller's trace context.
        let mut digits = [0u8; 48];
        // Cannot fail: the output is exactly twice the input.
        let _ = hex::encode_to_slice(bytes, &mut digits);
        let digits = std::str::from_utf8(&digits).unwrap_or_default();
        let mut traceparent = String::with_capacity(55);
        traceparent.push_str("00-");
        traceparent.push_str(digits.get(..32).unwrap_or_default());
        traceparent.push('-');
        traceparent.push_str(digits.get(32..).unwrap_or_default());
        traceparent.push_str("-01");
        Self {
            traceparent,
            inherited: false,
            meta_trace_id: None,
        }
    }

    /// The 32-hex-digit trace id, for logs.
    pub fn trace_id(&self) -> &str {
        if let Some(id) = &self.meta_trace_id {
            return id;
        }
        self.traceparent.get(3..35).unwrap_or("")
    }
}

fn valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [version, trace, parent, flags] => {
            hex(version, 2)
                && *version != "ff"
                && hex(trace, 32)
                && trace.bytes().any(|b| b != b'0')
                && hex(parent, 16)
                && parent.bytes().any(|b| b != b'0')
                && hex(flags, 2)
        }
        _ => false,
    }
}

/// 24 random bytes for a fresh trace context (see [`crate::random`]).
fn random_24() -> [u8; 24] {
    let mut out = [0u8; 24];
    if !crate::random::fill(&mut out) {
        // No entropy: still emit a well-formed context.
        out = [1; 24];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_is_kept_when_valid_and_replaced_when_not() {
        let mut h = HeaderMap::new();
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        h.insert(TRACEPARENT, HeaderValue::from_static(tp));
        let t = Trace::from_headers(&h);
        assert!(t.inherited);
        assert_eq!(t.traceparent, tp);
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        h.insert(TRACEPARENT, HeaderValue::from_static("00-zz-00-01"));
        let t = Trace::from_headers(&h);
        assert!(!t.inherited);
        assert!(valid_traceparent(&t.traceparent));
        // A fresh context: lowercase hex, random each time.
        assert_eq!(t.traceparent.len(), 55);
        assert_eq!(t.traceparent, t.traceparent.to_ascii_lowercase());
        assert_ne!(t.traceparent, Trace::from_headers(&h).traceparent);
        let agent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        // No header: the _meta context is the call's, forwarded as the header.
        let t = Trace::from_headers(&HeaderMap::new()).with_meta(Some(agent));
        assert_eq!((t.traceparent.as_str(), t.inherited), (agent, true));
        assert_eq!(t.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        // A header too: kept for the upstream, the log follows _meta.
        let mut h = HeaderMap::new();
        h.insert(TRACEPARENT, HeaderValue::from_static(tp));
        let t = Trace::from_headers(&h).with_meta(Some(agent));
        assert_eq!(t.traceparent, tp);
        assert_eq!(t.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        // An invalid _meta context changes nothing.
        let t = Trace::from_headers(&h).with_meta(Some(
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        ));
        assert_eq!(t.trace_id(), &tp[3..35]);
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn mcp_headers_named_by_connection_are_kept() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("mcp-session-id, Mcp-Protocol-Version, content-type"),
        );
        h.insert("mcp-session-id", HeaderValue::from_static("s1"));
        h.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2025-06-18"),
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 3, "{h:?}");
        assert!(!h.contains_key(header::CONNECTION));
    }
}
