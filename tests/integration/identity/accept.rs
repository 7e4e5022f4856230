//! Good tokens: forwarded without the caller's credential, served from the
//! cache without losing the per-route checks (audience, issuers, scopes), and
//! delegation chains up to the allowed depth.

use std::time::Duration;

use toolgate::identify::mint::{DEV_ISSUER, DEV_JWKS, DEV_KEY_PEM, Mint};

use super::*;
use crate::common::tokens::{claims, with};

const ROUTE_SECRET: &str = "route-credential-7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_token_is_forwarded_without_the_callers_credential() {
    let iss = Issuers::new();
    let up = echo_upstream().await;
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), ROUTE_SECRET).unwrap();
    let gw = TestGateway::start(&format!(
        "{}{}{}[routes.upstream_auth]\nprefix = \"Bearer \"\nvalue = {{ file = {} }}\n{}",
        server(),
        iss.toml,
        route("a", "/a", &up.url("/a"), Some("issuers = [\"spire\"]")),
        toml_path(secret.path()),
        route("b", "/b", &up.url("/b"), Some("issuers = [\"spire\"]")),
    ))
    .await;
    let (aud_a, aud_b) = (format!("{PUBLIC}/a"), format!("{PUBLIC}/b"));
    let token = iss.svid(AGENT, &aud_a);

    // The same token twice (the second time from the cache).
    for id in 1..=2 {
        let r = call(&gw.url("/a"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "call {id}: {}", r.text());
    }
    // Cached for route a's audience, still refused on route b.
    let r = call(&gw.url("/b"), &token).await;
    assert_refused(
        &r,
        &metadata_url("/b"),
        Refused::token("wrong_audience", "token aud does not include this audience"),
        &[&token],
    );
    // ... and still good on route a.
    let r = call(&gw.url("/a"), &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // A token for both audiences is good on both.
    let both = iss.spire.sign(&with(
        claims(SPIRE, AGENT, &aud_a),
        json!({"aud": [aud_a, aud_b]}),
    ));
    for path in ["/a", "/b"] {
        let r = call(&gw.url(path), &both).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.text());
    }

    let seen = up.seen();
    assert_eq!(seen.len(), 5);
    for s in &seen {
        let all = format!("{:?}", s.headers);
        assert!(!all.contains(&token) && !all.contains(&both), "{all}");
        match s.uri.path() {
            // Route a sends its own credential instead of the caller's ...
            "/a" => assert_eq!(s.headers["authorization"], format!("Bearer {ROUTE_SECRET}")),
            // ... route b sends none.
            _ => assert!(s.headers.get("authorization").is_none(), "{all}"),
        }
    }
}

/// Two routes with the same audience but different trusted issuers: a token
/// from an issuer only route `svid` trusts must stay refused on route
/// `oauth`, also after it was verified (and cached) on route `svid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_token_is_not_accepted_on_a_route_that_does_not_trust_its_issuer() {
    let iss = Issuers::new();
    let up = echo_upstream().await;
    let gw = TestGateway::start(&format!(
        "{}{}{}{}",
        server(),
        iss.toml,
        route(
            "svid",
            "/svid",
            &up.url("/svid"),
            Some("issuers = [\"spire\"]\naudience = \"urn:toolgate:shared\""),
        ),
        route(
            "oauth",
            "/oauth",
            &up.url("/oauth"),
            Some("issuers = [\"idp\"]\naudience = \"urn:toolgate:shared\""),
        ),
    ))
    .await;
    let token = iss.svid(AGENT, "urn:toolgate:shared");
    let untrusted = Refused::token(
        "untrusted_issuer",
        "token issuer is not trusted on this route",
    );

    let r = call(&gw.url("/oauth"), &token).await;
    assert_refused(&r, &metadata_url("/oauth"), untrusted, &[&token]);
    let r = call(&gw.url("/svid"), &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(&gw.url("/oauth"), &token).await;
    assert_refused(&r, &metadata_url("/oauth"), untrusted, &[&token]);
    assert_eq!(up.seen().len(), 1, "only the call on /svid was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scopes_are_refused_with_403_insufficient_scope() {
    let iss = Issuers::new();
    let up = echo_upstream().await;
    // Both routes share one audience, so a token cached on /open is the
    // same cache entry /scoped looks up: the scope check must still run.
    let gw = TestGateway::start(&format!(
        "{}{}{}{}",
        server(),
        iss.toml,
        route(
            "open",
            "/open",
            &up.url("/"),
            Some("issuers = [\"spire\", \"idp\"]\naudience = \"urn:toolgate:tools\""),
        ),
        route(
            "scoped",
            "/scoped",
            &up.url("/"),
            Some(
                "issuers = [\"spire\", \"idp\"]\naudience = \"urn:toolgate:tools\"\n\
                 scopes = [\"tools:call\"]"
            ),
        ),
    ))
    .await;
    let aud = "urn:toolgate:tools";
    let md = metadata_url("/scoped");
    let insufficient = Refused {
        status: StatusCode::FORBIDDEN,
        error: Some("insufficient_scope"),
        reason: "insufficient_scope",
        description: "token lacks the required scope(s): tools:call",
        scope: Some("tools:call"),
    };

    let lacking = [
        ("no scope claim", iss.access_token(USER, aud, json!({}))),
        (
            "other scopes",
            iss.access_token(USER, aud, json!({"scope": "read tools:list"})),
        ),
        (
            "scp array without it",
            iss.access_token(USER, aud, json!({"scp": ["read"]})),
        ),
        // `scope` wins over `scp`.
        (
            "scope without it, scp with it",
            iss.access_token(USER, aud, json!({"scope": "read", "scp": ["tools:call"]})),
        ),
        ("a JWT-SVID", iss.svid(AGENT, aud)),
    ];
    for (name, token) in &lacking {
        // Verified and cached on the unscoped route first.
        let r = call(&gw.url("/open"), token).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
        let r = call(&gw.url("/scoped"), token).await;
        assert_refused(&r, &md, insufficient, &[token]);
    }
    assert_eq!(
        up.seen().len(),
        lacking.len(),
        "only the /open calls were forwarded"
    );
    assert_eq!(
        common::metric(&gw, &auth_failures("insufficient_scope", "scoped")).await,
        lacking.len() as f64
    );

    for (name, token) in [
        (
            "scope tools:call other",
            iss.access_token(USER, aud, json!({"scope": "tools:call other"})),
        ),
        (
            "scp array",
            iss.access_token(USER, aud, json!({"scp": ["x", "tools:call"]})),
        ),
    ] {
        for _ in 0..2 {
            let r = call(&gw.url("/scoped"), &token).await;
            assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
        }
    }
    assert_eq!(up.seen().len(), lacking.len() + 4);
}

/// `act` chains (RFC 8693): an agent acting for a user is accepted, up to
/// eight actors; nine, or a malformed `act`, is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegation_chains_are_accepted_up_to_eight_actors() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("dev.json");
    std::fs::write(&jwks, DEV_JWKS).unwrap();
    let up = echo_upstream().await;
    let gw = TestGateway::start(&format!(
        "{}\n[[issuers]]\nname = \"dev\"\nissuer = \"{DEV_ISSUER}\"\nmode = \"oauth\"\n\
         jwks_file = {}\n{}",
        server(),
        toml_path(&jwks),
        route(
            "delegated",
            "/mcp",
            &up.url("/mcp"),
            Some("issuers = [\"dev\"]")
        ),
    ))
    .await;
    let aud = format!("{PUBLIC}/mcp");
    let mint = |actors: usize| {
        let mut m = Mint::dev(USER, &aud, Duration::from_secs(300));
        m.actors = (0..actors)
            .map(|i| format!("spiffe://example.org/agent-{i}"))
            .collect();
        m
    };

    for actors in [0, 1, 2, 8] {
        let token = mint(actors).sign(DEV_KEY_PEM.as_bytes()).unwrap();
        let r = call(&gw.url("/mcp"), &token).await;
        assert_eq!(r.status, StatusCode::OK, "{actors} actors: {}", r.text());
    }
    let bad_delegation = Refused::token(
        "bad_delegation",
        "token act claim is malformed or nested too deep",
    );
    let nine = mint(9).sign(DEV_KEY_PEM.as_bytes()).unwrap();
    let mut act_string = mint(0);
    act_string.claims = vec![("act".into(), "\"spiffe://example.org/agent\"".into())];
    let act_string = act_string.sign(DEV_KEY_PEM.as_bytes()).unwrap();
    let mut act_no_sub = mint(0);
    act_no_sub.claims = vec![("act".into(), r#"{"act":{"sub":"x"}}"#.into())];
    let act_no_sub = act_no_sub.sign(DEV_KEY_PEM.as_bytes()).unwrap();
    for token in [&nine, &act_string, &act_no_sub] {
        let r = call(&gw.url("/mcp"), token).await;
        assert_refused(&r, &metadata_url("/mcp"), bad_delegation, &[token]);
    }
    assert_eq!(up.seen().len(), 4);
    assert_eq!(
        common::metric(&gw, &auth_failures("bad_delegation", "delegated")).await,
        3.0
    );
}
