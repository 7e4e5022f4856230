//! Sign-in, sessions, CSRF and roles through the whole console handler.

use http::StatusCode;

use super::*;
use crate::store::ApprovalState;

/// A form field or a header.
type Field<'a> = (&'a str, &'a str);

#[tokio::test]
async fn a_token_is_exchanged_once_for_a_strict_http_only_session_cookie() {
    let fx = Fixture::new();
    // Not signed in: pages send the browser to the sign-in form.
    let page = fx.get("/console/inbox", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/signin");

    let form = fx.get("/console/signin", None).await;
    let pre = form.set_cookie("toolgate_console_signin").unwrap();
    let pre = pre.split(';').next().unwrap().to_owned();
    let done = fx
        .post(
            "/console/signin",
            Some(&pre),
            &[
                ("csrf", &form.csrf()),
                ("method", "token"),
                ("token", OPERATOR),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert_eq!(done.location(), "/console/inbox");
    let cookie = done.set_cookie("toolgate_console").unwrap();
    for part in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: no Secure flag");
    assert!(
        !cookie.contains(OPERATOR),
        "the cookie is a session id, not the token"
    );
    let id = cookie.split(';').next().unwrap().to_owned();
    let inbox = fx.get("/console/inbox", Some(&id)).await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(
        inbox.text.contains("id=\"actor\">ops<"),
        "the token's name is the actor"
    );
    assert!(!inbox.text.contains(OPERATOR), "the token is never echoed");
}

#[tokio::test]
async fn on_tls_the_cookie_is_secure() {
    let mut fx = Fixture::new();
    fx.tls = true;
    let form = fx.get("/console/signin", None).await;
    assert!(
        form.set_cookie("toolgate_console_signin")
            .unwrap()
            .contains("; Secure")
    );
    let pre = form.set_cookie("toolgate_console_signin").unwrap();
    let pre = pre.split(';').next().unwrap().to_owned();
    let done = fx
        .post_with(
            "/console/signin",
            Some(&pre),
            &[("csrf", &form.csrf()), ("token", ADMIN)],
            &[("origin", "https://console.test")],
            None,
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    assert!(
        done.set_cookie("toolgate_console")
            .unwrap()
            .contains("; Secure")
    );
}

#[tokio::test]
async fn a_wrong_token_or_a_forged_sign_in_gets_no_session() {
    let fx = Fixture::new();
    let form = fx.get("/console/signin", None).await;
    let pre = form.set_cookie("toolgate_console_signin").unwrap();
    let pre = pre.split(';').next().unwrap().to_owned();
    let wrong = "tgadm_not-a-configured-token";
    let page = fx
        .post(
            "/console/signin",
            Some(&pre),
            &[("csrf", &form.csrf()), ("token", wrong)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.text.contains("matches no admin token"),
        "{}",
        page.text
    );
    assert!(!page.text.contains(wrong), "the token is not echoed");
    assert!(page.set_cookie("toolgate_console").is_none());

    // Login CSRF: another site cannot sign a browser in — without the
    // form's own cookie, or from another origin, nothing happens.
    let page = fx
        .post(
            "/console/signin",
            None,
            &[("csrf", &form.csrf()), ("token", OPERATOR)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    let page = fx
        .post_with(
            "/console/signin",
            Some(&pre),
            &[("csrf", &form.csrf()), ("token", OPERATOR)],
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "cross-site"),
            ],
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    assert!(page.set_cookie("toolgate_console").is_none());
}

#[tokio::test]
async fn a_certificate_session_holds_only_with_that_certificate() {
    let fx = Fixture::new();
    let form = fx.get("/console/signin", None).await;
    assert!(
        !form.text.contains("signin-cert"),
        "no certificate, no button"
    );
    let req = || {
        Request::get(format!("{ORIGIN}/console/signin"))
            .header(header::HOST, "console.test")
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let form = fx.send(req(), Some(CERT_SAN)).await;
    assert!(form.text.contains("signin-cert") && form.text.contains(CERT_SAN));
    let pre = form.set_cookie("toolgate_console_signin").unwrap();
    let pre = pre.split(';').next().unwrap().to_owned();
    let same = [("origin", ORIGIN)];
    let done = fx
        .post_with(
            "/console/signin",
            Some(&pre),
            &[("csrf", &form.csrf()), ("method", "cert")],
            &same,
            Some(CERT_SAN),
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.text);
    let cookie = done.set_cookie("toolgate_console").unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let with = |san: Option<&'static str>| {
        let cookie = cookie.clone();
        let fx = &fx;
        async move {
            let req = Request::get(format!("{ORIGIN}/console/inbox"))
                .header(header::HOST, "console.test")
                .header(header::COOKIE, cookie)
                .body(Full::new(Bytes::new()))
                .unwrap();
            fx.send(req, san).await
        }
    };
    let page = with(Some(CERT_SAN)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(&format!("cert:{CERT_SAN}")));
    // The cookie alone, or with another certificate, is not enough.
    assert_eq!(with(None).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        with(Some("spiffe://example.org/other")).await.status,
        StatusCode::SEE_OTHER
    );
    // Without a certificate, the certificate way refuses.
    let page = fx
        .post_with(
            "/console/signin",
            Some(&pre),
            &[("csrf", &form.csrf()), ("method", "cert")],
            &same,
            None,
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{}", page.text);
}

#[tokio::test]
async fn every_change_needs_same_origin_and_the_sessions_token() {
    let fx = Fixture::new();
    let (_, parked) = fx.parked("delete_repo");
    let me = fx.sign_in(OPERATOR).await;
    let path = format!("/console/approvals/{}/deny", parked.id);
    let reason = ("reason", "no");
    let cases: [(&[Field], &[Field], &str); 5] = [
        (&[reason], &[("origin", ORIGIN)], "no CSRF token"),
        (
            &[reason, ("csrf", "forged")],
            &[("origin", ORIGIN)],
            "not this session",
        ),
        (
            &[reason, ("csrf", &me.csrf)],
            &[("origin", "https://evil.example")],
            "Origin is not this console",
        ),
        (
            &[reason, ("csrf", &me.csrf)],
            &[("sec-fetch-site", "cross-site")],
            "Sec-Fetch-Site",
        ),
        (
            &[reason, ("csrf", &me.csrf)],
            &[],
            "neither its Origin nor Sec-Fetch-Site",
        ),
    ];
    for (form, headers, says) in cases {
        let page = fx
            .post_with(&path, Some(&me.cookie), form, headers, None)
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{says}: {}", page.text);
        assert!(page.text.contains(says), "{says}: {}", page.text);
    }
    // Nothing happened.
    let store = fx.gateway.tasks().store();
    assert_eq!(
        store.approval(&parked.id).unwrap().state,
        ApprovalState::Pending
    );
    // Another session's token does not fit this one.
    let other = fx.sign_in(OPERATOR).await;
    let page = fx
        .post(&path, Some(&me.cookie), &[reason, ("csrf", &other.csrf)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    // With all of it, the change is made (and the operator sent back).
    let page = fx
        .post(&path, Some(&me.cookie), &[reason, ("csrf", &me.csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
    let denied = store.approval(&parked.id).unwrap();
    assert_eq!(denied.state, ApprovalState::Denied);
    assert_eq!(
        denied.decided.unwrap().by,
        "ops",
        "audited as the token's name"
    );
    let inbox = fx.get("/console/inbox", Some(&me.cookie)).await;
    assert!(
        inbox.text.contains(&format!("Denied {}.", parked.id)),
        "flash"
    );
}

#[tokio::test]
async fn a_viewer_sees_no_answer_buttons_and_the_api_refuses_the_answer() {
    let fx = Fixture::new();
    let (task, parked) = fx.parked("delete_repo");
    let viewer = fx.sign_in(VIEWER).await;
    let inbox = fx.get("/console/inbox", Some(&viewer.cookie)).await;
    assert!(inbox.text.contains(&parked.id) && inbox.text.contains("deleting needs a human"));
    assert!(
        inbox.text.contains("triage the inbox"),
        "the task's purpose"
    );
    assert!(inbox.text.contains("alice@example.org"), "on behalf of");
    assert!(
        !inbox.text.contains("/approve\""),
        "no approve form for a viewer"
    );
    assert!(!inbox.text.contains("approve-btn"));
    let page = fx
        .post(
            &format!("/console/approvals/{}/approve", parked.id),
            Some(&viewer.cookie),
            &[("csrf", &viewer.csrf)],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.text);
    assert!(
        page.text
            .contains("this needs role operator; watcher has role viewer"),
        "{}",
        page.text
    );
    let store = fx.gateway.tasks().store();
    assert_eq!(
        store.approval(&parked.id).unwrap().state,
        ApprovalState::Pending
    );
    // The task page offers a viewer nothing to change either.
    let page = fx
        .get(&format!("/console/tasks/{}", task.id), Some(&viewer.cookie))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("issue-grant") && !page.text.contains("complete-task"));

    let operator = fx.sign_in(OPERATOR).await;
    let inbox = fx.get("/console/inbox", Some(&operator.cookie)).await;
    assert!(
        inbox
            .text
            .contains(&format!("/console/approvals/{}/approve", parked.id))
    );
    let page = fx.get("/console/policy", Some(&operator.cookie)).await;
    assert!(
        page.text.contains("Reloading needs the admin role"),
        "no reload for an operator"
    );
    let admin = fx.sign_in(ADMIN).await;
    let page = fx.get("/console/policy", Some(&admin.cookie)).await;
    assert!(page.text.contains("/console/policies/reload"));
}

#[tokio::test]
async fn signing_out_ends_the_session_server_side() {
    let fx = Fixture::new();
    let me = fx.sign_in(OPERATOR).await;
    let page = fx
        .post("/console/signout", Some(&me.cookie), &[("csrf", &me.csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(
        page.set_cookie("toolgate_console")
            .unwrap()
            .contains("Max-Age=0")
    );
    // The old cookie, replayed, is worth nothing.
    let page = fx.get("/console/inbox", Some(&me.cookie)).await;
    assert_eq!(page.location(), "/console/signin");
    let page = fx
        .post("/console/signout", Some(&me.cookie), &[("csrf", &me.csrf)])
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_live_stream_sends_the_rendered_inbox_first() {
    let fx = Fixture::new();
    let (_, parked) = fx.parked("delete_repo");
    let me = fx.sign_in(OPERATOR).await;
    let req = Request::get(format!("{ORIGIN}/console/inbox/events"))
        .header(header::HOST, "console.test")
        .header(header::COOKIE, &me.cookie)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let api: Arc<dyn Api> = Arc::clone(&fx.api) as Arc<dyn Api>;
    let conn = ConnInfo {
        remote: SocketAddr::from(([127, 0, 0, 1], 40000)),
        tls: false,
    };
    let resp = super::super::handle(Arc::clone(&fx.console), api, req, conn).await;
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = resp.into_body();
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let text = String::from_utf8_lossy(&frame);
    assert!(
        text.starts_with("retry: 2000\nevent: inbox\ndata: "),
        "{text}"
    );
    assert!(text.contains(&parked.id), "{text}");
    assert!(text.lines().all(|l| l.is_empty()
        || l.starts_with("data: ")
        || l.starts_with("event: ")
        || l.starts_with("retry: ")));
    // Signed out: the stream says so and ends.
    fx.console
        .sessions
        .close(me.cookie.split_once('=').unwrap().1);
    let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&frame[..], b"event: signedout\ndata: \n\n");
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn an_agents_grant_request_shows_what_it_asks_for() {
    let fx = Fixture::new();
    let (task, _) = fx.parked("delete_repo");
    let now = crate::store::model::now_ms();
    let request = Approval {
        id: "appr_request1".into(),
        kind: crate::store::ApprovalKind::Request,
        task_id: task.id.clone(),
        agent: task.agent.clone(),
        on_behalf_of: None,
        route: "tools".into(),
        tool: "create_issue".into(),
        arguments: serde_json::Value::Null,
        argument_digest: crate::store::model::argument_digest(&serde_json::Value::Null),
        why: "file the triage summary".into(),
        requested: Some(crate::store::RequestedGrant {
            tool: "create_issue".into(),
            route: Some("tools".into()),
            constraints: vec![
                serde_json::from_value(json!({"pointer": "/repo", "equals": "acme/app"})).unwrap(),
            ],
            ttl_ms: 900_000,
            max_uses: Some(3),
        }),
        created_at_ms: now - 65_000,
        expires_at_ms: now + 3_600_000,
        state: ApprovalState::Pending,
        decided: None,
        grant_id: None,
    };
    fx.gateway.tasks().park_request(request).unwrap();
    let me = fx.sign_in(OPERATOR).await;
    let inbox = fx.get("/console/inbox", Some(&me.cookie)).await;
    let card = &inbox.text[inbox
        .text
        .find("id=\"appr_request1\"")
        .expect("the request")..];
    assert!(card.contains("kind-request"), "{card}");
    assert!(
        card.contains("create_issue for 15m 0s on route tools, at most 3 use(s); /repo equals &#34;acme/app&#34;"),
        "{card}"
    );
    assert!(card.contains("data-waited=\"6"), "waited about 65s: {card}");
    assert!(card.contains("placeholder=\"as asked\""), "{card}");
    // Oldest first: the request (65s) comes before the parked call.
    let call = inbox.text.find("data-tool=\"delete_repo\"").unwrap();
    assert!(inbox.text.find("id=\"appr_request1\"").unwrap() < call);
}
