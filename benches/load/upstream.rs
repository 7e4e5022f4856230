//! Row (a): a fast MCP echo upstream — hyper on one thread, answers built
//! from byte templates. `tools/call echo` echoes `text`, `tools/call
//! stream` answers over SSE (a progress event at once, the result 2 ms
//! later), `tools/list` lists 100 tools, `initialize` opens a session.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpListener;

pub(crate) const SESSION: &str = "bench-session-1";
/// The tools `tools/list` answers with: `echo`, `stream`, `forbidden` and 97 more.
pub(crate) const LISTED: usize = 100;

type Body = UnsyncBoxBody<Bytes, Infallible>;

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: &'a str,
    #[serde(borrow)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    #[serde(borrow, default)]
    name: &'a str,
    #[serde(borrow)]
    arguments: Option<Arguments<'a>>,
}

#[derive(Deserialize)]
struct Arguments<'a> {
    #[serde(borrow)]
    text: Option<&'a RawValue>,
}

/// Serves until the process is killed; prints `LISTENING <port>` once bound.
pub(crate) fn serve() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        println!("LISTENING {port}");
        let tools = Bytes::from(tool_list());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let tools = tools.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(req, tools.clone()));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn tool_list() -> String {
    let mut names = vec!["echo".to_owned(), "stream".into(), "forbidden".into()];
    names.extend((names.len()..LISTED).map(|i| format!("tool_{i:03}")));
    let tools: Vec<String> = names
        .iter()
        .map(|n| {
            format!(
                r#"{{"name":"{n}","description":"Benchmark tool {n}.","inputSchema":{{"type":"object","properties":{{"text":{{"type":"string"}}}}}}}}"#
            )
        })
        .collect();
    format!("[{}]", tools.join(","))
}

async fn handle(req: Request<Incoming>, tools: Bytes) -> Result<Response<Body>, Infallible> {
    if req.method() == Method::DELETE {
        return Ok(plain(StatusCode::OK, Bytes::new()));
    }
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return Ok(plain(StatusCode::BAD_REQUEST, Bytes::new()));
    };
    let Ok(msg) = serde_json::from_slice::<Message<'_>>(&body) else {
        return Ok(plain(StatusCode::BAD_REQUEST, Bytes::new()));
    };
    let Some(id) = msg.id.map(RawValue::get) else {
        return Ok(plain(StatusCode::ACCEPTED, Bytes::new()));
    };
    let params = msg.params.as_ref();
    Ok(match msg.method {
        "initialize" => {
            let mut resp = json(&result(
                id,
                r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"bench-echo","version":"1"}}"#,
            ));
            resp.headers_mut()
                .insert("mcp-session-id", http::HeaderValue::from_static(SESSION));
            resp
        }
        "tools/list" => {
            let mut out = String::with_capacity(tools.len() + 64);
            out.push_str(r#"{"jsonrpc":"2.0","id":"#);
            out.push_str(id);
            out.push_str(r#","result":{"tools":"#);
            out.push_str(std::str::from_utf8(&tools).unwrap_or("[]"));
            out.push_str("}}");
            json(&out)
        }
        "tools/call" if params.is_some_and(|p| p.name == "stream") => sse(id),
        "tools/call" => {
            let text = params
                .and_then(|p| p.arguments.as_ref())
                .and_then(|a| a.text)
                .map_or(r#""""#, RawValue::get);
            json(&result(
                id,
                &format!(r#"{{"content":[{{"type":"text","text":{text}}}]}}"#),
            ))
        }
        "ping" => json(&result(id, "{}")),
        _ => json(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32601,"message":"method not found"}}}}"#
        )),
    })
}

fn result(id: &str, result: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#)
}

fn plain(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).boxed_unsync());
    *resp.status_mut() = status;
    resp
}

fn json(text: &str) -> Response<Body> {
    let mut resp = plain(StatusCode::OK, Bytes::copy_from_slice(text.as_bytes()));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// A progress notification at once, the result 2 ms later.
fn sse(id: &str) -> Response<Body> {
    let first = Bytes::from_static(
        b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"started\"}}\n\n",
    );
    let last = Bytes::from(format!(
        "event: message\ndata: {}\n\n",
        result(id, r#"{"content":[{"type":"text","text":"done"}]}"#)
    ));
    let stream = futures_util::stream::unfold(0u8, move |step| {
        let (first, last) = (first.clone(), last.clone());
        async move {
            let frame = match step {
                0 => first,
                1 => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    last
                }
                _ => return None,
            };
            Some((Ok::<_, Infallible>(Frame::data(frame)), step + 1))
        }
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed_unsync());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    resp
}
