//! What the fuzz targets found, shown end to end through a running
//! gateway (the minimal inputs are seeds under `fuzz/seeds/*/regression-*`).

use http::Method;
use serde_json::json;

use crate::common::upstream::{self, FakeUpstream};
use crate::common::{TestGateway, send};
use crate::policy::{fixture, policy};

/// `glob("DELETE /repos/*", "DELETE /repos/*/x")` was false: the host
/// matched the pattern's `*` literally against the `*` in the text and
/// lost the wildcard, so a deny module scoped to that glob did not apply
/// and the route's default let the call through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_in_the_path_does_not_escape_a_policy_scoped_by_glob() {
    let up = FakeUpstream::start(|_| async { upstream::json(200, &json!({"ok": true})) }).await;
    let config = format!(
        "[policy_limits]\ncache_dir = \"/tmp/toolgate-test-cache\"\n\
         [[routes]]\nname = \"api\"\npath = \"/api\"\nkind = \"http\"\nupstream = \"{}\"\n\
         default_decision = \"allow\"\n{}",
        up.url(""),
        policy(
            "no-deletes",
            &fixture("deny.wat"),
            "api",
            "tools = [\"DELETE /repos/*\"]"
        ),
    );
    let gw = TestGateway::start(&config).await;
    for path in ["/api/repos/acme", "/api/repos/*/x", "/api/repos/a*b/c"] {
        let r = send(Method::DELETE, &gw.url(path), &[], "").await;
        assert_eq!(r.status, 403, "DELETE {path} must be denied: {}", r.text());
    }
    let r = send(Method::GET, &gw.url("/api/repos/*/x"), &[], "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(up.seen().len(), 1, "only the GET reached the upstream");
}

/// A raw non-ASCII byte in a request path was read as Latin-1 (`é` became
/// `Ã©`), so the path policy saw and the upstream got was not the one
/// sent, and normalising it again changed it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_utf8_path_reaches_the_upstream_as_its_escape() {
    let up = FakeUpstream::start(|_| async { upstream::json(200, &json!({"ok": true})) }).await;
    let gw = TestGateway::start(&format!(
        "[[routes]]\nname = \"api\"\npath = \"/api\"\nkind = \"http\"\nupstream = \"{}\"\n\
         default_decision = \"allow\"\n",
        up.url("")
    ))
    .await;
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all("GET /api/caf\u{e9} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .unwrap()
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = up.seen();
    assert_eq!(seen[0].uri.path(), "/caf%C3%A9");
}
