//! Connections that try to hold a socket without finishing a request: each
//! is closed by the gateway once its (short, test-configured) timeout has
//! passed, and not before.

use tokio::io::AsyncRead;

use super::*;

const HEADER_READ: Duration = Duration::from_millis(600);
const BODY_READ: Duration = Duration::from_millis(600);
const IDLE: Duration = Duration::from_millis(900);

/// A gateway with short connection timeouts in front of an MCP upstream.
async fn timed_gateway(up: &FakeUpstream, extra: &str) -> TestGateway {
    TestGateway::start(&format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\n\
         [server.connections]\nheader_read_timeout = \"{}ms\"\nbody_read_timeout = \"{}ms\"\nidle_timeout = \"{}ms\"\n{extra}\n{}",
        HEADER_READ.as_millis(),
        BODY_READ.as_millis(),
        IDLE.as_millis(),
        route("m", "/mcp", &up.url("/mcp"), ALLOW)
    ))
    .await
}

/// Reads until the peer closes; what was read and when the close came.
async fn until_closed(
    reader: &mut (impl AsyncRead + Unpin),
    within: Duration,
) -> (String, Instant) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, reader.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {within:?}; read so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0) | Err(_)) => {
                return (String::from_utf8_lossy(&out).into_owned(), Instant::now());
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The gateway closed the connection `limit` after `from`, give or take scheduling.
fn closed_after(from: Instant, at: Instant, limit: Duration) {
    let took = at - from;
    assert!(
        took >= limit.mul_f32(0.9) && took < limit + Duration::from_millis(1500),
        "closed after {took:?}; the timeout is {limit:?}"
    );
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_read_timeout() {
    let up = mcp_upstream().await;
    let gw = timed_gateway(&up, "").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let connected = Instant::now();
    let (read, at) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(read, "", "nothing is answered to nothing");
    closed_after(connected, at, HEADER_READ);
}

#[tokio::test]
async fn a_header_sent_one_byte_at_a_time_is_cut_at_the_header_read_timeout() {
    let up = mcp_upstream().await;
    let gw = timed_gateway(&up, "").await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let connected = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let drip = tokio::spawn(async move {
        // Far longer than the timeout if it were never enforced.
        for byte in
            b"POST /mcp HTTP/1.1\r\nHost: gateway\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                .iter()
                .cycle()
                .take(100)
        {
            if writer.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (_, at) = until_closed(&mut reader, Duration::from_secs(5)).await;
    closed_after(connected, at, HEADER_READ);
    drip.abort();
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn partial_headers_then_silence_are_cut_at_the_header_read_timeout() {
    let up = mcp_upstream().await;
    let gw = timed_gateway(&up, "").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"POST /mcp HTTP/1.1\r\nHost: gateway\r\nContent-Type: appl")
        .await
        .unwrap();
    let sent = Instant::now();
    let (_, at) = until_closed(&mut stream, Duration::from_secs(5)).await;
    closed_after(sent, at, HEADER_READ);
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn a_connection_idling_after_a_request_is_closed_after_the_idle_timeout() {
    let up = mcp_upstream().await;
    let gw = timed_gateway(&up, "").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz-is-not-here HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let answered = Instant::now();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // Kept alive past the header-read timeout: idling is not sending a head.
    let (rest, at) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(rest, "");
    closed_after(answered, at, IDLE);
}

#[tokio::test]
async fn a_keep_alive_connection_serves_requests_spread_over_more_than_the_header_timeout() {
    let up = mcp_upstream().await;
    let gw = timed_gateway(&up, "").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    for _ in 0..3 {
        stream
            .write_all(b"GET /nothing HTTP/1.1\r\nHost: gateway\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 404"));
        // Under the idle timeout, over the header-read one in total.
        tokio::time::sleep(IDLE / 2).await;
    }
}

#[tokio::test]
async fn expect_100_continue_without_a_body_is_answered_408_and_closed() {
    let up = mcp_upstream().await;
    let gw = timed_gateway(&up, "").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(
            b"POST /mcp HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
              Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\
              Expect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
    let sent = Instant::now();
    let (read, at) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(read.starts_with("HTTP/1.1 100 Continue"), "{read}");
    assert!(read.contains("HTTP/1.1 408"), "{read}");
    assert!(read.contains("body_read_timeout"), "{read}");
    closed_after(sent, at, BODY_READ);
    assert!(up.seen().is_empty(), "nothing undecided was forwarded");
}

#[tokio::test]
async fn a_body_that_stops_halfway_is_answered_408() {
    let up = mcp_upstream().await;
    let gw = timed_gateway(&up, "").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(
            b"POST /mcp HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n\
              Accept: application/json, text/event-stream\r\nContent-Length: 100\r\n\r\n{\"jsonrpc\":",
        )
        .await
        .unwrap();
    let sent = Instant::now();
    let (read, at) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(read.starts_with("HTTP/1.1 408"), "{read}");
    closed_after(sent, at, BODY_READ);
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn an_admin_body_that_stops_halfway_is_answered_408_after_authentication() {
    use crate::common::admin::{ADMIN_TOKEN, token_table};
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&format!(
        "[admin]\nbind = \"127.0.0.1:0\"\n[admin.connections]\nbody_read_timeout = \"{}ms\"\n\n{}\n{}",
        BODY_READ.as_millis(),
        token_table("root", "admin", ADMIN_TOKEN),
        route("m", "/mcp", &up.url("/mcp"), ALLOW)
    ))
    .await;
    let mut stream = TcpStream::connect(gw.admin.unwrap()).await.unwrap();
    let head = format!(
        "POST /v1/tasks HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"agent\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let sent = Instant::now();
    let (read, at) = until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(read.starts_with("HTTP/1.1 408"), "{read}");
    assert!(read.contains("body_read_timeout"), "{read}");
    closed_after(sent, at, BODY_READ);
}

#[tokio::test]
async fn an_address_at_its_cap_loses_its_oldest_idle_connection_to_a_new_one() {
    // Every connection timeout far beyond what the test waits, so that only
    // the eviction can close the idle connection in time.
    const LONG: Duration = Duration::from_secs(10);
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\n\
         [server.connections]\nheader_read_timeout = \"{ms}ms\"\nbody_read_timeout = \"{ms}ms\"\n\
         idle_timeout = \"{ms}ms\"\nmax_connections_per_address = 3\n{}",
        route("m", "/mcp", &up.url("/mcp"), ALLOW),
        ms = LONG.as_millis(),
    ))
    .await;
    let opened = Instant::now();
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The fourth connection makes room by closing the oldest idle one.
    let r = post_mcp(&gw.url("/mcp"), &[], &tools_call(json!(1), "echo")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let (read, at) = until_closed(&mut idle[0], LONG / 2).await;
    assert_eq!(read, "");
    assert!(at - opened < LONG / 2, "evicted, not timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_serving_requests_are_kept_and_the_newcomer_refused() {
    let (up, mut senders) = upstream::sse_upstream().await;
    let gw = timed_gateway(&up, "max_connections = 2").await;
    let body = serde_json::to_vec(&tools_call(json!(1), "echo")).unwrap();
    let mut streams = Vec::new();
    for _ in 0..2 {
        let resp = common::open(Method::POST, &gw.url("/mcp"), &MCP_HEADERS, body.clone()).await;
        streams.push((resp, senders.recv().await.unwrap()));
    }
    // Both connections stream answers, for longer than every timeout.
    tokio::time::sleep(IDLE + HEADER_READ).await;
    let mut extra = TcpStream::connect(gw.addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /x HTTP/1.1\r\nHost: gateway\r\n\r\n")
        .await;
    let (read, _) = until_closed(&mut extra, Duration::from_secs(2)).await;
    assert_eq!(read, "", "refused without an answer");
    for (resp, tx) in streams {
        tx.send(Ok(Bytes::from_static(
            b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n\n",
        )))
        .await
        .expect("the stream is still open");
        drop(tx);
        let text = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&text).contains("\"id\":1"));
    }
    let r = send(Method::GET, &gw.url("/x"), &[], Bytes::new()).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "room again once they ended"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connections_carry_at_most_the_configured_concurrent_streams() {
    let (up, mut senders) = upstream::sse_upstream().await;
    let gw = timed_gateway(&up, "max_concurrent_streams = 2").await;
    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    // One request first, so the client knows the server's SETTINGS (a
    // client that has not seen them yet may open more streams, which the
    // server then refuses).
    let warm = Request::get(gw.url("/nothing"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let warm = client.request(warm).await.unwrap();
    assert_eq!(warm.version(), http::Version::HTTP_2);
    assert_eq!(warm.status(), StatusCode::NOT_FOUND);
    warm.into_body().collect().await.unwrap();
    let body = serde_json::to_vec(&tools_call(json!(1), "echo")).unwrap();
    let mut pending = Vec::new();
    for _ in 0..3 {
        let mut req = Request::post(gw.url("/mcp"));
        for (k, v) in MCP_HEADERS {
            req = req.header(k, v);
        }
        let req = req
            .body(http_body_util::Full::new(Bytes::from(body.clone())))
            .unwrap();
        let client = client.clone();
        pending.push(tokio::spawn(async move {
            // Read to the end: an unread stream still counts as open.
            let resp = client
                .request(req)
                .await
                .map_err(toolgate::BoxError::from)?;
            resp.into_body()
                .collect()
                .await
                .map(|_| ())
                .map_err(toolgate::BoxError::from)
        }));
    }
    let first = senders.recv().await.unwrap();
    let _second = senders.recv().await.unwrap();
    let third = tokio::time::timeout(Duration::from_millis(500), senders.recv()).await;
    assert!(
        third.is_err(),
        "a third stream was opened on the connection"
    );
    assert_eq!(up.seen().len(), 2);
    drop(first);
    let third = tokio::time::timeout(Duration::from_secs(5), senders.recv()).await;
    assert!(third.is_ok(), "the third stream starts once one ends");
    for p in pending {
        p.abort();
    }
}
