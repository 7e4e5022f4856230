//! Listener lifecycle: unknown paths, the admin listener, GET/DELETE stream control, graceful drain.

use super::*;

#[tokio::test]
async fn get_and_delete_on_an_mcp_route_pass_through() {
    let up = FakeUpstream::start(|seen| async move {
        let mut resp = if seen.method == Method::GET {
            upstream::with_type(
                200,
                "text/event-stream",
                "id: 8\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\n",
            )
        } else {
            upstream::with_type(200, "text/plain", "")
        };
        resp.headers_mut().insert("mcp-session-id", "sess-from-upstream".parse().unwrap());
        resp
    })
    .await;
    // Deny by default: stream control is not a tool call and is not refused.
    let gw = TestGateway::start(&route("streams", "/mcp", &up.url("/mcp"), DENY)).await;

    let r = send(
        Method::GET,
        &gw.url("/mcp"),
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", "sess-1"),
            ("last-event-id", "7"),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["mcp-session-id"], "sess-from-upstream");
    assert!(
        r.text().contains("notifications/tools/list_changed"),
        "{}",
        r.text()
    );

    let r = send(
        Method::DELETE,
        &gw.url("/mcp"),
        &[("mcp-session-id", "sess-1")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["mcp-session-id"], "sess-from-upstream");

    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].uri.path(), "/mcp");
    assert_eq!(header(&seen[0], "mcp-session-id"), Some("sess-1"));
    assert_eq!(header(&seen[0], "last-event-id"), Some("7"));
    assert_eq!(seen[1].method, Method::DELETE);
    assert_eq!(header(&seen[1], "mcp-session-id"), Some("sess-1"));
}

#[tokio::test]
async fn unknown_paths_get_404_and_the_admin_listener_answers() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route("only", "/mcp", &up.url(""), ALLOW)).await;
    for path in ["/other", "/mcpx", "/"] {
        let r = post_mcp(&gw.url(path), &[], &tools_list(json!(1))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.json()["error"]["code"], "no_route", "{path}");
    }
    assert!(up.seen().is_empty());

    let r = send(Method::GET, &gw.admin_url("/healthz"), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "ok\n");
    let r = send(Method::GET, &gw.admin_url("/metrics"), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(text.contains("toolgate_requests_total"), "{text}");
    assert!(
        text.contains("toolgate_requests_total{outcome=\"no_route\",route=\"\"} 3"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_open_streams_finish() {
    let (up, mut senders) = upstream::sse_upstream().await;
    // A drain long enough for the wait below on a loaded machine.
    let gw = TestGateway::start(&format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"30s\"\n{}",
        route("drain", "/mcp", &up.url(""), ALLOW)
    ))
    .await;
    let body = serde_json::to_vec(&tools_call(json!(1), "echo")).unwrap();
    let resp = common::open(Method::POST, &gw.url("/mcp"), &MCP_HEADERS, body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tx = tokio::time::timeout(Duration::from_secs(10), senders.recv())
        .await
        .unwrap()
        .unwrap();
    let mut body = resp.into_body();
    let first =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n";
    let last =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n";
    tx.send(Ok(Bytes::from_static(first.as_bytes())))
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(
        &mut body,
        &mut got,
        first.as_bytes(),
        Duration::from_secs(10),
    )
    .await;

    gw.shutdown();
    // The listener closes: new connections are refused (a connection that
    // raced into the backlog is reset, never served).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(gw.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            other => assert!(
                Instant::now() < deadline,
                "gateway still accepts connections after shutdown: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The open stream still completes.
    tx.send(Ok(Bytes::from_static(last.as_bytes())))
        .await
        .unwrap();
    drop(tx);
    read_rest(&mut body, &mut got, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), format!("{first}{last}"));
}
