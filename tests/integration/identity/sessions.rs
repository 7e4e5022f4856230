//! Legacy MCP sessions belong to the principal that opened them: anyone
//! else, or a session the gateway never saw opened, gets 404; the token is
//! still verified on every request of a session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::common::tokens::{claims, now, with};

/// A legacy MCP server: `initialize` opens `sess-<n>`; DELETE ends it.
async fn session_upstream() -> FakeUpstream {
    let next = Arc::new(AtomicU64::new(1));
    FakeUpstream::start(move |seen| {
        let next = Arc::clone(&next);
        async move {
            if seen.method == Method::DELETE {
                return upstream::with_type(200, "text/plain", "");
            }
            let req: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
            if req["method"] == "initialize" {
                let mut resp = upstream::json(
                    200,
                    &json!({"jsonrpc": "2.0", "id": req["id"], "result": {
                        "protocolVersion": "2025-06-18",
                        "capabilities": {"tools": {}},
                        "serverInfo": {"name": "fake", "version": "1"},
                    }}),
                );
                let id = format!("sess-{}", next.fetch_add(1, Ordering::Relaxed));
                resp.headers_mut()
                    .insert("mcp-session-id", id.parse().unwrap());
                return resp;
            }
            upstream::json(
                200,
                &json!({"jsonrpc": "2.0", "id": req["id"], "result": {"tools": []}}),
            )
        }
    })
    .await
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    }})
}

/// POSTs `tools/list` in `session` with `token`.
async fn in_session(url: &str, token: &str, session: &str) -> Reply {
    let auth = bearer(token);
    common::post_mcp(
        url,
        &[
            ("authorization", auth.as_str()),
            ("mcp-session-id", session),
            ("mcp-protocol-version", "2025-06-18"),
        ],
        &tools_list(5),
    )
    .await
}

#[track_caller]
fn assert_session_not_found(r: &Reply, id: Value) {
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    let v = r.json();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    // A POST's error answers the request's id; GET and DELETE carry none.
    assert_eq!(v["id"], id, "{v}");
    assert_eq!(v["error"]["code"], -32600, "{v}");
    assert_eq!(
        v["error"]["message"],
        "session not found: start a new session with initialize"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_belong_to_the_principal_that_opened_them() {
    let iss = Issuers::new();
    let up = session_upstream().await;
    let gw = TestGateway::start(&format!(
        "{}{}{}",
        server(),
        iss.toml,
        route(
            "s",
            "/mcp",
            &up.url("/mcp"),
            Some("issuers = [\"spire\", \"idp\"]")
        ),
    ))
    .await;
    let url = gw.url("/mcp");
    let aud = format!("{PUBLIC}/mcp");
    let alice = iss.svid(AGENT, &aud);
    let mallory = iss.svid("spiffe://example.org/mallory", &aud);

    // A opens a session.
    let auth = bearer(&alice);
    let r = common::post_mcp(&url, &[("authorization", auth.as_str())], &initialize()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let session = r.headers["mcp-session-id"].to_str().unwrap().to_owned();
    assert_eq!(up.seen().len(), 1);

    // B presents A's session id: 404, nothing forwarded.
    assert_session_not_found(&in_session(&url, &mallory, &session).await, json!(5));
    // The same subject from another issuer is another principal.
    let alice_oauth = iss.access_token(AGENT, &aud, json!({}));
    assert_session_not_found(&in_session(&url, &alice_oauth, &session).await, json!(5));
    // The same subject with an agent acting for it is another principal.
    let alice_via_agent = iss.spire.sign(&with(
        claims(SPIRE, AGENT, &aud),
        json!({"act": {"sub": "spiffe://example.org/helper"}}),
    ));
    assert_session_not_found(
        &in_session(&url, &alice_via_agent, &session).await,
        json!(5),
    );
    // Nor can B open A's server stream.
    let auth_b = bearer(&mallory);
    let r = common::send(
        Method::GET,
        &url,
        &[
            ("authorization", auth_b.as_str()),
            ("accept", "text/event-stream"),
            ("mcp-session-id", session.as_str()),
        ],
        Bytes::new(),
    )
    .await;
    assert_session_not_found(&r, Value::Null);
    assert_eq!(up.seen().len(), 1);

    // A goes on, also with a new token for the same principal.
    let r = in_session(&url, &alice, &session).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = in_session(&url, &iss.svid(AGENT, &aud), &session).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(up.seen().len(), 3);

    // A's expired token is refused even in A's own session.
    let t = now();
    let expired = iss.spire.sign(&with(
        claims(SPIRE, AGENT, &aud),
        json!({"iat": t - 900, "exp": t - 600}),
    ));
    let r = in_session(&url, &expired, &session).await;
    assert_refused(
        &r,
        &metadata_url("/mcp"),
        Refused::token("expired", "token has expired"),
        &[&expired],
    );
    // No token at all, in A's session: 401 too.
    let r = common::post_mcp(
        &url,
        &[("mcp-session-id", session.as_str())],
        &tools_list(6),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());

    // A session the gateway never saw opened.
    assert_session_not_found(&in_session(&url, &alice, "sess-999").await, json!(5));
    assert_eq!(up.seen().len(), 3);

    // B's own session is B's alone.
    let r = common::post_mcp(&url, &[("authorization", auth_b.as_str())], &initialize()).await;
    let session_b = r.headers["mcp-session-id"].to_str().unwrap().to_owned();
    assert_ne!(session_b, session);
    let r = in_session(&url, &mallory, &session_b).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_session_not_found(&in_session(&url, &alice, &session_b).await, json!(5));

    // B cannot end A's session; A can, and then it is gone.
    let delete = |token: &str| {
        let auth = bearer(token);
        let session = session.clone();
        let url = url.clone();
        async move {
            common::send(
                Method::DELETE,
                &url,
                &[
                    ("authorization", auth.as_str()),
                    ("mcp-session-id", &session),
                ],
                Bytes::new(),
            )
            .await
        }
    };
    assert_session_not_found(&delete(&mallory).await, Value::Null);
    let r = delete(&alice).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_session_not_found(&in_session(&url, &alice, &session).await, json!(5));

    // Every request the upstream saw came from the session's owner.
    let seen = up.seen();
    assert_eq!(seen.len(), 6);
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(
        seen.iter().filter(|s| s.method == Method::DELETE).count(),
        1,
        "{methods:?}"
    );
    for s in &seen {
        assert!(s.headers.get("authorization").is_none());
    }
}

/// Two routes whose upstreams happen to issue the same session id (here
/// both count from `sess-1`): opening a session on one route must not take
/// over, or break, another principal's session on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_reused_by_another_upstream_is_not_taken_over() {
    let iss = Issuers::new();
    let (up_x, up_y) = (session_upstream().await, session_upstream().await);
    let gw = TestGateway::start(&format!(
        "{}{}{}{}",
        server(),
        iss.toml,
        route(
            "x",
            "/x",
            &up_x.url("/mcp"),
            Some("issuers = [\"spire\"]\naudience = \"urn:tg\"")
        ),
        route(
            "y",
            "/y",
            &up_y.url("/mcp"),
            Some("issuers = [\"spire\"]\naudience = \"urn:tg\"")
        ),
    ))
    .await;
    let alice = iss.svid(AGENT, "urn:tg");
    let mallory = iss.svid("spiffe://example.org/mallory", "urn:tg");
    let open = |path: &str, token: &str| {
        let (url, auth) = (gw.url(path), bearer(token));
        async move {
            let r =
                common::post_mcp(&url, &[("authorization", auth.as_str())], &initialize()).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            r.headers["mcp-session-id"].to_str().unwrap().to_owned()
        }
    };
    let on_x = open("/x", &alice).await;
    let on_y = open("/y", &mallory).await;
    assert_eq!(on_x, on_y, "both upstreams issued the same id");

    let r = in_session(&gw.url("/x"), &mallory, &on_x).await;
    assert_session_not_found(&r, json!(5));
    let r = in_session(&gw.url("/x"), &alice, &on_x).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "alice keeps her session: {}",
        r.text()
    );
}
