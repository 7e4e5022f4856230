//! Answer: the one place that turns refusals and errors into what the agent
//! receives — an `isError` tool result, a JSON-RPC error, or a JSON body with
//! a machine-readable code.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::Body;
use crate::identify;
use crate::mcp::{Era, era, jsonrpc};

/// Something the gateway refuses or fails to do, other than a policy decision.
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("no route matches this path")]
    NoRoute,
    #[error(
        "the request path must be plain: no '.' or '..' segments, '//', ';', '\\', encoded '.', '/' or '\\', or broken escapes"
    )]
    BadPath,
    #[error("request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("the request body did not arrive within {limit_ms} ms")]
    BodyTimeout { limit_ms: u128 },
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("request bodies must be one application/json document: policy decides on them")]
    UnsupportedMediaType,
    #[error("{0}")]
    BadRequest(&'static str),
    /// `allow` is the `Allow` header's value, `on` what was asked.
    #[error("method {method} is not supported on {on}")]
    MethodNotAllowed {
        method: http::Method,
        allow: &'static str,
        on: &'static str,
    },
    #[error("{0}")]
    JsonRpc(#[from] jsonrpc::Error),
    #[error("JSON-RPC batches are not part of MCP protocol version {0}")]
    BatchNotAllowed(String),
    #[error("{error}")]
    HeaderMismatch {
        id: Option<Value>,
        error: era::Error,
    },
    #[error("{what}")]
    InvalidParams { id: Value, what: &'static str },
    #[error("the request body is not valid JSON: {0}")]
    BadJsonBody(String),
    #[error("upstream of route {route:?} is unreachable: {detail}")]
    UpstreamUnavailable { route: String, detail: String },
    #[error("upstream of route {route:?} did not answer within {limit_ms} ms")]
    UpstreamTimeout { route: String, limit_ms: u128 },
    #[error("upstream response on route {route:?} is too large to inspect ({limit} bytes)")]
    UpstreamTooLarge { route: String, limit: usize },
    #[error("upstream response on route {route:?} could not be inspected: {detail}")]
    UpstreamMalformed { route: String, detail: String },
    #[error("{message}")]
    Denied {
        route: String,
        reason: &'static str,
        message: String,
    },
    #[error("{error}")]
    Unauthenticated {
        error: identify::Error,
        metadata_url: String,
    },
    /// `id`: the request's, when the body held one request (GET and DELETE hold none).
    #[error("session not found: start a new session with initialize")]
    SessionNotFound { id: Option<Value> },
    /// The task store refused or failed a change (grant requests).
    #[error("{message}")]
    TaskStore {
        code: &'static str,
        status: StatusCode,
        message: String,
    },
}

impl Problem {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BadPath => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::JsonRpc(_)
            | Self::BatchNotAllowed(_)
            | Self::HeaderMismatch { .. }
            | Self::InvalidParams { .. }
            | Self::BadJsonBody(_) => StatusCode::BAD_REQUEST,
            Self::UpstreamUnavailable { .. }
            | Self::UpstreamTooLarge { .. }
            | Self::UpstreamMalformed { .. } => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::Unauthenticated {
                error: identify::Error::InsufficientScope(_),
                ..
            } => StatusCode::FORBIDDEN,
            Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::SessionNotFound { .. } => StatusCode::NOT_FOUND,
            Self::TaskStore { status, .. } => *status,
        }
    }

    /// Machine-readable code; also the `outcome` metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoRoute => "no_route",
            Self::BadPath => "bad_path",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyRead(_) => "body_read_failed",
            Self::BodyTimeout { .. } => "body_read_timeout",
            Self::HeadersTooLarge(_) => "request_headers_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::BadRequest(_) => "bad_request",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::JsonRpc(_) => "invalid_jsonrpc",
            Self::BatchNotAllowed(_) => "batch_not_allowed",
            Self::HeaderMismatch { .. } => "header_mismatch",
            Self::InvalidParams { .. } => "invalid_params",
            Self::BadJsonBody(_) => "invalid_json",
            Self::UpstreamUnavailable { .. } => "upstream_unavailable",
            Self::UpstreamTimeout { .. } => "upstream_timeout",
            Self::UpstreamTooLarge { .. } => "upstream_response_too_large",
            Self::UpstreamMalformed { .. } => "upstream_response_malformed",
            Self::Denied { .. } => "denied",
            Self::Unauthenticated {
                error: identify::Error::InsufficientScope(_),
                ..
            } => "insufficient_scope",
            Self::Unauthenticated { .. } => "unauthenticated",
            Self::SessionNotFound { .. } => "session_not_found",
            Self::TaskStore { code, .. } => code,
        }
    }

    /// JSON-RPC shaped problems answer with a JSON-RPC error object.
    fn jsonrpc_error(&self) -> Option<(Value, i64)> {
        match self {
            Self::JsonRpc(e @ jsonrpc::Error::Parse(_)) => {
                Some((e.id().cloned().unwrap_or(Value::Null), -32700))
            }
            Self::JsonRpc(e) => Some((e.id().cloned().unwrap_or(Value::Null), -32600)),
            Self::BatchNotAllowed(_) => Some((Value::Null, -32600)),
            Self::HeaderMismatch { id, .. } => {
                Some((id.clone().unwrap_or(Value::Null), era::HEADER_MISMATCH))
            }
            Self::InvalidParams { id, .. } => Some((id.clone(), -32602)),
            Self::SessionNotFound { id } => Some((id.clone().unwrap_or(Value::Null), -32600)),
            Self::NoRoute
            | Self::BadPath
            | Self::BodyTooLarge { .. }
            | Self::BodyRead(_)
            | Self::BodyTimeout { .. }
            | Self::HeadersTooLarge(_)
            | Self::UnsupportedMediaType
            | Self::BadRequest(_)
            | Self::MethodNotAllowed { .. }
            | Self::BadJsonBody(_)
            | Self::UpstreamUnavailable { .. }
            | Self::UpstreamTimeout { .. }
            | Self::UpstreamTooLarge { .. }
            | Self::UpstreamMalformed { .. }
            | Self::Denied { .. }
            | Self::Unauthenticated { .. }
            | Self::TaskStore { .. } => None,
        }
    }

    fn route(&self) -> Option<&str> {
        match self {
            Self::UpstreamUnavailable { route, .. }
            | Self::UpstreamTimeout { route, .. }
            | Self::UpstreamTooLarge { route, .. }
            | Self::UpstreamMalformed { route, .. }
            | Self::Denied { route, .. } => Some(route),
            Self::NoRoute
            | Self::BadPath
            | Self::BodyTooLarge { .. }
            | Self::BodyRead(_)
            | Self::BodyTimeout { .. }
            | Self::HeadersTooLarge(_)
            | Self::UnsupportedMediaType
            | Self::BadRequest(_)
            | Self::MethodNotAllowed { .. }
            | Self::JsonRpc(_)
            | Self::BatchNotAllowed(_)
            | Self::HeaderMismatch { .. }
            | Self::InvalidParams { .. }
            | Self::BadJsonBody(_)
            | Self::Unauthenticated { .. }
            | Self::SessionNotFound { .. }
            | Self::TaskStore { .. } => None,
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let body = match self.jsonrpc_error() {
            Some((id, code)) => json!({
                "jsonrpc": "2.0",
                "id": id,
                "error": {"code": code, "message": self.to_string()},
            }),
            None => {
                let mut error = json!({"code": self.code(), "message": self.to_string()});
                if let Some(route) = self.route() {
                    error["route"] = Value::from(route);
                }
                if let Self::Denied { reason, .. } = &self {
                    error["reason"] = Value::from(*reason);
                }
                if let Self::Unauthenticated { error: e, .. } = &self {
                    error["reason"] = Value::from(e.code());
                }
                json!({ "error": error })
            }
        };
        let mut resp = json_response(status, &body);
        if let Self::MethodNotAllowed { allow, .. } = self {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Self::Unauthenticated {
            error,
            metadata_url,
        } = &self
            && let Ok(v) = HeaderValue::from_str(&challenge(error, metadata_url))
        {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// The `WWW-Authenticate` challenge (RFC 6750, RFC 9728): it points at the
/// protected-resource metadata and says which check failed, never echoing
/// the token.
fn challenge(error: &identify::Error, metadata_url: &str) -> String {
    let mut out = format!("Bearer resource_metadata=\"{}\"", quotable(metadata_url));
    let code = match error {
        // No credentials at all: no error code (RFC 6750 §3.1).
        identify::Error::Missing => return out,
        identify::Error::InQuery | identify::Error::NotBearer => "invalid_request",
        identify::Error::InsufficientScope(scopes) => {
            out.push_str(&format!(
                ", error=\"insufficient_scope\", scope=\"{}\"",
                quotable(scopes)
            ));
            out.push_str(&format!(
                ", error_description=\"{}\"",
                quotable(&error.to_string())
            ));
            return out;
        }
        identify::Error::TooLarge
        | identify::Error::UntrustedIssuer
        | identify::Error::NoKeys { .. }
        | identify::Error::Rejected(_) => "invalid_token",
    };
    out.push_str(&format!(
        ", error=\"{code}\", error_description=\"{}\"",
        quotable(&error.to_string())
    ));
    out
}

/// Keeps a quoted-string parameter well-formed: no quotes, backslashes or controls.
fn quotable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_control() || !c.is_ascii() => ' ',
            c => c,
        })
        .collect()
}

/// The refusal of a `tools/call`: a normal JSON-RPC *result* with
/// `isError: true` and the reason as text, keeping the request id. Agent
/// frameworks show this to the model; a JSON-RPC error would crash some.
/// 2026-07-28 results carry `resultType` (its SDKs require it); older eras'
/// schemas do not know the field, so it is left out there.
pub fn tool_refusal(id: &Value, text: &str, era: &Era) -> Value {
    let mut result = json!({
        "content": [{"type": "text", "text": text}],
        "isError": true,
    });
    if let Era::Modern { .. } = era {
        result["resultType"] = Value::from("complete");
    }
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// JSON-RPC error code of a refused method other than `tools/call` (one
/// the gateway does not know, decided as a method call). In the range
/// JSON-RPC leaves to implementations, clear of the codes MCP uses.
pub const METHOD_REFUSED: i64 = -32003;

/// Why a method the gateway does not know was refused, in words.
pub fn unknown_method_text(method: &str, refusal: &str) -> String {
    format!(
        "{method:?} is not an MCP method toolgate knows, so policy decided it as a method call: {refusal}"
    )
}

/// The refusal of a request for a method the gateway does not know: a
/// JSON-RPC error (no result shape is known for it) keeping the request
/// id, with the reason code and the method in `data`.
pub fn method_refusal(id: &Value, method: &str, reason: &str, refusal: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {
        "code": METHOD_REFUSED,
        "message": unknown_method_text(method, refusal),
        "data": {"reason": reason, "method": method},
    }})
}

/// The refusal of a request for a method toolgate knows and decides other
/// than `tools/call` (the follow-ups of an MCP task): a JSON-RPC error
/// keeping the request id, with the reason code and the method in `data`.
pub fn request_refusal(id: &Value, method: &str, reason: &str, refusal: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {
        "code": METHOD_REFUSED,
        "message": refusal,
        "data": {"reason": reason, "method": method},
    }})
}

/// The JSON-RPC error for a malformed `tools/call`.
pub fn invalid_params(id: &Value, what: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": what}})
}

pub fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
