//! Understand stage: what a request asks for. On `mcp` routes, the JSON-RPC
//! messages of a POST (with the era's rules checked); on `http` routes, one
//! tool call named after the method and path, its arguments the query and
//! JSON body.

use bytes::Bytes;
use http::request::Parts;
use http::{Method, header};
use serde_json::{Map, Value};

use crate::answer::Problem;
use crate::config::RouteKind;
use crate::forward::is_stream_control;
use crate::mcp::{Envelope, Era, era};
use crate::snapshot::Route;

#[derive(Debug)]
pub enum Understood {
    /// JSON-RPC messages POSTed to an MCP route.
    Mcp { envelope: Envelope, era: Era },
    /// GET (server stream) or DELETE (end session) on an MCP route.
    McpStream,
    /// One request on an `http` route.
    Http { tool: String, arguments: Value },
}

pub fn understand(
    route: &Route,
    parts: &Parts,
    rest: &str,
    body: &Bytes,
) -> Result<Understood, Problem> {
    match route.kind {
        RouteKind::Mcp => mcp(parts, rest, body),
        RouteKind::Http => http(parts, rest, body),
    }
}

/// Most JSON-RPC messages one POST may carry (2025-03-26 batches).
const MAX_BATCH: usize = 64;

fn mcp(parts: &Parts, rest: &str, body: &Bytes) -> Result<Understood, Problem> {
    single_header(parts, era::PROTOCOL_VERSION_HEADER)?;
    single_header(parts, era::SESSION_HEADER)?;
    if is_stream_control(&parts.method) {
        // Only the MCP endpoint itself, and nothing to decide on: no body.
        if !rest.is_empty() {
            return Err(Problem::NoRoute);
        }
        if !body.is_empty() {
            return Err(Problem::BadRequest(
                "GET and DELETE on an MCP endpoint carry no body",
            ));
        }
        return Ok(Understood::McpStream);
    }
    if parts.method != Method::POST {
        return Err(Problem::MethodNotAllowed {
            method: parts.method.clone(),
            allow: "GET, POST, DELETE",
            on: "an MCP route",
        });
    }
    if !is_json(parts) {
        return Err(Problem::UnsupportedMediaType);
    }
    let envelope = Envelope::parse(body)?;
    if envelope.messages.len() > MAX_BATCH {
        return Err(Problem::BadRequest("a batch may hold at most 64 messages"));
    }
    let era = Era::of(&parts.headers);
    if envelope.batch && !era.allows_batches() {
        return Err(Problem::BatchNotAllowed(
            era.version().unwrap_or("unknown").to_owned(),
        ));
    }
    if let Era::Modern { .. } = era {
        for message in &envelope.messages {
            era::check_modern_headers(&parts.headers, message).map_err(|error| {
                Problem::HeaderMismatch {
                    id: message.id.clone(),
                    error,
                }
            })?;
        }
    }
    Ok(Understood::Mcp { envelope, era })
}

fn http(parts: &Parts, rest: &str, body: &Bytes) -> Result<Understood, Problem> {
    let path = if rest.is_empty() { "/" } else { rest };
    let tool = format!("{} {path}", parts.method);
    let mut query = Map::new();
    for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        match query.get_mut(k.as_ref()) {
            Some(Value::Array(values)) => values.push(Value::from(v.as_ref())),
            Some(first) => *first = Value::Array(vec![first.take(), Value::from(v.as_ref())]),
            None => {
                query.insert(k.into_owned(), Value::from(v.into_owned()));
            }
        }
    }
    // A body policy cannot read is not forwarded undecided.
    let body = if body.is_empty() {
        Value::Null
    } else if is_json(parts) {
        serde_json::from_slice(body).map_err(|e| Problem::BadJsonBody(e.to_string()))?
    } else {
        return Err(Problem::UnsupportedMediaType);
    };
    let mut arguments = Map::new();
    arguments.insert("query".into(), Value::Object(query));
    arguments.insert("body".into(), body);
    Ok(Understood::Http {
        tool,
        arguments: Value::Object(arguments),
    })
}

/// A header the gateway reads must not come twice: the upstream might read
/// the other copy. Its value must also be plain text.
fn single_header(parts: &Parts, name: &'static str) -> Result<(), Problem> {
    let mut values = parts.headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() || first.is_some_and(|v| v.to_str().is_err()) {
        return Err(Problem::BadRequest(
            "a protocol header (content-type, MCP-Protocol-Version, Mcp-Session-Id) is repeated or not plain text",
        ));
    }
    Ok(())
}

fn is_json(parts: &Parts) -> bool {
    if parts.headers.get_all(header::CONTENT_TYPE).iter().count() > 1 {
        return false;
    }
    parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json" || mime.ends_with("+json")
        })
}
