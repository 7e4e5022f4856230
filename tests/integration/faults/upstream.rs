//! The upstream fails under a call: the real Python SDK server killed
//! (SIGKILL) after the first event of a streamed `tools/call`, or frozen
//! (SIGSTOP) before its answer's headers and in the middle of a stream.

use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use super::{COUNTDOWN_HEADERS, End, countdown, read_to_end, read_until, sse_messages};
use crate::common::peers::PyServer;
use crate::common::{self, TestGateway};

const FIRST_PROGRESS: &str = "\"progress\":1,";

fn allow_route(upstream: &str, timeouts: &str) -> String {
    format!(
        "[[routes]]\nname = \"py\"\npath = \"/mcp\"\nupstream = \"{upstream}\"\n\
         default_decision = \"allow\"\n{timeouts}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_mid_stream_ends_the_callers_stream() {
    let mut py = PyServer::start(&[]).await;
    let gw = TestGateway::start(&allow_route(&py.url(), "")).await;
    let resp = common::open(
        Method::POST,
        &gw.url("/mcp"),
        &COUNTDOWN_HEADERS,
        countdown(1, 100, 100),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_until(&mut body, &mut got, FIRST_PROGRESS, Duration::from_secs(10)).await;

    py.signal("KILL");
    py.wait_gone().await;
    let end = read_to_end(&mut body, &mut got, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(
        matches!(end, End::Cut),
        "a stream whose upstream died must not look complete: {end:?}, {text}"
    );
    let messages = sse_messages(text.trim_end_matches(|c| c != '\n'));
    assert!(!messages.is_empty(), "{text}");
    assert!(
        messages
            .iter()
            .all(|m| m["method"] == "notifications/progress"),
        "only the events the upstream sent: {text}"
    );

    // The gateway goes on: the next call is a prompt, clean 502.
    let started = Instant::now();
    let r = common::send(
        Method::POST,
        &gw.url("/mcp"),
        &COUNTDOWN_HEADERS,
        countdown(2, 1, 10),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_unavailable");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_is_not_left_hanging_when_the_upstream_dies() {
    let mut py = PyServer::start(&[]).await;
    let gw = TestGateway::start(&allow_route(&py.url(), "")).await;
    let url = gw.url("/mcp");
    // The client's own deadline is far beyond what the test allows.
    let client = tokio::spawn(async move {
        common::peers::py_client(&[
            "--url",
            &url,
            "--era",
            "modern",
            "--timeout",
            "60",
            "call",
            "--tool",
            "countdown",
            "--args",
            r#"{"n": 200, "delay_ms": 100}"#,
        ])
        .await
    });
    // Kill the upstream once the call is under way (its first request logged).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !py
        .requests()
        .iter()
        .any(|r| r["headers"]["mcp-name"] == "countdown")
    {
        assert!(
            Instant::now() < deadline,
            "the client never called countdown"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    py.signal("KILL");
    py.wait_gone().await;
    let killed = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(20), client)
        .await
        .expect("the client ends within 20 s of the upstream's death, not at its own deadline")
        .expect("client task");
    let err = out.expect_err("a call whose upstream died cannot succeed");
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "{:?}",
        killed.elapsed()
    );
    assert!(!err.contains("liftoff"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_upstream_times_out_before_headers_and_mid_stream() {
    let py = PyServer::start(&[]).await;
    let gw = TestGateway::start(&allow_route(
        &py.url(),
        "[routes.timeouts]\nfirst_byte = \"1s\"\nstream_idle = \"1s\"\n",
    ))
    .await;

    // Mid-stream: the upstream stops after its first event.
    let resp = common::open(
        Method::POST,
        &gw.url("/mcp"),
        &COUNTDOWN_HEADERS,
        countdown(1, 100, 100),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    read_until(&mut body, &mut got, FIRST_PROGRESS, Duration::from_secs(10)).await;
    py.signal("STOP");
    let frozen = Instant::now();
    let end = read_to_end(&mut body, &mut got, Duration::from_secs(10)).await;
    let waited = frozen.elapsed();
    assert!(matches!(end, End::Cut), "cut by stream_idle: {end:?}");
    assert!(
        waited >= Duration::from_millis(700) && waited < Duration::from_secs(5),
        "cut after {waited:?}, stream_idle is 1s"
    );

    // Before headers: still frozen, a new call waits first_byte, then 504.
    let started = Instant::now();
    let r = common::send(
        Method::POST,
        &gw.url("/mcp"),
        &COUNTDOWN_HEADERS,
        countdown(2, 1, 10),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "upstream_timeout", "{v}");
    assert_eq!(v["error"]["route"], "py", "{v}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "answered after {took:?}, first_byte is 1s"
    );
    assert_eq!(
        common::metric(
            &gw,
            "toolgate_requests_total{outcome=\"upstream_timeout\",route=\"py\"}"
        )
        .await,
        1.0
    );

    // Thawed, the upstream serves again through the same gateway.
    py.signal("CONT");
    let r = common::send(
        Method::POST,
        &gw.url("/mcp"),
        &COUNTDOWN_HEADERS,
        countdown(3, 1, 10),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let done = sse_messages(&r.text());
    assert_eq!(
        done.last()
            .map(|m| m["result"]["content"][0]["text"].clone()),
        Some("liftoff".into()),
        "{}",
        r.text()
    );
}
