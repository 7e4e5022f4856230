//! The demo's example MCP tool server: a small Streamable HTTP server with
//! three tools (`echo`, `add`, and `countdown`, which streams progress over
//! SSE). It speaks both eras leniently; it is an example, not a reference.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::Body;
use crate::answer::{full, json_response};
use crate::listener::{self, ConnInfo};
use crate::mcp::sse::Event;

const SUPPORTED: [&str; 4] = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];

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
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return rpc_error(Value::Null, -32700, "body too large or unreadable"),
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(Value::Null, -32700, "parse error");
    };
    let id = message.get("id").cloned();
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let params = message.get("params").cloned().unwrap_or(Value::Null);
    let Some(id) = id else {
        // Notifications and responses are accepted without an answer.
        let mut resp = Response::new(full(Bytes::new()));
        *resp.status_mut() = StatusCode::ACCEPTED;
        return resp;
    };
    match method {
        "initialize" => initialize(id, &params),
        "ping" => result(id, json!({})),
        "tools/list" => result(id, json!({ "tools": tools() })),
        "tools/call" => call(id, &params).await,
        other => rpc_error(id, -32601, &format!("method not found: {other}")),
    }
}

fn initialize(id: Value, params: &Value) -> Response<Body> {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = if SUPPORTED.contains(&asked) {
        asked
    } else {
        "2025-11-25"
    };
    let mut resp = result(
        id,
        json!({
            "protocolVersion": version,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "toolgate-demo-tools", "version": env!("CARGO_PKG_VERSION")},
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

fn tools() -> Value {
    json!([
        {"name": "echo", "description": "Echoes the text back.",
         "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
        {"name": "add", "description": "Adds two numbers.",
         "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
        {"name": "countdown", "description": "Counts down from n, reporting progress every delay_ms.",
         "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}, "delay_ms": {"type": "integer"}}, "required": ["n"]}},
    ])
}

async fn call(id: Value, params: &Value) -> Response<Body> {
    let args = params.get("arguments").cloned().unwrap_or(Value::Null);
    match params.get("name").and_then(Value::as_str).unwrap_or("") {
        "echo" => text_result(id, args.get("text").and_then(Value::as_str).unwrap_or("")),
        "add" => {
            let n = |k| args.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            text_result(id, &(n("a") + n("b")).to_string())
        }
        "countdown" => {
            let n = args.get("n").and_then(Value::as_u64).unwrap_or(3).min(100);
            let delay = Duration::from_millis(
                args.get("delay_ms")
                    .and_then(Value::as_u64)
                    .unwrap_or(200)
                    .min(10_000),
            );
            let token = params
                .get("_meta")
                .and_then(|m| m.get("progressToken"))
                .cloned();
            countdown(id, n, delay, token)
        }
        other => result(
            id,
            json!({"content": [{"type": "text", "text": format!("unknown tool {other}")}], "isError": true}),
        ),
    }
}

/// Streams one progress notification per step over SSE, then the result.
fn countdown(id: Value, n: u64, delay: Duration, token: Option<Value>) -> Response<Body> {
    let stream = futures_util::stream::unfold(0u64, move |step| {
        let id = id.clone();
        let token = token.clone();
        async move {
            if step > n {
                return None;
            }
            tokio::time::sleep(delay).await;
            let message = if step < n {
                match &token {
                    Some(token) => json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": step + 1, "total": n}}),
                    None => json!({"jsonrpc": "2.0", "method": "notifications/message",
                        "params": {"level": "info", "data": format!("T-{}", n - step)}}),
                }
            } else {
                json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "liftoff"}]}})
            };
            let frame = Frame::data(Event::message(&message.to_string()));
            Some((Ok::<_, Infallible>(frame), step + 1))
        }
    });
    let body = StreamBody::new(stream)
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

fn text_result(id: Value, text: &str) -> Response<Body> {
    result(id, json!({"content": [{"type": "text", "text": text}]}))
}

fn result(id: Value, result: Value) -> Response<Body> {
    json_response(
        StatusCode::OK,
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
    )
}

fn rpc_error(id: Value, code: i64, message: &str) -> Response<Body> {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
    )
}
