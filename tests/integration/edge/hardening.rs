//! Inputs another component might read differently from the gateway: the
//! decision must be taken on exactly what is forwarded, or the request is
//! refused.

use super::*;

#[tokio::test]
async fn paths_are_normalised_before_routing_naming_and_forwarding() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route(
        "api",
        "/api",
        &up.url("/base"),
        &format!("kind = \"http\"\n{ALLOW}"),
    ))
    .await;
    let r = send(
        Method::GET,
        &gw.url("/api/repos/acme/%70rod"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        up.seen()[0].uri.path(),
        "/base/repos/acme/prod",
        "the upstream gets the form policy saw"
    );
    for bad in [
        "/api/../admin",
        "/api/./x",
        "/api/%2e%2e/admin",
        "/api/a%2Fb",
        "/api/a%5cb",
        "/api//admin",
        "/api/a;x=1",
        "/api/a%zz",
    ] {
        let r = send(Method::GET, &gw.url(bad), &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.json()["error"]["code"], "bad_path");
    }
    assert_eq!(up.seen().len(), 1);
}

#[tokio::test]
async fn mcp_stream_control_is_limited_to_the_endpoint_without_a_body() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), ALLOW)).await;
    let r = send(Method::GET, &gw.url("/mcp/admin"), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let body = serde_json::to_vec(&tools_call(json!(1), "echo")).unwrap();
    let r = send(Method::GET, &gw.url("/mcp"), &MCP_HEADERS, body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(
        up.seen().is_empty(),
        "nothing undecided reached the upstream"
    );
}

#[tokio::test]
async fn repeated_protocol_headers_and_oversized_batches_are_refused() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), ALLOW)).await;
    let two_versions = [
        ("mcp-protocol-version", "2025-06-18"),
        ("mcp-protocol-version", "2026-07-28"),
    ];
    let r = post_mcp(&gw.url("/mcp"), &two_versions, &tools_list(json!(1))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let batch: Vec<Value> = (0..65)
        .map(|i| json!({"jsonrpc": "2.0", "id": i, "method": "ping"}))
        .collect();
    let r = post_mcp(&gw.url("/mcp"), &[], &Value::Array(batch)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(up.seen().is_empty());
}

#[tokio::test]
async fn the_upstream_gets_the_message_as_decided_not_the_callers_bytes() {
    let up = mcp_upstream().await;
    let gw = TestGateway::start(&route("m", "/mcp", &up.url("/mcp"), ALLOW)).await;
    // Two "name" keys: the gateway decides on the last; a first-key parser
    // upstream would run the other tool. Only one name may travel on.
    let raw = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm_all","name":"echo","arguments":{}}}"#;
    let r = send(Method::POST, &gw.url("/mcp"), &MCP_HEADERS, raw).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let forwarded = String::from_utf8(up.seen()[0].body.to_vec()).unwrap();
    assert!(!forwarded.contains("rm_all"), "{forwarded}");
    assert_eq!(
        serde_json::from_str::<Value>(&forwarded).unwrap()["params"]["name"],
        "echo"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_event_in_a_filtered_stream_cuts_it() {
    let (up, mut senders) = upstream::sse_upstream().await;
    let gw = TestGateway::start(&route("locked", "/mcp", &up.url("/mcp"), DENY)).await;
    let mut headers = MCP_HEADERS.to_vec();
    headers.push(("x-test", "1"));
    let body = serde_json::to_vec(&tools_list(json!(1))).unwrap();
    let resp = common::open(Method::POST, &gw.url("/mcp"), &headers, body).await;
    let tx = senders.recv().await.unwrap();
    // Not JSON (a lone surrogate escape serde refuses), but it might be the list answer.
    tx.send(Ok(Bytes::from_static(b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"delete_all\",\"description\":\"\\ud83d\"}]}}\n\n")))
        .await
        .unwrap();
    drop(tx);
    let collected = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .unwrap();
    match collected {
        Err(_) => {}
        Ok(body) => {
            let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
            assert!(
                !text.contains("delete_all"),
                "an unfilterable list leaked: {text}"
            );
        }
    }
}
