//! Who may call what: no token, a wrong token, each role against the
//! endpoints above it, no credentials at all; the public endpoints stay open.

use http::Method;
use serde_json::json;

use crate::common::admin::{ADMIN_TOKEN, AdminGateway, OPERATOR_TOKEN, VIEWER_TOKEN, assert_error};
use crate::common::send;

fn challenge(reply: &crate::common::Reply) -> String {
    reply.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn public_endpoints_stay_open_and_the_rest_needs_a_caller() {
    let gw = AdminGateway::with_roles().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = gw.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }

    let r = gw.call(Method::GET, "/v1/tasks", None, None).await;
    assert_error(&r, 401, "unauthenticated");
    assert_eq!(challenge(&r), "Bearer realm=\"toolgate-admin\"");
    // An unknown path says nothing to a stranger either.
    let r = gw.call(Method::GET, "/v1/secret-things", None, None).await;
    assert_error(&r, 401, "unauthenticated");

    let wrong = "tgadm_not-a-configured-token";
    let r = gw.call(Method::GET, "/v1/tasks", Some(wrong), None).await;
    assert_error(&r, 401, "invalid_token");
    assert!(challenge(&r).contains("error=\"invalid_token\""));
    assert!(!r.text().contains(wrong), "the token is never echoed");
    let r = send(
        Method::GET,
        &gw.url("/v1/tasks"),
        &[("authorization", "Basic YWRtaW46YWRtaW4=")],
        bytes::Bytes::new(),
    )
    .await;
    assert_error(&r, 401, "unauthenticated");

    // Known callers get 404 and 405 like anyone would expect.
    let r = gw.get("/v1/secret-things", VIEWER_TOKEN).await;
    assert_error(&r, 404, "not_found");
    let r = gw
        .call(Method::DELETE, "/v1/tasks", Some(VIEWER_TOKEN), None)
        .await;
    assert_error(&r, 405, "method_not_allowed");
    assert_eq!(r.headers["allow"], "GET, POST");
}

#[tokio::test]
async fn each_role_is_held_to_its_endpoints() {
    let gw = AdminGateway::with_roles().await;
    for (token, actor) in [
        (VIEWER_TOKEN, "viewer"),
        (OPERATOR_TOKEN, "operator"),
        (ADMIN_TOKEN, "admin"),
    ] {
        let me = gw.get("/v1/whoami", token).await;
        assert_eq!(me.status, 200, "{}", me.text());
        assert_eq!(me.json(), json!({"actor": actor, "role": actor}));
        for path in [
            "/v1/tasks",
            "/v1/grants",
            "/v1/approvals",
            "/v1/policies",
            "/policies",
        ] {
            assert_eq!(gw.get(path, token).await.status, 200, "{actor} GET {path}");
        }
    }

    let task = json!({"agent": "spiffe://example.org/a", "purpose": "triage"});
    let r = gw.post("/v1/tasks", VIEWER_TOKEN, &task).await;
    assert_error(&r, 403, "forbidden");
    assert_eq!(r.json()["error"]["required_role"], "operator");
    assert!(r.text().contains("viewer"), "{}", r.text());
    let r = gw.post("/v1/tasks", OPERATOR_TOKEN, &task).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = gw.post("/v1/tasks", ADMIN_TOKEN, &task).await;
    assert_eq!(r.status, 201, "admin includes operator: {}", r.text());

    for path in [
        "/v1/policies/reload",
        "/policies/reload",
        "/v1/config/reload",
    ] {
        for token in [VIEWER_TOKEN, OPERATOR_TOKEN] {
            let r = gw.post(path, token, &json!({})).await;
            assert_error(&r, 403, "forbidden");
            assert_eq!(r.json()["error"]["required_role"], "admin", "{path}");
        }
    }
    let r = gw
        .post("/v1/policies/reload", ADMIN_TOKEN, &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"reloaded": true, "modules": 0}));
    // No `serve` loop behind this in-process gateway: nothing could re-read
    // a file, and the answer says so (tests/integration/admin/serve.rs has it work).
    let r = gw.post("/v1/config/reload", ADMIN_TOKEN, &json!({})).await;
    assert_error(&r, 409, "reload_unavailable");

    // Every attempted change is counted with its outcome.
    let metrics = gw.call(Method::GET, "/metrics", None, None).await.text();
    for line in [
        "toolgate_admin_actions_total{action=\"task.create\",outcome=\"forbidden\"} 1",
        "toolgate_admin_actions_total{action=\"task.create\",outcome=\"ok\"} 2",
        "toolgate_admin_actions_total{action=\"policies.reload\",outcome=\"forbidden\"} 4",
        "toolgate_admin_actions_total{action=\"policies.reload\",outcome=\"ok\"} 1",
        "toolgate_admin_actions_total{action=\"config.reload\",outcome=\"reload_unavailable\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[tokio::test]
async fn without_credentials_every_api_call_is_refused_with_a_hint() {
    let gw = AdminGateway::start("", "").await;
    for token in [None, Some(ADMIN_TOKEN)] {
        let r = gw.call(Method::GET, "/v1/whoami", token, None).await;
        assert_error(&r, 401, "unauthenticated");
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("toolgate admin-token"), "{message}");
        assert!(message.contains("[[admin.tokens]]"), "{message}");
    }
    let r = gw.call(Method::POST, "/policies/reload", None, None).await;
    assert_error(&r, 401, "unauthenticated");
    assert_eq!(
        gw.call(Method::GET, "/healthz", None, None).await.status,
        200
    );
}

#[tokio::test]
async fn the_old_policy_paths_need_their_roles_too() {
    let gw = crate::common::TestGateway::start(crate::common::admin::UNUSED_ROUTE).await;
    let r = send(
        Method::POST,
        &gw.admin_url("/policies/reload"),
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_error(&r, 401, "unauthenticated");
    let bearer = format!("Bearer {}", crate::common::admin::ADMIN_TOKEN);
    let r = send(
        Method::POST,
        &gw.admin_url("/policies/reload"),
        &[("authorization", &bearer)],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(
        r.status,
        200,
        "TestGateway's default admin token: {}",
        r.text()
    );
}
