//! Forward stage: send an allowed call to its upstream and relay the answer
//! back — streamed, with the caller's credentials stripped, the route's
//! attached, and timeouts for connect, first byte and stream silence.

pub mod body;
pub mod client;
pub mod headers;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode, header, request::Parts};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::Value;

use crate::Body;
use crate::answer::{Problem, full};
use crate::listener::ConnInfo;
use crate::record::Recorder;
use crate::snapshot::Route;
use body::{IdleTimeout, ResponseEdit, SseEdit, edit_json};
use headers::Trace;

/// One request on its way to the upstream.
#[derive(Debug)]
pub struct Outbound<'a> {
    pub route: &'a Route,
    /// The request path after the route prefix.
    pub rest: &'a str,
    pub parts: Parts,
    pub body: Bytes,
    pub conn: ConnInfo,
    pub trace: &'a Trace,
}

/// Sends the request and waits for the upstream's response headers.
pub async fn send(out: Outbound<'_>, recorder: &Recorder) -> Result<Response<Incoming>, Problem> {
    let Outbound {
        route,
        rest,
        mut parts,
        body,
        conn,
        trace,
    } = out;
    let upstream = &route.upstream;
    let uri = upstream
        .uri(rest, parts.uri.query())
        .map_err(|e| Problem::UpstreamUnavailable {
            route: route.name.clone(),
            detail: format!("cannot build upstream URL: {e}"),
        })?;
    headers::for_upstream(&mut parts.headers, conn, upstream, trace);
    let mut req = http::Request::new(Full::new(body));
    *req.method_mut() = parts.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = parts.headers;
    let started = Instant::now();
    let limit = route.timeouts.first_byte;
    let result = tokio::time::timeout(limit, upstream.client.request(req)).await;
    recorder.upstream_first_byte(&route.name, started.elapsed());
    match result {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if e.is_connect() && timed_out(&e) => Err(Problem::UpstreamTimeout {
            route: route.name.clone(),
            limit_ms: route.timeouts.connect.as_millis(),
        }),
        Ok(Err(e)) => Err(Problem::UpstreamUnavailable {
            route: route.name.clone(),
            detail: if e.is_connect() {
                format!("connect failed: {}", root_cause(&e))
            } else {
                root_cause(&e)
            },
        }),
        Err(_) => Err(Problem::UpstreamTimeout {
            route: route.name.clone(),
            limit_ms: limit.as_millis(),
        }),
    }
}

/// The connector reports its connect timeout as an `io::ErrorKind::TimedOut` cause.
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Relays the upstream's answer to the caller, applying `edit`.
pub async fn relay(
    route: &Route,
    resp: Response<Incoming>,
    edit: ResponseEdit,
    batch: bool,
    max_inspected: usize,
) -> Result<Response<Body>, Problem> {
    let (mut parts, incoming) = resp.into_parts();
    headers::for_caller(&mut parts.headers);
    let body = IdleTimeout::new(incoming, route.timeouts.stream_idle);
    // Error answers are the upstream's to give, verbatim (MCP clients read
    // them to pick a protocol era).
    if edit.is_noop() || !parts.status.is_success() {
        return Ok(Response::from_parts(parts, body.boxed_unsync()));
    }
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes() != b"identity");
    if encoded && edit.reads() {
        return Err(Problem::UpstreamMalformed {
            route: route.name.clone(),
            detail: "a compressed answer cannot be inspected (asked for identity)".into(),
        });
    }
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("text/event-stream") {
        parts.headers.remove(header::CONTENT_LENGTH);
        let edited = SseEdit::new(body, Arc::new(edit), max_inspected);
        return Ok(Response::from_parts(parts, edited.boxed_unsync()));
    }
    let json = content_type.starts_with("application/json");
    if json && !edit.reads_json() {
        // Nothing in a whole JSON answer to change or note: pass it as it is.
        return Ok(Response::from_parts(parts, body.boxed_unsync()));
    }
    let empty = parts.status == StatusCode::ACCEPTED || parts.status == StatusCode::NO_CONTENT;
    if !json && !empty {
        if !edit.inspects() {
            return Ok(Response::from_parts(parts, body.boxed_unsync()));
        }
        // A tools/list answer the gateway cannot read is not shown unfiltered.
        return Err(Problem::UpstreamMalformed {
            route: route.name.clone(),
            detail: format!("unexpected content type {content_type:?} for an inspected answer"),
        });
    }
    let answer = if empty {
        None
    } else {
        let body = body;
        let bytes = Limited::new(body, max_inspected)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Problem::UpstreamTooLarge {
                        route: route.name.clone(),
                        limit: max_inspected,
                    }
                } else {
                    Problem::UpstreamMalformed {
                        route: route.name.clone(),
                        detail: e.to_string(),
                    }
                }
            })?
            .to_bytes();
        if bytes.is_empty() && edit.extra.is_empty() {
            return Ok(Response::from_parts(parts, full(bytes)));
        }
        Some(
            serde_json::from_slice::<Value>(&bytes).map_err(|e| Problem::UpstreamMalformed {
                route: route.name.clone(),
                detail: format!("invalid JSON: {e}"),
            })?,
        )
    };
    let edited = edit_json(&edit, answer, batch).await;
    let bytes = Bytes::from(serde_json::to_vec(&edited).unwrap_or_default());
    if empty {
        parts.status = StatusCode::OK;
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    Ok(Response::from_parts(parts, full(bytes)))
}

/// GET (server stream), DELETE (end session) and the like carry no message
/// to decide on; they are forwarded as they are.
pub fn is_stream_control(method: &Method) -> bool {
    method == Method::GET || method == Method::DELETE
}
