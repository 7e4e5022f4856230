//! What reaches the upstream, and over how many connections: pooled
//! connections are reused call after call, and idle ones are closed after
//! the pool's idle time.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::*;

/// An HTTP/1.1 MCP upstream that counts the TCP connections it accepted
/// and how many of them are still open.
struct CountingUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<http::HeaderMap>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingUpstream {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (acc, op, log) = (accepted.clone(), open.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                op.fetch_add(1, Ordering::SeqCst);
                let (op, log) = (op.clone(), log.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            log.lock().unwrap().push(parts.headers.clone());
                            let seen = upstream::Seen {
                                method: parts.method,
                                uri: parts.uri,
                                headers: parts.headers,
                                body,
                            };
                            Ok::<_, Infallible>(mcp_answer(&seen))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                    op.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self {
            addr,
            accepted,
            open,
            seen,
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for CountingUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn sequential_calls_reuse_one_upstream_connection() {
    let up = CountingUpstream::start().await;
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), ALLOW)).await;
    for i in 0..50 {
        let r = post_mcp(&gw.url("/mcp"), &[], &tools_call(json!(i), "echo")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    assert_eq!(up.seen.lock().unwrap().len(), 50);
    // Without reuse, 50 calls open 50 connections. With it, one carries
    // them all, but not always only one: the pool returns a connection
    // after its answer has gone out, and a call that checks out before
    // that races the idle connection against a new one (hyper-util's
    // legacy client), which a loaded machine can let the new one win.
    let accepted = up.accepted.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&accepted),
        "50 sequential calls should travel on one pooled upstream connection \
         (or two or three, if a call raced a connection's return): {accepted}"
    );
}

#[tokio::test]
async fn an_idle_pooled_upstream_connection_is_closed_after_the_pool_idle_time() {
    let up = CountingUpstream::start().await;
    let extra = format!("{ALLOW}\n[routes.timeouts]\npool_idle = \"300ms\"");
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), &extra)).await;
    let r = post_mcp(&gw.url("/mcp"), &[], &tools_call(json!(1), "echo")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(up.open.load(Ordering::SeqCst), 1);
    // The pool's reaper runs at the idle interval: closed within two of them.
    let deadline = Instant::now() + Duration::from_secs(3);
    while up.open.load(Ordering::SeqCst) > 0 {
        assert!(
            Instant::now() < deadline,
            "the idle upstream connection is still open after 3 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Idle time is counted from the last use: a busy connection stays.
    let r = post_mcp(&gw.url("/mcp"), &[], &tools_call(json!(2), "echo")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        up.accepted.load(Ordering::SeqCst),
        2,
        "a new connection after the close"
    );
}
