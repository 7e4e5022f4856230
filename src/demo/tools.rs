//! The demo tool server's tools: `echo`, `add` and `countdown` (progress
//! notifications over SSE, then the result).

use std::convert::Infallible;
use std::time::Duration;

use http::{HeaderValue, Response, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};

use super::tool_server::{Wire, result};
use crate::Body;
use crate::mcp::sse::Event;

pub(super) fn list() -> Value {
    json!([
        {"name": "echo", "description": "Echoes the text back.",
         "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
        {"name": "add", "description": "Adds two numbers.",
         "inputSchema": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}},
        {"name": "countdown", "description": "Counts down from n, reporting progress every delay_ms.",
         "inputSchema": {"type": "object", "properties": {"n": {"type": "integer"}, "delay_ms": {"type": "integer"}}, "required": ["n"]}},
    ])
}

pub(super) fn call(wire: Wire, id: Value, params: &Value) -> Response<Body> {
    let args = params.get("arguments").cloned().unwrap_or(Value::Null);
    let text = |id, text: &str| {
        result(
            id,
            wire.complete(json!({"content": [{"type": "text", "text": text}]})),
        )
    };
    match params.get("name").and_then(Value::as_str).unwrap_or("") {
        "echo" => text(id, args.get("text").and_then(Value::as_str).unwrap_or("")),
        "add" => {
            let n = |k| args.get(k).and_then(Value::as_f64).unwrap_or(0.0);
            text(id, &(n("a") + n("b")).to_string())
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
            countdown(wire, id, n, delay, token)
        }
        other => result(
            id,
            wire.complete(json!({
                "content": [{"type": "text", "text": format!("unknown tool {other}")}],
                "isError": true,
            })),
        ),
    }
}

/// Streams one progress notification per step over SSE, then the result.
fn countdown(
    wire: Wire,
    id: Value,
    n: u64,
    delay: Duration,
    token: Option<Value>,
) -> Response<Body> {
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
                let done = wire.complete(json!({"content": [{"type": "text", "text": "liftoff"}]}));
                json!({"jsonrpc": "2.0", "id": id, "result": done})
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
