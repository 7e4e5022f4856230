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
        RouteKind::Mcp => mcp(parts, body),
        RouteKind::Http => http(parts, rest, body),
    }
}

fn mcp(parts: &Parts, body: &Bytes) -> Result<Understood, Problem> {
    if is_stream_control(&parts.method) {
        return Ok(Understood::McpStream);
    }
    if parts.method != Method::POST {
        return Err(Problem::MethodNotAllowed(parts.method.clone()));
    }
    if !is_json(parts) {
        return Err(Problem::UnsupportedMediaType);
    }
    let envelope = Envelope::parse(body)?;
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
    let body = if body.is_empty() || !is_json(parts) {
        Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| Problem::BadJsonBody(e.to_string()))?
    };
    let mut arguments = Map::new();
    arguments.insert("query".into(), Value::Object(query));
    arguments.insert("body".into(), body);
    Ok(Understood::Http {
        tool,
        arguments: Value::Object(arguments),
    })
}

fn is_json(parts: &Parts) -> bool {
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
