//! Trace context in `_meta` (SEP-414): the decision log records the trace
//! the agent's MCP client named, whether or not an HTTP header came too.

use toolgate::audit::line::Body;

use super::*;
use crate::audit::records;
use crate::common::peers::PyServer;

const AGENT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const HEADER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decision_log_follows_the_trace_in_meta() {
    let server = PyServer::start(&[]).await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let gw = TestGateway::start(&format!(
        "[audit]\ndir = \"{dir}\"\n\
         [[routes]]\nname = \"open\"\npath = \"/mcp\"\nupstream = \"{up}\"\ndefault_decision = \"allow\"\n",
        dir = dir.display(),
        up = server.url(),
    ))
    .await;
    let url = gw.url("/mcp");
    let header = format!("traceparent: 00-{HEADER_TRACE}-b7ad6b7169203331-01");
    let call = ["call", "--tool", "echo", "--args", r#"{"text":"t"}"#];
    // Without a trace, with one in _meta only, with _meta and a header.
    let runs: [&[&str]; 3] = [
        &[],
        &["--trace-id", AGENT_TRACE],
        &["--trace-id", AGENT_TRACE, "--header", &header],
    ];
    for extra in runs {
        let mut args = vec!["--url", &url, "--era", "modern", "--header", CALLER];
        args.extend_from_slice(extra);
        args.extend_from_slice(&call);
        let out = py_client(&args).await.unwrap();
        assert_eq!(out["text"], "t", "{out}");
    }
    let mut traces: Vec<String> = Vec::new();
    for _ in 0..100 {
        traces = records(&dir, 1)
            .await
            .iter()
            .filter_map(|r| match &r.body {
                Body::Decision(d) if d.tool == "echo" => d.trace_id.as_deref().map(str::to_owned),
                _ => None,
            })
            .collect();
        if traces.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(traces.len(), 3, "{traces:?}");
    assert_ne!(traces[0], AGENT_TRACE, "no trace given: a fresh one");
    assert_eq!(traces[0].len(), 32, "{traces:?}");
    assert_eq!(traces[1], AGENT_TRACE, "_meta only: {traces:?}");
    assert_eq!(
        traces[2], AGENT_TRACE,
        "_meta wins over the header: {traces:?}"
    );
    // The header the caller sent was forwarded as it came.
    let sent: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r["headers"]["mcp-method"] == "tools/call")
        .filter_map(|r| r["headers"]["traceparent"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(
        sent[1].contains(AGENT_TRACE),
        "_meta context forwarded as the header: {sent:?}"
    );
    assert!(sent[2].contains(HEADER_TRACE), "the header kept: {sent:?}");
}
