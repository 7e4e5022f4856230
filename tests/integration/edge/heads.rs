//! Request heads the gateway refuses before any stage sees them: framing
//! another component could read differently (request smuggling), heads too
//! large to forward, and a `Connection` header that would strip MCP
//! headers after the gateway checked them.

use super::*;

/// One raw HTTP/1.1 exchange; the answer's status line and body.
async fn raw_status(gw: &TestGateway, request: &[u8]) -> (String, String) {
    let answer = raw_exchange(gw.addr, request).await;
    let status = answer.lines().next().unwrap_or("").to_owned();
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

/// Like [`raw_status`] for a request the gateway may cut off while it is
/// still being written: its answer, or "" if the cut came first.
async fn oversized_exchange(gw: &TestGateway, request: Vec<u8>) -> String {
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        writer
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the gateway neither answered nor closed");
    drop(writing.await);
    String::from_utf8_lossy(&out).into_owned()
}

const CALL: &str = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#;

#[tokio::test]
async fn smuggling_shapes_are_refused_and_nothing_is_forwarded() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), ALLOW)).await;
    let len = CALL.len();
    let head = "POST /mcp HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nConnection: close\r\n";
    let chunked = format!("{len:x}\r\n{CALL}\r\n0\r\n\r\n");
    for (shape, request) in [
        (
            "CL + TE",
            format!("{head}Content-Length: {len}\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"),
        ),
        (
            "duplicate CL",
            format!("{head}Content-Length: {len}\r\nContent-Length: {len}\r\n\r\n{CALL}"),
        ),
        (
            "conflicting CL",
            format!("{head}Content-Length: {len}\r\nContent-Length: 5\r\n\r\n{CALL}"),
        ),
        (
            "CL list",
            format!("{head}Content-Length: {len}, {len}\r\n\r\n{CALL}"),
        ),
        (
            "TE other than chunked",
            format!("{head}Transfer-Encoding: gzip, chunked\r\n\r\n{chunked}"),
        ),
    ] {
        let (status, body) = raw_status(&gw, request.as_bytes()).await;
        assert!(
            status.starts_with("HTTP/1.1 400"),
            "{shape}: {status} {body}"
        );
    }
    // The same call, framed once, goes through.
    let (status, _) = raw_status(
        &gw,
        format!("{head}Content-Length: {len}\r\n\r\n{CALL}").as_bytes(),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(
        up.seen().len(),
        1,
        "only the well-framed call was forwarded"
    );
}

#[tokio::test]
async fn ten_thousand_headers_are_refused_on_http1_and_http2() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), ALLOW)).await;
    let mut request =
        String::from("POST /mcp HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n");
    for i in 0..10_000 {
        request.push_str(&format!("x-h{i}: v\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{CALL}", CALL.len()));
    let answer = oversized_exchange(&gw, request.into_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    let client = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<Bytes>>();
    let mut req = Request::post(gw.url("/mcp"));
    for (k, v) in MCP_HEADERS {
        req = req.header(k, v);
    }
    for i in 0..10_000 {
        req = req.header(format!("x-h{i}"), "v");
    }
    let req = req
        .body(http_body_util::Full::new(Bytes::from(CALL)))
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), client.request(req)).await {
        Ok(Ok(resp)) => assert_eq!(resp.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
        Ok(Err(_)) => {} // the stream was refused (reset)
        Err(_) => panic!("no answer to 10k headers over h2"),
    }
    // Over the configured count but far under any size limit.
    let many: Vec<(String, String)> = (0..120).map(|i| (format!("x-h{i}"), "v".into())).collect();
    let mut headers: Vec<(&str, &str)> = MCP_HEADERS.to_vec();
    headers.extend(many.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let r = common::send(Method::POST, &gw.url("/mcp"), &headers, CALL).await;
    assert_eq!(r.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn request_headers_over_the_cap_get_431_and_never_reach_the_upstream() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), ALLOW)).await;
    // 100 headers of 4 KiB: ~400 KB, which used to be forwarded whole.
    let value = "a".repeat(4000);
    let names: Vec<String> = (0..90).map(|i| format!("x-pad-{i}")).collect();
    let mut headers: Vec<(&str, &str)> = MCP_HEADERS.to_vec();
    headers.extend(names.iter().map(|n| (n.as_str(), value.as_str())));
    let mut request = String::from("POST /mcp HTTP/1.1\r\nHost: gateway\r\n");
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{CALL}", CALL.len()));
    let answer = oversized_exchange(&gw, request.into_bytes()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    // One header just over the 64 KiB default.
    let big = "b".repeat(64 * 1024);
    let mut headers: Vec<(&str, &str)> = MCP_HEADERS.to_vec();
    headers.push(("x-big", &big));
    let r = common::send(Method::POST, &gw.url("/mcp"), &headers, CALL).await;
    assert_eq!(
        r.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{}",
        r.text()
    );
    assert_eq!(r.json()["error"]["code"], "request_headers_too_large");
    assert!(up.seen().is_empty());
    // Under the cap: forwarded, and what the upstream got stays under it too.
    let fits = "c".repeat(60 * 1024);
    let mut headers: Vec<(&str, &str)> = MCP_HEADERS.to_vec();
    headers.push(("x-fits", &fits));
    let r = common::send(Method::POST, &gw.url("/mcp"), &headers, CALL).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = up.seen();
    assert_eq!(header(&seen[0], "x-fits").map(str::len), Some(fits.len()));
    assert!(toolgate::listener::screen::header_bytes(&seen[0].headers) <= 64 * 1024);
}

#[tokio::test]
async fn the_header_cap_is_configurable() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&format!(
        "[server]\nbind = \"127.0.0.1:0\"\n[server.connections]\nmax_header_bytes = 4096\n{}",
        route("m", "/mcp", &up.url("/mcp"), ALLOW)
    ))
    .await;
    let value = "d".repeat(5000);
    let mut headers: Vec<(&str, &str)> = MCP_HEADERS.to_vec();
    headers.push(("x-pad", &value));
    let r = common::send(Method::POST, &gw.url("/mcp"), &headers, CALL).await;
    assert_eq!(
        r.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{}",
        r.text()
    );
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096")
    );
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn a_connection_header_naming_mcp_headers_is_refused() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), ALLOW)).await;
    for named in [
        "mcp-protocol-version",
        "Mcp-Name",
        "keep-alive, mcp-method",
        "mcp-session-id",
        "content-type",
    ] {
        let call = serde_json::to_vec(&tools_call(json!(1), "echo")).unwrap();
        let mut headers = MCP_HEADERS.to_vec();
        headers.push(("mcp-protocol-version", "2025-06-18"));
        headers.push(("mcp-method", "tools/call"));
        headers.push(("mcp-name", "echo"));
        headers.push(("connection", named));
        let r = common::send(Method::POST, &gw.url("/mcp"), &headers, call).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{named}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("Connection header names an end-to-end header"),
            "{message}"
        );
    }
    assert!(
        up.seen().is_empty(),
        "nothing was decided, nothing forwarded"
    );
    // A Connection header naming a true hop-by-hop header is fine, and that header stops here.
    let mut headers = MCP_HEADERS.to_vec();
    headers.push(("mcp-protocol-version", "2025-06-18"));
    headers.push(("connection", "x-hop"));
    headers.push(("x-hop", "1"));
    let r = post_mcp(
        &gw.url("/mcp"),
        &headers[2..],
        &tools_call(json!(2), "echo"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = up.seen();
    assert_eq!(header(&seen[0], "mcp-protocol-version"), Some("2025-06-18"));
    assert_eq!(header(&seen[0], "x-hop"), None);
}
