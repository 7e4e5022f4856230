//! In-process upstreams for edge cases: each records what reached it and
//! answers with whatever the test's closure returns.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use toolgate::Body;
use toolgate::listener::{self, ConnInfo};

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
}

impl FakeUpstream {
    /// Serves `answer` for every request, after recording it.
    pub async fn start<F, Fut>(answer: F) -> Self
    where
        F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Self::serve(None, answer).await
    }

    async fn serve<F, Fut>(tls: Option<Arc<rustls::ServerConfig>>, answer: F) -> Self
    where
        F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        Self::serve_on(listener, tls, answer)
    }

    fn serve_on<F, Fut>(
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        answer: F,
    ) -> Self
    where
        F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let log = Arc::clone(&seen);
        let handler = move |req: Request<Incoming>, _conn: ConnInfo| {
            let answer = answer.clone();
            let log = Arc::clone(&log);
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let seen = Seen {
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body,
                };
                log.lock().expect("lock").push(seen.clone());
                answer(seen).await
            }
        };
        tokio::spawn(listener::serve(
            listener,
            tls,
            handler,
            stop.clone(),
            Duration::from_millis(100),
        ));
        Self { addr, seen, stop }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn json(status: u16, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(value).expect("json")));
    *resp.status_mut() = http::StatusCode::from_u16(status).expect("status");
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// An SSE response whose events are sent by the returned channel's sender.
pub fn sse_channel() -> (
    tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    Response<Body>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|item| (item.map(hyper::body::Frame::data), rx))
    });
    let body = http_body_util::StreamBody::new(Box::pin(stream))
        .map_err(|e: std::io::Error| -> toolgate::BoxError { Box::new(e) })
        .boxed_unsync();
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/event-stream"),
    );
    (tx, resp)
}

/// A loopback TCP port with nothing listening on it, for as long as this
/// lives: a socket is bound to it and never listens, so connecting to it is
/// refused, and no other socket can take the port meanwhile (the socket
/// does not allow address reuse).
pub struct ClosedPort {
    pub addr: SocketAddr,
    _socket: tokio::net::TcpSocket,
}

/// A port that refuses connections until the [`ClosedPort`] is dropped.
pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    ClosedPort {
        addr: socket.local_addr().expect("addr"),
        _socket: socket,
    }
}

/// The sending half of [`sse_channel`].
pub type SseSender = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

/// An upstream that answers every request with a fresh [`sse_channel`] and
/// hands its sender to the test through the returned receiver.
pub async fn sse_upstream() -> (
    FakeUpstream,
    tokio::sync::mpsc::UnboundedReceiver<SseSender>,
) {
    let (give, take) = tokio::sync::mpsc::unbounded_channel::<SseSender>();
    let up = FakeUpstream::start(move |_seen| {
        let give = give.clone();
        async move {
            let (tx, resp) = sse_channel();
            let _ = give.send(tx);
            resp
        }
    })
    .await;
    (up, take)
}

/// A complete response with the given status, content type and body.
pub fn with_type(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = http::StatusCode::from_u16(status).expect("status");
    resp.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_str(content_type).expect("content type"),
    );
    resp
}

impl FakeUpstream {
    /// Like [`FakeUpstream::start`], but speaking TLS with `tls`.
    pub async fn start_tls<F, Fut>(tls: Arc<rustls::ServerConfig>, answer: F) -> Self
    where
        F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Self::serve(Some(tls), answer).await
    }

    /// Like [`FakeUpstream::start_tls`], on a listener the test already has
    /// (one that has held a port since another server stopped on it).
    pub fn start_tls_on<F, Fut>(
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        answer: F,
    ) -> Self
    where
        F: Fn(Seen) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        Self::serve_on(listener, Some(tls), answer)
    }
}
