//! Streaming: SSE event by event, tools/list filtering in streams, resets, idle cuts, size limits.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_events_are_streamed_as_they_arrive() {
    let (up, mut senders) = upstream::sse_upstream().await;
    let gw = TestGateway::start(&route("sse", "/mcp", &up.url(""), ALLOW)).await;
    let body = serde_json::to_vec(&tools_call(json!(5), "echo")).unwrap();
    let resp = common::open(Method::POST, &gw.url("/mcp"), &MCP_HEADERS, body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let tx = tokio::time::timeout(Duration::from_secs(1), senders.recv())
        .await
        .unwrap()
        .unwrap();
    let mut body = resp.into_body();

    let first = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n";
    let second =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"content\":[]}}\n\n";
    tx.send(Ok(Bytes::from_static(first.as_bytes())))
        .await
        .unwrap();
    let mut got = Vec::new();
    // The upstream has not sent event 2 nor ended the stream yet.
    read_until(
        &mut body,
        &mut got,
        first.as_bytes(),
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(got, first.as_bytes());

    tx.send(Ok(Bytes::from_static(second.as_bytes())))
        .await
        .unwrap();
    drop(tx);
    read_rest(&mut body, &mut got, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(String::from_utf8(got).unwrap(), format!("{first}{second}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_over_sse_is_filtered_event_by_event() {
    const COMMENT: &str = ": keep-alive\n\n";
    const PROGRESS: &str = "event: message\r\nid: 41\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\r\n\r\n";
    let list_event = format!(
        "event: message\nid: 42\ndata: {}\n\n",
        json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": upstream_tools()}})
    );
    let stream = format!("{COMMENT}{PROGRESS}{list_event}");
    let answer = Bytes::from(stream.clone());
    let up = FakeUpstream::start(move |_| {
        let answer = answer.clone();
        async move { upstream::with_type(200, "text/event-stream", answer) }
    })
    .await;
    let gw = TestGateway::start(&format!(
        "{}{}",
        route("closed", "/deny", &up.url(""), DENY),
        route("open", "/allow", &up.url(""), ALLOW),
    ))
    .await;

    let r = post_mcp(&gw.url("/deny"), &[], &tools_list(json!(7))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/event-stream");
    let text = r.text();
    let rest = text
        .strip_prefix(&format!("{COMMENT}{PROGRESS}"))
        .unwrap_or_else(|| panic!("non-list events must pass byte for byte: {text:?}"));
    assert!(rest.contains("id: 42\n"), "event id kept: {rest:?}");
    let message = parse_sse_data(rest);
    assert_eq!(message["id"], 7);
    assert_eq!(message["result"]["tools"], json!([]));

    let r = post_mcp(&gw.url("/allow"), &[], &tools_list(json!(7))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.text(),
        stream,
        "an allow route shows every tool, byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_mid_stream_ends_the_callers_stream() {
    let (up, mut senders) = upstream::sse_upstream().await;
    let gw = TestGateway::start(&route("reset", "/mcp", &up.url(""), ALLOW)).await;
    let body = serde_json::to_vec(&tools_call(json!(1), "echo")).unwrap();
    let resp = common::open(Method::POST, &gw.url("/mcp"), &MCP_HEADERS, body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tx = tokio::time::timeout(Duration::from_secs(1), senders.recv())
        .await
        .unwrap()
        .unwrap();
    let mut body = resp.into_body();
    let first =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n";
    tx.send(Ok(Bytes::from_static(first.as_bytes())))
        .await
        .unwrap();
    let mut got = Vec::new();
    read_until(
        &mut body,
        &mut got,
        first.as_bytes(),
        Duration::from_secs(1),
    )
    .await;
    tx.send(Err(std::io::Error::other("upstream crashed")))
        .await
        .unwrap();
    let end = read_rest(&mut body, &mut got, Duration::from_secs(2)).await;
    assert_eq!(got, first.as_bytes(), "nothing after the reset");
    assert!(
        end.is_err(),
        "a cut stream must not look complete to the caller"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_stream_is_cut_after_stream_idle() {
    let (up, mut senders) = upstream::sse_upstream().await;
    let gw = TestGateway::start(&route(
        "idle",
        "/mcp",
        &up.url(""),
        &format!("{ALLOW}\n[routes.timeouts]\nstream_idle = \"300ms\""),
    ))
    .await;
    let body = serde_json::to_vec(&tools_call(json!(1), "echo")).unwrap();
    let resp = common::open(Method::POST, &gw.url("/mcp"), &MCP_HEADERS, body).await;
    let tx = tokio::time::timeout(Duration::from_secs(10), senders.recv())
        .await
        .unwrap()
        .unwrap();
    let mut body = resp.into_body();
    let first =
        "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n";
    // The stream's last event leaves the upstream now: the gateway's idle
    // time starts no earlier, however late the caller reads it.
    let silent_since = Instant::now();
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
    // Cut within a few times stream_idle; without the cut the stream
    // stays open (the upstream holds it) and this read times out.
    let end = read_rest(&mut body, &mut got, Duration::from_secs(5)).await;
    let waited = silent_since.elapsed();
    assert!(end.is_err(), "an idle-cut stream ends with an error");
    assert_eq!(got, first.as_bytes());
    assert!(
        waited >= Duration::from_millis(200),
        "cut too early: {waited:?}"
    );
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_bodies_stream_through_but_huge_lists_fail_closed() {
    let filler = "x".repeat(20 * 1024 * 1024);
    let huge = Bytes::from(format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{{\"content\":[{{\"type\":\"text\",\"text\":\"{filler}\"}}]}}}}"
    ));
    let many_tools: Vec<Value> = (0..20_000)
        .map(|i| json!({"name": format!("tool_{i}"), "inputSchema": {"type": "object"}}))
        .collect();
    let big_list = Bytes::from(
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 2, "result": {"tools": many_tools}}))
            .unwrap(),
    );
    assert!(big_list.len() > 65536);
    let (huge2, list2) = (huge.clone(), big_list.clone());
    let up = FakeUpstream::start(move |seen| {
        let (huge, list) = (huge2.clone(), list2.clone());
        async move {
            let v: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
            if v["method"] == "tools/list" {
                upstream::with_type(200, "application/json", list)
            } else {
                upstream::with_type(200, "application/json", huge)
            }
        }
    })
    .await;
    let gw = TestGateway::start(&format!(
        "[limits]\nmax_inspected_response = 65536\n{}",
        route("big", "/mcp", &up.url(""), ALLOW),
    ))
    .await;

    let r = post_mcp(&gw.url("/mcp"), &[], &tools_call(json!(1), "echo")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), huge.len());
    assert!(r.body == huge, "20 MiB answer arrives intact");

    let r = post_mcp(&gw.url("/mcp"), &[], &tools_list(json!(2))).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let v = r.json();
    assert_eq!(v["error"]["code"], "upstream_response_too_large");
    assert_eq!(v["error"]["route"], "big");
    assert!(!r.text().contains("tool_0"), "never the unfiltered list");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_sse_list_event_cuts_the_stream() {
    let many_tools: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("tool_{i}")}))
        .collect();
    let event = format!(
        "event: message\ndata: {}\n\n",
        json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": many_tools}})
    );
    assert!(event.len() > 2 * 65536);
    let (up, mut senders) = upstream::sse_upstream().await;
    let gw = TestGateway::start(&format!(
        "[limits]\nmax_inspected_response = 65536\n{}",
        route("bigsse", "/mcp", &up.url(""), DENY),
    ))
    .await;
    let body = serde_json::to_vec(&tools_list(json!(3))).unwrap();
    let resp = common::open(Method::POST, &gw.url("/mcp"), &MCP_HEADERS, body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tx = tokio::time::timeout(Duration::from_secs(1), senders.recv())
        .await
        .unwrap()
        .unwrap();
    // The event arrives in 16 KiB pieces; the gateway may buffer at most 64 KiB of it.
    let event = Bytes::from(event);
    let feeder = tokio::spawn(async move {
        for start in (0..event.len()).step_by(16 * 1024) {
            let piece = event.slice(start..(start + 16 * 1024).min(event.len()));
            if tx.send(Ok(piece)).await.is_err() {
                break;
            }
        }
        // Keep the stream open: only the limit may end it.
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    let mut body = resp.into_body();
    let mut got = Vec::new();
    let end = read_rest(&mut body, &mut got, Duration::from_secs(2)).await;
    feeder.abort();
    assert!(end.is_err(), "the stream is cut, not ended cleanly");
    assert!(
        got.is_empty(),
        "nothing of the oversized list is shown: {}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn replayed_tools_list_on_a_get_stream_is_filtered() {
    let event = format!(
        "id: 3\ndata: {}\n\n",
        json!({"jsonrpc": "2.0", "id": 77, "result": {"tools": upstream_tools()}})
    );
    let up = FakeUpstream::start(move |_| {
        let event = event.clone();
        async move { upstream::with_type(200, "text/event-stream", event) }
    })
    .await;
    let gw = TestGateway::start(&route("replay", "/mcp", &up.url(""), DENY)).await;
    let r = send(
        Method::GET,
        &gw.url("/mcp"),
        &[("accept", "text/event-stream"), ("last-event-id", "2")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    assert!(!text.contains("delete_all"), "{text}");
    assert_eq!(parse_sse_data(&text)["result"]["tools"], json!([]));
}

#[tokio::test]
async fn batched_tools_list_result_over_sse_is_filtered() {
    let event = format!(
        "event: message\ndata: {}\n\n",
        json!([{"jsonrpc": "2.0", "id": 1, "result": {"tools": upstream_tools()}}])
    );
    let up = FakeUpstream::start(move |_| {
        let event = event.clone();
        async move { upstream::with_type(200, "text/event-stream", event) }
    })
    .await;
    let gw = TestGateway::start(&route("sse-batch", "/mcp", &up.url(""), DENY)).await;
    for body in [tools_list(json!(1)), json!([tools_list(json!(1))])] {
        let r = post_mcp(&gw.url("/mcp"), &[], &body).await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(
            !r.text().contains("delete_all"),
            "unfiltered tools/list: {}",
            r.text()
        );
    }
}

#[tokio::test]
async fn list_filter_matches_ids_leniently_and_refuses_compressed_answers() {
    // An upstream that answers request 1 with id "1" must still be filtered.
    let up = FakeUpstream::start(|seen| async move {
        let req: Value = serde_json::from_slice(&seen.body).unwrap();
        if req["id"] == json!(2) {
            let mut resp = upstream::json(
                200,
                &json!({"jsonrpc":"2.0","id":2,"result":{"tools":upstream_tools()}}),
            );
            resp.headers_mut()
                .insert("content-encoding", http::HeaderValue::from_static("gzip"));
            return resp;
        }
        upstream::json(
            200,
            &json!({"jsonrpc":"2.0","id":"1","result":{"tools":upstream_tools()}}),
        )
    })
    .await;
    let gw = TestGateway::start(&route("locked", "/mcp", &up.url("/mcp"), DENY)).await;
    let r = post_mcp(&gw.url("/mcp"), &[], &tools_list(json!(1))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["result"]["tools"], json!([]), "{}", r.text());
    let r = post_mcp(&gw.url("/mcp"), &[], &tools_list(json!(2))).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "upstream_response_malformed");
    let seen = up.seen();
    assert_eq!(
        header(&seen[1], "accept-encoding"),
        Some("identity"),
        "asked for an uncompressed answer"
    );
}
