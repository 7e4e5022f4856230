//! Forwarding: header hygiene, credentials, body limits, upstream failures.

use super::*;

#[tokio::test]
async fn forwarded_headers_are_cleaned_and_credentials_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("route-token");
    std::fs::write(&secret, "route-secret\n").unwrap();
    let up = FakeUpstream::start(|seen| async move {
        let mut resp = mcp_answer(&seen);
        let h = resp.headers_mut();
        h.insert("connection", "x-resp-hop".parse().unwrap());
        h.insert("x-resp-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-resp-keep", "1".parse().unwrap());
        resp
    })
    .await;
    let auth_mcp = format!(
        "{ALLOW}\n[routes.upstream_auth]\nprefix = \"Bearer \"\nvalue = {{ file = '{}' }}",
        secret.display()
    );
    let auth_http = format!(
        "kind = \"http\"\n{ALLOW}\n[routes.upstream_auth]\nheader = \"x-api-key\"\nvalue = {{ file = '{}' }}",
        secret.display()
    );
    let gw = TestGateway::start(&format!(
        "{}{}",
        route("hyg-mcp", "/mcp", &up.url("/mcp-base"), &auth_mcp),
        route("hyg-http", "/api", &up.url("/base"), &auth_http),
    ))
    .await;

    // MCP route, over a raw connection so every hop-by-hop header really is sent.
    let body = serde_json::to_vec(&tools_call(json!(1), "echo")).unwrap();
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut request = format!(
        "POST /mcp HTTP/1.1\r\n\
         Host: gateway.example:8443\r\n\
         Content-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\n\
         Authorization: Bearer caller-secret\r\n\
         Connection: x-hop, close\r\n\
         X-Hop: 1\r\n\
         Keep-Alive: timeout=5\r\n\
         TE: trailers\r\n\
         Proxy-Authorization: Basic Y2FsbGVyOnNlY3JldA==\r\n\
         Proxy-Connection: keep-alive\r\n\
         X-Keep: yes\r\n\
         X-Forwarded-For: 203.0.113.7\r\n\
         X-Forwarded-Proto: https\r\n\
         traceparent: {tp}\r\n\
         tracestate: vendor=1\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    let reply = raw_exchange(gw.addr, &request).await;
    assert!(reply.starts_with("HTTP/1.1 200 "), "{reply}");
    let (head, reply_body) = reply.split_once("\r\n\r\n").unwrap();
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nx-resp-keep: 1"), "{head}");
    assert!(
        !head.contains("x-resp-hop"),
        "hop-by-hop named by the upstream's Connection leaked: {head}"
    );
    assert!(!head.contains("keep-alive"), "{head}");
    assert_eq!(serde_json::from_str::<Value>(reply_body).unwrap()["id"], 1);

    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.uri.path(), "/mcp-base");
    assert_eq!(s.body, Bytes::from(body), "body forwarded byte for byte");
    assert_eq!(header(s, "authorization"), Some("Bearer route-secret"));
    assert_eq!(s.headers.get_all("authorization").iter().count(), 1);
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "te",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(
            !s.headers.contains_key(gone),
            "{gone} reached the upstream: {:?}",
            s.headers
        );
    }
    assert_eq!(header(s, "x-keep"), Some("yes"));
    assert_eq!(header(s, "host"), Some(up.addr.to_string().as_str()));
    assert_eq!(header(s, "x-forwarded-host"), Some("gateway.example:8443"));
    assert_eq!(header(s, "x-forwarded-for"), Some("203.0.113.7, 127.0.0.1"));
    assert_eq!(header(s, "x-forwarded-proto"), Some("http"));
    assert_eq!(header(s, "traceparent"), Some(tp));
    assert_eq!(header(s, "tracestate"), Some("vendor=1"));

    // HTTP route: path rewriting; the credential goes in another header and
    // the caller's Authorization is still removed.
    let r = send(
        Method::GET,
        &gw.url("/api/x/y?q=1"),
        &[("authorization", "Bearer caller-secret")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.text(), "ok");
    // An invalid traceparent is replaced, and its tracestate dropped with it.
    let r = send(
        Method::GET,
        &gw.url("/api"),
        &[("traceparent", "00-zz-00-01"), ("tracestate", "vendor=2")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    let s = &seen[1];
    assert_eq!(s.uri.path_and_query().unwrap().as_str(), "/base/x/y?q=1");
    assert!(!s.headers.contains_key("authorization"), "{:?}", s.headers);
    assert_eq!(header(s, "x-api-key"), Some("route-secret"));
    assert_eq!(header(s, "host"), Some(up.addr.to_string().as_str()));
    assert_eq!(header(s, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header(s, "x-forwarded-proto"), Some("http"));
    let generated = header(s, "traceparent").expect("a traceparent is generated");
    assert!(is_valid_traceparent(generated), "{generated}");

    let s = &seen[2];
    assert_eq!(s.uri.path_and_query().unwrap().as_str(), "/base");
    let replaced = header(s, "traceparent").expect("a traceparent is generated");
    assert!(is_valid_traceparent(replaced), "{replaced}");
    assert_ne!(replaced, generated, "each call gets its own trace");
    assert!(!s.headers.contains_key("tracestate"), "{:?}", s.headers);
}

#[tokio::test]
async fn request_body_over_the_limit_is_refused_with_413() {
    let up = FakeUpstream::start(|_| async { upstream::with_type(200, "text/plain", "ok") }).await;
    let gw = TestGateway::start(&format!(
        "[limits]\nmax_request_body = 1024\n{}",
        route(
            "small",
            "/api",
            &up.url(""),
            &format!("kind = \"http\"\n{ALLOW}")
        ),
    ))
    .await;
    let text = [("content-type", "text/plain")];
    let json_type = [("content-type", "application/json")];

    // A body policy cannot read is refused, not forwarded undecided.
    let r = send(Method::POST, &gw.url("/api/upload"), &text, vec![b'a'; 10]).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text());
    assert!(up.seen().is_empty());

    // Exactly at the limit is fine: a JSON string of 1024 bytes.
    let mut at_limit = vec![b'"'];
    at_limit.extend(vec![b'a'; 1022]);
    at_limit.push(b'"');
    let r = send(Method::POST, &gw.url("/api/upload"), &json_type, at_limit).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(up.seen()[0].body.len(), 1024);

    // Declared too large.
    let r = send(
        Method::POST,
        &gw.url("/api/upload"),
        &text,
        vec![b'b'; 2048],
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.json()["error"]["code"], "body_too_large");

    // Chunked, no length known up front.
    let r = post_chunked(&gw.url("/api/upload"), &text, vec![b'c'; 2048]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["error"]["code"], "body_too_large");

    assert_eq!(up.seen().len(), 1, "nothing too large reached the upstream");
}

#[tokio::test]
async fn unreachable_upstream_is_502_upstream_unavailable() {
    let closed = upstream::closed_port();
    let gw = TestGateway::start(&route(
        "down",
        "/mcp",
        &format!("http://{}", closed.addr),
        ALLOW,
    ))
    .await;
    let r = post_mcp(&gw.url("/mcp"), &[], &tools_list(json!(1))).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    let v = r.json();
    assert_eq!(v["error"]["code"], "upstream_unavailable");
    assert_eq!(v["error"]["route"], "down");
}

#[tokio::test]
async fn slow_upstream_is_504_upstream_timeout() {
    // Far slower than the bound below: only the gateway's timeout can
    // answer in time.
    let up = FakeUpstream::start(|seen| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        mcp_answer(&seen)
    })
    .await;
    let gw = TestGateway::start(&route(
        "slow",
        "/mcp",
        &up.url(""),
        &format!("{ALLOW}\n[routes.timeouts]\nfirst_byte = \"300ms\""),
    ))
    .await;
    let started = Instant::now();
    let r = post_mcp(&gw.url("/mcp"), &[], &tools_call(json!(1), "echo")).await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    let v = r.json();
    assert_eq!(v["error"]["code"], "upstream_timeout");
    assert_eq!(v["error"]["route"], "slow");
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(10), "answered after {took:?}");
}

#[tokio::test]
async fn upstream_error_answers_pass_through_verbatim() {
    const NOT_FOUND: &str = "{ \"jsonrpc\": \"2.0\",\n  \"id\": 1, \"error\": {\"code\": -32001, \"message\": \"Session not found\"} }";
    const BAD: &str = "bad request: unknown session\n";
    let up = FakeUpstream::start(|seen| async move {
        if header(&seen, "x-answer") == Some("404") {
            let mut resp = upstream::with_type(404, "application/json", NOT_FOUND);
            resp.headers_mut()
                .insert("x-upstream", "yes".parse().unwrap());
            resp
        } else {
            upstream::with_type(400, "text/plain; charset=utf-8", BAD)
        }
    })
    .await;
    // A deny route: tools/list answers are inspected, error answers are not.
    let gw = TestGateway::start(&route("errs", "/mcp", &up.url(""), DENY)).await;

    let r = post_mcp(
        &gw.url("/mcp"),
        &[("x-answer", "404")],
        &tools_list(json!(1)),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["x-upstream"], "yes");
    assert_eq!(r.body, Bytes::from_static(NOT_FOUND.as_bytes()));

    let r = post_mcp(
        &gw.url("/mcp"),
        &[("x-answer", "400")],
        &tools_list(json!(2)),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.body, Bytes::from_static(BAD.as_bytes()));
    assert_eq!(up.seen().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_timeout_is_504_upstream_timeout() {
    // A listener whose accept queue is full: the kernel drops further SYNs,
    // so a connect hangs until the gateway's connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let listener = socket.listen(1).unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        if let Ok(Ok(stream)) =
            tokio::time::timeout(Duration::from_millis(100), s.connect(addr)).await
        {
            fillers.push(stream);
        }
    }
    let extra = format!("{ALLOW}\n[routes.timeouts]\nconnect = \"300ms\"\nfirst_byte = \"10s\"");
    let gw = TestGateway::start(&route("stuck", "/mcp", &format!("http://{addr}"), &extra)).await;
    let started = Instant::now();
    let r = post_mcp(&gw.url("/mcp"), &[], &tools_list(json!(1))).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_timeout");
    assert_eq!(r.json()["error"]["route"], "stuck");
    drop((listener, fillers));
}
