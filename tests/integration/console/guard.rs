//! What the console refuses, in a real browser: a viewer gets no answer
//! buttons and a forged approve from its session is refused 403; changes
//! without the session's CSRF token, or from another origin, are refused;
//! the page runs its own script and no inline code (CSP).

use http::{Method, StatusCode};
use serde_json::json;

use super::browser::Browser;
use super::*;
use crate::common::TestGateway;
use crate::common::send;
use crate::common::upstream::{FakeUpstream, json as json_answer};
use crate::tasks::{AGENT, admin, create_task, raw_call, refusal, token};

/// A gateway with one call parked (policy wants approval, nobody waits).
async fn parked() -> (TestGateway, FakeUpstream, String) {
    let up = FakeUpstream::start(|_| async {
        json_answer(
            200,
            &json!({"jsonrpc": "2.0", "id": 7, "result": {"content": []}}),
        )
    })
    .await;
    let gw = TestGateway::start(&console_config(&up.url(""), "needs_approval", "")).await;
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "tools", Some(&task));
    let r = raw_call(
        &gw,
        "tools",
        &bearer,
        Some(&task),
        "delete_repo",
        json!({"repo": "acme/app"}),
    )
    .await;
    assert!(
        refusal(&r).is_some_and(|t| t.contains("approval_pending")),
        "{}",
        r.text()
    );
    let listed = admin(&gw, Method::GET, "/v1/approvals?state=pending", None)
        .await
        .json();
    let id = listed["approvals"][0]["id"].as_str().unwrap().to_owned();
    (gw, up, id)
}

/// POSTs a form from the page itself (same origin, the session's cookie).
fn post_from_page(path: &str, fields: &str) -> String {
    format!(
        "const body = new URLSearchParams({fields});
         fetch('{path}', {{method: 'POST', body, redirect: 'manual'}})
           .then(r => r.text().then(t => done({{status: r.status, text: t}})))
           .catch(e => done({{status: -1, text: String(e)}}));"
    )
}

async fn still_pending(gw: &TestGateway, id: &str) {
    let shown = admin(gw, Method::GET, &format!("/v1/approvals/{id}"), None)
        .await
        .json();
    assert_eq!(shown["approval"]["state"], "pending", "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_cannot_approve_and_forged_changes_are_refused() {
    let (gw, up, id) = parked().await;
    let b = Browser::start().await;
    b.sign_in(&gw.admin_url(""), VIEWER_TOKEN).await;
    assert!(b.text("#role").await.eq_ignore_ascii_case("viewer"));
    b.wait_for(&format!("#{id}")).await;
    assert!(
        b.find_all(".approve-btn").await.is_empty(),
        "no approve button"
    );
    assert!(b.find_all(".deny-btn").await.is_empty(), "no deny button");
    b.wait_text(
        &format!("#{id} .readonly"),
        "can read approvals but not answer",
    )
    .await;

    // The viewer forges the approve with its own valid session and token:
    // the API's role table refuses it.
    let csrf = "document.querySelector('input[name=csrf]').value";
    let r = b
        .run(&post_from_page(
            &format!("/console/approvals/{id}/approve"),
            &format!("{{csrf: {csrf}}}"),
        ))
        .await;
    assert_eq!(r["status"], 403, "{r}");
    assert!(
        r["text"]
            .as_str()
            .unwrap()
            .contains("this needs role operator"),
        "{r}"
    );
    still_pending(&gw, &id).await;

    // An operator's page: a change without the token, or with another, is refused.
    b.click("#signout").await;
    b.wait_for("#token").await;
    b.sign_in(&gw.admin_url(""), OPERATOR).await;
    let path = format!("/console/approvals/{id}/approve");
    let r = b.run(&post_from_page(&path, "{}")).await;
    assert_eq!(r["status"], 403, "{r}");
    assert!(r["text"].as_str().unwrap().contains("no CSRF token"), "{r}");
    let r = b.run(&post_from_page(&path, "{csrf: 'forged'}")).await;
    assert_eq!(r["status"], 403, "{r}");
    still_pending(&gw, &id).await;

    // Outside the browser, with the stolen cookie and token but another
    // Origin: refused too.
    let cookie = b.client.get_named_cookie("toolgate_console").await.unwrap();
    assert!(cookie.http_only().unwrap_or(false), "HttpOnly");
    let token = b
        .run(&format!("done({csrf});"))
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let cookie = format!("toolgate_console={}", cookie.value());
    let r = send(
        Method::POST,
        &gw.admin_url(&path),
        &[
            ("cookie", &cookie),
            ("origin", "https://evil.example"),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        format!("csrf={token}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    still_pending(&gw, &id).await;
    assert!(up.seen().is_empty(), "nothing reached the tool");
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_runs_only_what_its_csp_allows() {
    let (gw, _up, id) = parked().await;
    let r = send(Method::GET, &gw.admin_url("/console/signin"), &[], "").await;
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ] {
        assert!(csp.contains(directive), "{csp} lacks {directive}");
    }
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(r.headers["x-frame-options"], "DENY");

    let b = Browser::start().await;
    b.sign_in(&gw.admin_url(""), OPERATOR).await;
    b.wait_for(&format!("#{id}")).await;
    // The console's own script and stylesheet run...
    b.wait_for("#live[data-state=\"on\"]").await;
    let bg = b
        .run("done(getComputedStyle(document.querySelector('header.top')).backgroundColor);")
        .await;
    assert_eq!(bg, "rgb(31, 58, 95)", "console.css applied");
    // Every script the page loads is the console's own file.
    let scripts = b
        .run("done(Array.from(document.scripts).map(s => s.getAttribute('src')));")
        .await;
    assert_eq!(scripts, json!(["/console/assets/console.js"]), "{scripts}");
    // ...and inline code does not: the browser blocks it and says so.
    let r = b
        .run(
            "const seen = [];
             document.addEventListener('securitypolicyviolation', e => seen.push(e.effectiveDirective));
             const s = document.createElement('script');
             s.textContent = 'window.__inline = 1;';
             document.head.appendChild(s);
             const st = document.createElement('style');
             st.textContent = 'body { display: none }';
             document.head.appendChild(st);
             setTimeout(() => done({ran: window.__inline === 1, hidden: getComputedStyle(document.body).display === 'none', seen}), 300);",
        )
        .await;
    assert_eq!(r["ran"], false, "inline script blocked: {r}");
    assert_eq!(r["hidden"], false, "inline style blocked: {r}");
    let seen: Vec<&str> = r["seen"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        seen.contains(&"script-src-elem") && seen.contains(&"style-src-elem"),
        "{r}"
    );
    b.close().await;
}
