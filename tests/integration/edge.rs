//! Edge cases of the pipeline against in-process upstreams: header hygiene,
//! limits, upstream failures and timeouts, streaming, MCP parsing, batches,
//! protocol eras, refusals, stream control and graceful shutdown.

mod connections;
mod flood;
mod forwarding;
mod hardening;
mod heads;
mod lifecycle;
mod mcp;
mod reuse;
mod streaming;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use toolgate::Body;

use crate::common::upstream::{self, FakeUpstream, Seen};
use crate::common::{self, MCP_HEADERS, TestGateway, post_mcp, send};

// ---------------------------------------------------------------- helpers

/// One `[[routes]]` table; `extra` holds more keys and then sub-tables.
fn route(name: &str, path: &str, upstream: &str, extra: &str) -> String {
    format!(
        "\n[[routes]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\n{extra}\n"
    )
}

const ALLOW: &str = "default_decision = \"allow\"";
const DENY: &str = "default_decision = \"deny\"";

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers
        .get(name)
        .map(|v| v.to_str().expect("ascii header"))
}

fn tools_call(id: Value, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": {"text": "hi"}}})
}

fn tools_list(id: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

fn upstream_tools() -> Value {
    json!([
        {"name": "echo", "inputSchema": {"type": "object"}},
        {"name": "delete_all", "inputSchema": {"type": "object"}},
    ])
}

/// The answer of an MCP server to one message: tools for `tools/list`, a
/// text result for anything else; `None` for notifications and responses.
fn answer_one(message: &Value) -> Option<Value> {
    let id = message.get("id")?.clone();
    let method = message.get("method")?.as_str()?;
    let result = match method {
        "tools/list" => json!({"tools": upstream_tools()}),
        "ping" => json!({}),
        other => json!({"content": [{"type": "text", "text": format!("upstream did {other}")}]}),
    };
    Some(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

/// A plain MCP server (JSON answers) that also answers non-JSON requests with "ok".
fn mcp_answer(seen: &Seen) -> Response<Body> {
    match serde_json::from_slice::<Value>(&seen.body) {
        Ok(Value::Array(items)) => {
            let answers: Vec<Value> = items.iter().filter_map(answer_one).collect();
            if answers.is_empty() {
                upstream::with_type(202, "application/json", "")
            } else {
                upstream::json(200, &Value::Array(answers))
            }
        }
        Ok(single) => match answer_one(&single) {
            Some(answer) => upstream::json(200, &answer),
            None => upstream::with_type(202, "application/json", ""),
        },
        Err(_) => upstream::with_type(200, "text/plain", "ok"),
    }
}

async fn mcp_upstream() -> FakeUpstream {
    FakeUpstream::start(|seen| async move { mcp_answer(&seen) }).await
}

fn is_valid_traceparent(tp: &str) -> bool {
    let parts: Vec<&str> = tp.split('-').collect();
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    parts.len() == 4
        && parts[0] == "00"
        && hex(parts[1], 32)
        && parts[1].bytes().any(|b| b != b'0')
        && hex(parts[2], 16)
        && parts[2].bytes().any(|b| b != b'0')
        && hex(parts[3], 2)
}

/// Writes `request` on a fresh connection and reads until the peer closes.
async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out))
        .await
        .expect("peer closes within 2s")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// The next data chunk of a streaming body (trailers skipped), `None` at its end.
async fn next_chunk(body: &mut Incoming, within: Duration) -> Option<Result<Bytes, hyper::Error>> {
    loop {
        let frame = tokio::time::timeout(within, body.frame())
            .await
            .expect("a frame or the end within the deadline");
        match frame {
            None => return None,
            Some(Err(e)) => return Some(Err(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data()
                    && !data.is_empty()
                {
                    return Some(Ok(data));
                }
            }
        }
    }
}

/// Reads chunks into `buf` until it ends with `want`; panics on end, error or deadline.
async fn read_until(body: &mut Incoming, buf: &mut Vec<u8>, want: &[u8], within: Duration) {
    let deadline = Instant::now() + within;
    while !buf.ends_with(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_chunk(body, left).await {
            Some(Ok(data)) => buf.extend_from_slice(&data),
            other => panic!(
                "stream ended ({other:?}) before {:?}; got {:?}",
                String::from_utf8_lossy(want),
                String::from_utf8_lossy(buf)
            ),
        }
    }
}

/// Reads the rest of a body; `Err` if it ended with an error.
async fn read_rest(
    body: &mut Incoming,
    buf: &mut Vec<u8>,
    within: Duration,
) -> Result<(), hyper::Error> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_chunk(body, left).await {
            None => return Ok(()),
            Some(Ok(data)) => buf.extend_from_slice(&data),
            Some(Err(e)) => return Err(e),
        }
    }
}

fn parse_sse_data(event: &str) -> Value {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| d.strip_prefix(' ').unwrap_or(d))
        .collect();
    serde_json::from_str(&data.join("\n"))
        .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {event}"))
}

/// POSTs `body` with chunked transfer encoding (no Content-Length).
async fn post_chunked(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> common::Reply {
    let half = body.len() / 2;
    let body = Bytes::from(body);
    let chunks: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(body.slice(..half))),
        Ok(Frame::data(body.slice(half..))),
    ];
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed_unsync();
    let mut req = Request::post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(body).expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .expect("answer within 5s")
        .expect("request succeeds");
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("body within 5s")
        .expect("body reads")
        .to_bytes();
    common::Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Checks the answer to the batch `[tools/call id 1 (refused), ping id 2]`.
fn assert_mixed_batch_answer(r: &common::Reply, seen: &[Seen]) {
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(seen.len(), 1);
    let forwarded: Value = serde_json::from_slice(&seen[0].body).expect("upstream got JSON");
    assert_eq!(
        forwarded,
        json!([{"jsonrpc": "2.0", "id": 2, "method": "ping"}])
    );
    let v = r.json();
    let items = v.as_array().expect("batch answer is an array");
    assert_eq!(items.len(), 2, "{v}");
    let pong = items.iter().find(|m| m["id"] == 2).expect("ping answer");
    assert_eq!(pong["result"], json!({}));
    let refusal = items.iter().find(|m| m["id"] == 1).expect("refusal");
    assert_eq!(refusal["result"]["isError"], true);
    let text = refusal["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(text.contains("no_policy"), "{text}");
}

// ------------------------------------------------------------------ tests
