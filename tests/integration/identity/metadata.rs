//! OAuth 2.0 Protected Resource Metadata (RFC 9728): every route with auth
//! publishes its metadata, and every 401 points exactly there.

use super::*;
use crate::common::upstream::closed_port;

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protected_resource_metadata_is_served_and_named_by_every_challenge() {
    let iss = Issuers::new();
    let up = echo_upstream().await;
    // No public_url: the gateway's own address is the base URL, so the
    // metadata URL in a challenge can be fetched as is. The base URL is the
    // configured one, so the port is picked here, free a moment ago; if
    // another socket took it before the gateway could bind it, again.
    let (gw, port) = {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = closed_port().addr.port();
            let started = TestGateway::try_start(&format!(
                "[server]\nbind = \"127.0.0.1:{port}\"\ndrain_timeout = \"2s\"\n\
                 [admin]\nbind = \"127.0.0.1:0\"\n{}{}{}{}",
                iss.toml,
                route(
                    "tools",
                    "/mcp",
                    &up.url("/mcp"),
                    Some("issuers = [\"spire\", \"idp\"]\nscopes = [\"tools:call\"]"),
                ),
                route(
                    "github",
                    "/tools/github",
                    &up.url("/gh"),
                    Some("issuers = [\"spire\"]\naudience = \"urn:toolgate:github\""),
                ),
                route("open", "/open", &up.url("/open"), None),
            ))
            .await;
            match started {
                Ok(gw) => break (gw, port),
                Err(toolgate::server::Error::Bind { source, .. })
                    if source.kind() == std::io::ErrorKind::AddrInUse && attempts < 5 => {}
                Err(e) => panic!("gateway starts: {e}"),
            }
        }
    };
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(gw.addr.port(), port);

    // The 401 names the metadata URL; that URL serves the document.
    let r = common::post_mcp(&gw.url("/mcp"), &[], &tools_list(1)).await;
    let md = format!("{base}{WELL_KNOWN}/mcp");
    assert_refused(
        &r,
        &md,
        Refused {
            error: None,
            ..Refused::token("missing_token", "no bearer token")
        },
        &[],
    );
    let doc = common::send(Method::GET, &md, &[], Bytes::new()).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text());
    assert_eq!(doc.headers["content-type"], "application/json");
    let doc = doc.json();
    assert_eq!(
        doc,
        json!({
            "resource": format!("{base}/mcp"),
            // idp is an OAuth issuer: its own authorization server by default;
            // spire (SPIFFE) names none.
            "authorization_servers": [IDP],
            "bearer_methods_supported": ["header"],
            "resource_name": "tools",
            "scopes_supported": ["tools:call"],
        })
    );
    // The resource is the audience tokens must carry.
    let resource = doc["resource"].as_str().unwrap();
    let token = iss.access_token(USER, resource, json!({"scope": "tools:call"}));
    let r = call(&gw.url("/mcp"), &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // A trailing slash names the same resource.
    let r = common::send(Method::GET, &format!("{md}/"), &[], Bytes::new()).await;
    assert_eq!(r.status, StatusCode::OK);

    // A nested route with an explicit audience.
    let r = call(&gw.url("/tools/github"), &iss.svid(AGENT, "urn:wrong")).await;
    let md = format!("{base}{WELL_KNOWN}/tools/github");
    assert_refused(
        &r,
        &md,
        Refused::token("wrong_audience", "token aud does not include this audience"),
        &[],
    );
    let doc = common::send(Method::GET, &md, &[], Bytes::new())
        .await
        .json();
    assert_eq!(
        doc,
        json!({
            "resource": "urn:toolgate:github",
            "authorization_servers": [],
            "bearer_methods_supported": ["header"],
            "resource_name": "github",
        })
    );
    let r = call(
        &gw.url("/tools/github"),
        &iss.svid(AGENT, "urn:toolgate:github"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // No metadata for a route without auth, an unknown route, a sub-path of
    // a route, or anything but GET.
    for path in ["/open", "/nothing", "/mcp/extra", "/tools"] {
        let r = common::send(
            Method::GET,
            &gw.url(&format!("{WELL_KNOWN}{path}")),
            &[],
            Bytes::new(),
        )
        .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text());
    }
    let r = common::send(
        Method::POST,
        &gw.url(&format!("{WELL_KNOWN}/mcp")),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The route without auth takes anonymous calls.
    let r = common::post_mcp(&gw.url("/open"), &[], &tools_list(2)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.seen().len(), 3);
}
