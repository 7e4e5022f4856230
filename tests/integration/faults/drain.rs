//! SIGTERM while a stream is open, against the real binary and the real
//! Python SDK server: new connections are refused at once, the open stream
//! runs to its end within `server.drain_timeout` and the process exits 0;
//! a stream longer than the drain timeout is cut at it, and the process
//! still exits.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use tokio::net::TcpStream;

use super::{COUNTDOWN_HEADERS, End, countdown, read_to_end, read_until, sse_messages};
use crate::common::peers::PyServer;
use crate::common::process::ServeDir;

fn py_route(upstream: &str) -> String {
    format!(
        "[[routes]]\nname = \"py\"\npath = \"/py\"\nupstream = \"{upstream}\"\n\
         default_decision = \"allow\"\n"
    )
}

/// Waits (up to 10 s, on a loaded machine) until connecting to `addr` is
/// refused; the open stream meanwhile runs on.
async fn refused_soon(addr: std::net::SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            other => assert!(
                Instant::now() < deadline,
                "still accepting connections after SIGTERM: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_open_stream_finish_and_refuses_new_connections() {
    let py = PyServer::start(&[]).await;
    let dir = ServeDir::draining("10s", &py_route(&py.url()));
    let mut server = dir.start();
    let url = format!("http://{}/py", server.addr);
    let resp =
        crate::common::open(Method::POST, &url, &COUNTDOWN_HEADERS, countdown(1, 8, 200)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_until(
        &mut body,
        &mut got,
        "\"progress\":1,",
        Duration::from_secs(10),
    )
    .await;

    server.signal("TERM");
    let termed = Instant::now();
    refused_soon(server.addr).await;
    refused_soon(server.admin).await;

    let end = read_to_end(&mut body, &mut got, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(matches!(end, End::Complete), "{end:?}: {text}");
    let messages = sse_messages(&text);
    assert_eq!(
        messages.len(),
        9,
        "8 progress events and the result: {text}"
    );
    assert_eq!(
        messages[8]["result"]["content"][0]["text"], "liftoff",
        "{text}"
    );

    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the gateway exits once drained");
    assert!(status.success(), "{status:?}\n{}", server.log());
    assert!(
        termed.elapsed() < Duration::from_secs(10),
        "drained in {:?}, before the drain timeout",
        termed.elapsed()
    );
    // The process has exited; its last lines may still be on their way
    // through the pipe to the reader.
    server
        .log_until(|log| log.contains("drained all connections"))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_longer_than_the_drain_timeout_is_cut_and_the_gateway_exits() {
    let py = PyServer::start(&[]).await;
    let dir = ServeDir::draining("1s", &py_route(&py.url()));
    let mut server = dir.start();
    let url = format!("http://{}/py", server.addr);
    let resp = crate::common::open(
        Method::POST,
        &url,
        &COUNTDOWN_HEADERS,
        countdown(1, 100, 100),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_until(
        &mut body,
        &mut got,
        "\"progress\":1,",
        Duration::from_secs(10),
    )
    .await;

    server.signal("TERM");
    let termed = Instant::now();
    let end = read_to_end(&mut body, &mut got, Duration::from_secs(10)).await;
    let cut_after = termed.elapsed();
    assert!(matches!(end, End::Cut), "cut, not complete: {end:?}");
    assert!(
        cut_after >= Duration::from_millis(800) && cut_after < Duration::from_secs(5),
        "cut after {cut_after:?}; drain_timeout is 1s"
    );
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(!text.contains("liftoff"), "{text}");
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the gateway exits after the drain timeout");
    assert!(status.success(), "{status:?}\n{}", server.log());
    server
        .log_until(|log| log.contains("drain deadline passed"))
        .await;
}
