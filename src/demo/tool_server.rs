//! The demo's example MCP tool server: a small Streamable HTTP server with
//! three tools (`echo`, `add`, and `countdown`, which streams progress over
//! SSE). It answers both eras: legacy (`initialize`, a session id) and the
//! stateless 2026-07-28 era, whose results carry `resultType` (and, for
//! `tools/list` and `server/discover`, `ttlMs` and `cacheScope`) as that
//! era's SDKs require. It is an example, not a reference: it does not check
//! the 2026-07-28 header rules (the gateway in front of it does).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::tools;
use crate::Body;
use crate::answer::{full, json_response};
use crate::listener::{self, ConnInfo};
use crate::mcp::era::{Era, MODERN_VERSION};

const LEGACY_SUPPORTED: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];
const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// JSON-RPC error for a protocol version the server does not serve (2026-07-28).
const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
const METHOD_NOT_FOUND: i64 = -32601;

/// A running example tool server.
#[derive(Debug)]
pub struct ToolServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
}

impl ToolServer {
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

impl Drop for ToolServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Starts the server on `addr` (port 0 picks a free port); it serves `/mcp`.
pub async fn start(addr: SocketAddr) -> std::io::Result<ToolServer> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let shutdown = CancellationToken::new();
    let handler = |req, _conn: ConnInfo| handle(req);
    tokio::spawn(listener::serve(
        listener,
        None,
        handler,
        shutdown.clone(),
        Duration::from_secs(1),
    ));
    Ok(ToolServer { addr, shutdown })
}

/// How results are shaped for the era a request speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wire {
    Legacy,
    Modern,
}

impl Wire {
    /// A final result: 2026-07-28 requires `resultType`; older schemas do
    /// not know the field, so it is left out there.
    pub(super) fn complete(self, mut result: Value) -> Value {
        if self == Self::Modern {
            result["resultType"] = Value::from("complete");
            result["_meta"] = json!({SERVER_INFO: server_info()});
        }
        result
    }

    /// A result the client may cache (`tools/list`, `server/discover`):
    /// 2026-07-28 requires `ttlMs` and `cacheScope`. The gateway in front
    /// filters lists per caller, so the answer is private and never fresh.
    fn cacheable(self, mut result: Value) -> Value {
        if self == Self::Modern {
            result["ttlMs"] = Value::from(0);
            result["cacheScope"] = Value::from("private");
        }
        self.complete(result)
    }

    fn error_status(self, code: i64) -> StatusCode {
        match (self, code) {
            (Self::Modern, METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

async fn handle(req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() != "/mcp" {
        return json_response(StatusCode::NOT_FOUND, &json!({"error": "not found"}));
    }
    match *req.method() {
        Method::POST => {}
        Method::DELETE => return json_response(StatusCode::OK, &json!({})),
        _ => {
            let mut resp = json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "POST only"}),
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST, DELETE"));
            return resp;
        }
    }
    let era = Era::of(req.headers());
    let wire = match &era {
        Era::Legacy { .. } => Wire::Legacy,
        Era::Modern { .. } => Wire::Modern,
    };
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return rpc_error(wire, Value::Null, -32700, "body too large or unreadable"),
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(wire, Value::Null, -32700, "parse error");
    };
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let Some(id) = message.get("id").cloned() else {
        // Notifications and responses are accepted without an answer.
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::ACCEPTED;
        return resp;
    };
    if let Era::Modern { version } = &era
        && version != MODERN_VERSION
    {
        return unsupported_version(id, version);
    }
    match (wire, method) {
        (Wire::Legacy, "initialize") => initialize(id, &params),
        (Wire::Legacy, "ping") => result(id, json!({})),
        (Wire::Modern, "server/discover") => result(id, wire.cacheable(discover())),
        (_, "tools/list") => result(id, wire.cacheable(json!({ "tools": tools::list() }))),
        (_, "tools/call") => tools::call(wire, id, &params),
        (_, other) => rpc_error(
            wire,
            id,
            METHOD_NOT_FOUND,
            &format!("method not found: {other}"),
        ),
    }
}

fn server_info() -> Value {
    json!({"name": "toolgate-demo-tools", "version": env!("CARGO_PKG_VERSION")})
}

fn initialize(id: Value, params: &Value) -> Response<Body> {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = if LEGACY_SUPPORTED.contains(&asked) {
        asked
    } else {
        "2025-11-25"
    };
    let mut resp = result(
        id,
        json!({
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": server_info(),
        }),
    );
    let mut session = [0u8; 16];
    let _ = getrandom::fill(&mut session);
    let session: String = session.iter().map(|b| format!("{b:02x}")).collect();
    if let Ok(v) = HeaderValue::from_str(&session) {
        resp.headers_mut().insert("mcp-session-id", v);
    }
    resp
}

/// `server/discover` (2026-07-28): what an `auto` client asks first.
fn discover() -> Value {
    json!({
        "capabilities": {"tools": {}},
        "supportedVersions": [MODERN_VERSION],
    })
}

fn unsupported_version(id: Value, requested: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": UNSUPPORTED_PROTOCOL_VERSION,
            "message": "Unsupported protocol version",
            "data": {"supported": [MODERN_VERSION], "requested": requested},
        }}),
    )
}

pub(super) fn result(id: Value, result: Value) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

fn rpc_error(wire: Wire, id: Value, code: i64, message: &str) -> Response<Body> {
    json_response(
        wire.error_status(code),
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    )
}
