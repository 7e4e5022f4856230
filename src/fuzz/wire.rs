//! Fuzzing the understand stage's wire formats: JSON-RPC envelopes, whole
//! HTTP requests through routing and `understand`, and SSE streams.

use std::sync::OnceLock;

use http::{HeaderName, HeaderValue, Method, Request};
use serde_json::Value;

use crate::accept::normalize_path;
use crate::mcp::{Envelope, MessageKind, era, methods, sse};
use crate::snapshot::Snapshot;
use crate::understand::Understood;

/// A JSON-RPC body: parse it; a parsed envelope re-serializes and re-parses
/// to the same messages.
pub fn jsonrpc(data: &[u8]) {
    let Ok(envelope) = Envelope::parse(data) else {
        return;
    };
    assert!(!envelope.messages.is_empty(), "an envelope holds a message");
    for message in &envelope.messages {
        if let Some(Ok(call)) = message.tool_call() {
            assert_eq!(message.method(), Some("tools/call"));
            assert_eq!(message.raw["params"]["name"].as_str(), Some(call.name));
            assert!(call.arguments.is_object() || call.arguments.is_null());
        }
        if message.kind == MessageKind::Notification {
            assert!(message.id.is_none());
            assert_ne!(message.method(), Some("tools/call"), "never undecided");
        }
        if let Some(method) = message.method() {
            // Exact spellings only; the check must not panic on any string.
            let _ = methods::is_known(method);
        }
    }
    let raws: Vec<Value> = envelope.messages.iter().map(|m| m.raw.clone()).collect();
    let body = if envelope.batch {
        Value::Array(raws)
    } else {
        raws.into_iter().next().unwrap_or(Value::Null)
    };
    let bytes = serde_json::to_vec(&body).expect("a parsed value serializes");
    let again = Envelope::parse(&bytes).expect("a parsed envelope re-parses");
    assert_eq!(again.batch, envelope.batch);
    assert_eq!(again.messages.len(), envelope.messages.len());
    for (a, b) in again.messages.iter().zip(&envelope.messages) {
        assert_eq!(a.raw, b.raw);
        assert_eq!(a.kind, b.kind);
        assert_eq!(a.id, b.id);
        assert_eq!(a.method, b.method);
    }
}

/// Routes of the snapshot requests are understood against: an MCP route
/// and an HTTP route.
fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        crate::install_crypto_provider();
        let config = crate::config::load_str(
            "[[routes]]\nname = \"tools\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:9/mcp\"\n\
             [[routes]]\nname = \"api\"\npath = \"/api\"\nkind = \"http\"\nupstream = \"http://127.0.0.1:9\"\n",
            "fuzz.toml",
            std::path::Path::new("."),
        )
        .expect("the fuzz config is valid");
        Snapshot::build(&config, None).expect("the fuzz snapshot builds")
    })
}

/// A whole request, written as text: `METHOD /path` on the first line,
/// `name: value` headers, a blank line, the body. It is normalised and
/// routed as the gateway does, then understood; what is understood obeys
/// the era's rules.
pub fn understand(data: &[u8]) {
    let (head, body) = split_head(data);
    let mut lines = head.split(|&b| b == b'\n');
    let (method, target) = lines
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .and_then(|line| line.trim_end_matches('\r').split_once(' '))
        .and_then(|(m, t)| Some((Method::from_bytes(m.as_bytes()).ok()?, t.to_owned())))
        .unwrap_or((Method::POST, "/mcp".to_owned()));
    let mut builder = Request::builder().method(method);
    builder = builder.uri(target.as_str());
    let mut headers = http::HeaderMap::new();
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let value = line[colon + 1..].trim_ascii_start();
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(name, value);
        }
    }
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (mut parts, ()) = request.into_parts();
    parts.headers = headers;
    let Ok(path) = normalize_path(parts.uri.path()) else {
        return;
    };
    assert_eq!(
        normalize_path(&path).ok().as_deref(),
        Some(path.as_str()),
        "a normalised path is its own normal form"
    );
    assert!(!path.contains("//") && !path.split('/').any(|s| s == ".." || s == "."));
    let Some((route, rest)) = snapshot().route_for(&path) else {
        return;
    };
    assert!(rest.is_empty() || rest.starts_with('/'), "whole segments");
    let body = bytes::Bytes::copy_from_slice(body);
    match crate::understand::understand(route, &parts, rest, &body) {
        Ok(Understood::Mcp { envelope, era }) => {
            assert_eq!(parts.method, Method::POST);
            assert!(envelope.messages.len() <= 64);
            assert!(!envelope.batch || era.allows_batches());
            if let era::Era::Modern { .. } = era {
                for message in &envelope.messages {
                    assert!(era::check_modern_headers(&parts.headers, message).is_ok());
                }
            }
            let mut stripped = parts.headers.clone();
            era::strip_routing_headers(&mut stripped);
            assert!(stripped.keys().all(|name| {
                let name = name.as_str();
                name != era::METHOD_HEADER
                    && name != era::NAME_HEADER
                    && !name.starts_with(era::PARAM_HEADER_PREFIX)
            }));
        }
        Ok(Understood::McpStream) => {
            assert!(matches!(parts.method, Method::GET | Method::DELETE));
            assert!(rest.is_empty() && body.is_empty());
        }
        Ok(Understood::Http { tool, arguments }) => {
            assert!(tool.starts_with(parts.method.as_str()));
            assert!(arguments["query"].is_object());
            assert!(arguments.get("body").is_some());
        }
        Err(problem) => {
            // Every refusal has an answer: status, code and body.
            let _ = (problem.status(), problem.code());
            let _ = problem.into_response();
        }
    }
}

/// The head and body of a request written as text.
fn split_head(data: &[u8]) -> (&[u8], &[u8]) {
    for (sep, len) in [(&b"\r\n\r\n"[..], 4), (&b"\n\n"[..], 2)] {
        if let Some(at) = data.windows(len).position(|w| w == sep) {
            return (&data[..at], &data[at + len..]);
        }
    }
    (data, &[])
}

/// An SSE stream: the first two bytes pick the event size limit and how the
/// rest is cut into chunks. Parsed whole or in chunks, the events are the
/// same; their raw bytes plus what is left are the input, byte for byte;
/// an event re-serialized with its own data reads back the same.
pub fn sse(data: &[u8]) {
    let [limit, cut, stream @ ..] = data else {
        return;
    };
    let max_event = 16 + usize::from(*limit) * 64;
    let whole = parse_sse(stream, max_event, &[stream.len().max(1)]);
    let sizes = [1 + usize::from(*cut % 7), 1 + usize::from(*cut / 7) % 13, 3];
    let chunked = parse_sse(stream, max_event, &sizes);
    match (&whole, &chunked) {
        (Ok((a, rest_a)), Ok((b, rest_b))) => {
            assert_eq!(a, b, "chunking changes no event");
            assert_eq!(rest_a, rest_b);
            let mut rebuilt: Vec<u8> = a.iter().flat_map(|e| e.raw.to_vec()).collect();
            rebuilt.extend_from_slice(rest_a);
            assert_eq!(rebuilt, stream, "events are forwarded byte for byte");
            for event in a {
                check_reserialized(event);
            }
        }
        (Err(_), Err(_)) => {}
        _ => panic!(
            "parsed whole: {:?}; in chunks: {:?}",
            whole.is_ok(),
            chunked.is_ok()
        ),
    }
}

type Parsed = (Vec<sse::Event>, Vec<u8>);

fn parse_sse(stream: &[u8], max_event: usize, sizes: &[usize]) -> Result<Parsed, sse::Error> {
    let mut parser = sse::Parser::new(max_event);
    let mut events = Vec::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= stream.len() {
            break;
        }
        let end = (at + size).min(stream.len());
        events.extend(parser.push(&stream[at..end])?);
        at = end;
    }
    Ok((events, parser.remainder().to_vec()))
}

fn check_reserialized(event: &sse::Event) {
    let Some(data) = &event.data else {
        return;
    };
    let bytes = event.with_data(data);
    let mut parser = sse::Parser::new(bytes.len() + 1);
    let again = parser.push(&bytes).expect("within the limit");
    assert_eq!(
        again.len(),
        1,
        "one event: {:?}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(again[0].data.as_deref(), Some(data.as_str()));
    assert_eq!(again[0].event, event.event);
    assert_eq!(again[0].id, event.id);
}
