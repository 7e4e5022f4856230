//! The console's parts one by one: sessions, the origin check, forms,
//! redirects, formatting, assets.

use http::StatusCode;
use serde_json::json;

use super::*;
use crate::config::Role;
use crate::console::actions::is_console_page;
use crate::console::form::Form;
use crate::console::session::{SESSION_TTL, Sessions};
use crate::console::{Error, Operator, csrf, view};

fn operator() -> Operator {
    Operator {
        actor: "ops".into(),
        role: Role::Operator,
    }
}

#[test]
fn sessions_expire_after_their_ttl_and_ids_are_random() {
    let sessions = Sessions::default();
    let now = 1_000_000;
    let a = sessions.open(operator(), None, now).unwrap();
    let b = sessions.open(operator(), None, now).unwrap();
    assert_ne!(a.id, b.id);
    assert_ne!(a.csrf, a.id);
    assert_eq!(a.id.len(), 43, "256 bits, base64url");
    let ttl = u64::try_from(SESSION_TTL.as_millis()).unwrap();
    assert_eq!(sessions.get(&a.id, now + ttl - 1).as_ref(), Some(&a));
    assert_eq!(sessions.get(&a.id, now + ttl), None, "expired");
    assert_eq!(sessions.get(&a.id, now), None, "and dropped");
    assert!(sessions.get("made-up", now).is_none());
    sessions.close(&b.id);
    assert!(sessions.get(&b.id, now).is_none());
}

#[test]
fn a_flash_is_shown_once() {
    let sessions = Sessions::default();
    let s = sessions.open(operator(), None, 0).unwrap();
    let flash = crate::console::session::Flash {
        ok: true,
        text: "done".into(),
    };
    sessions.set_flash(&s.id, flash.clone());
    assert_eq!(sessions.take_flash(&s.id), Some(flash));
    assert_eq!(sessions.take_flash(&s.id), None);
}

fn head(headers: &[(&str, &str)]) -> http::request::Parts {
    let mut req = Request::post("/console/x").header("host", "Console.Test:9901");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.body(()).unwrap().into_parts().0
}

#[test]
fn the_origin_check_fails_closed() {
    let ok = |h: &[(&str, &str)], tls| csrf::same_origin(&head(h), tls).is_ok();
    assert!(ok(&[("origin", "http://console.test:9901")], false));
    assert!(ok(&[("sec-fetch-site", "same-origin")], false));
    assert!(ok(
        &[
            ("origin", "https://console.test:9901"),
            ("sec-fetch-site", "same-origin")
        ],
        true
    ));
    assert!(
        !ok(&[("origin", "http://console.test:9901")], true),
        "scheme counts"
    );
    assert!(
        !ok(&[("origin", "http://console.test:9902")], false),
        "port counts"
    );
    assert!(!ok(&[("origin", "null")], false));
    assert!(!ok(&[("sec-fetch-site", "same-site")], false));
    assert!(!ok(&[("sec-fetch-site", "none")], false));
    assert!(!ok(&[], false), "says nothing: refused");
    assert!(csrf::token(Some("abc"), "abc").is_ok());
    assert!(matches!(
        csrf::token(Some("abd"), "abc"),
        Err(Error::Csrf(_))
    ));
    assert!(matches!(csrf::token(None, "abc"), Err(Error::Csrf(_))));
}

#[test]
fn a_form_becomes_the_api_body() {
    let form = Form::parse(
        b"csrf=t&return=%2Fconsole%2Finbox&tool=search_*&max_uses=3&ttl=&reason=triage+it\
          &constraints=%5B%7B%22pointer%22%3A%22%2Frepo%22%2C%22equals%22%3A%22a%2Fb%22%7D%5D",
    )
    .unwrap();
    assert_eq!(form.get("return"), Some("/console/inbox"));
    assert_eq!(
        form.api_body().unwrap(),
        json!({"tool": "search_*", "max_uses": 3, "reason": "triage it",
               "constraints": [{"pointer": "/repo", "equals": "a/b"}]})
    );
    let e = Form::parse(b"max_uses=two")
        .unwrap()
        .api_body()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("max_uses: \"two\" is not a whole number"),
        "{e}"
    );
    let e = Form::parse(b"constraints=%5B")
        .unwrap()
        .api_body()
        .unwrap_err();
    assert!(
        e.to_string().starts_with("constraints: not valid JSON"),
        "{e}"
    );
    assert!(Form::parse(b"a=1&a=2").is_err(), "a field twice is refused");
}

#[test]
fn the_way_back_is_always_a_console_page() {
    assert!(is_console_page("/console/tasks/task_1"));
    assert!(is_console_page("/console/tasks?agent=a"));
    for bad in [
        "https://evil.example/",
        "//evil.example/console/",
        "/console//evil",
        "/other",
        "/console/\\evil",
        "/console/a b",
    ] {
        assert!(!is_console_page(bad), "{bad}");
    }
}

#[test]
fn times_read_in_two_units() {
    assert_eq!(view::span(0), "0s");
    assert_eq!(view::span(42_500), "42s");
    assert_eq!(view::span(185_000), "3m 5s");
    assert_eq!(view::span(7_800_000), "2h 10m");
    assert_eq!(view::span(90_000_000), "1d 1h");
    assert_eq!(view::relative(10_000, 4_000), "in 6s");
    assert_eq!(view::relative(4_000, 10_000), "6s ago");
    assert_eq!(view::utc(1_700_000_000_123), "2023-11-14T22:13:20Z");
}

#[tokio::test]
async fn assets_are_embedded_and_pages_carry_no_inline_code() {
    let fx = Fixture::new();
    let mut names = crate::console::assets::names();
    names.sort();
    assert_eq!(names, ["console.css", "console.js", "icon.svg"]);
    for (name, kind) in [
        ("console.css", "text/css"),
        ("console.js", "text/javascript"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let page = fx.get(&format!("/console/assets/{name}"), None).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        assert!(
            page.headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
        let etag = page.headers[header::ETAG].to_str().unwrap().to_owned();
        let req = Request::get(format!("{ORIGIN}/console/assets/{name}"))
            .header(header::IF_NONE_MATCH, &etag)
            .body(Full::new(Bytes::new()))
            .unwrap();
        assert_eq!(fx.send(req, None).await.status, StatusCode::NOT_MODIFIED);
    }
    assert_eq!(
        fx.get("/console/assets/nope.js", None).await.status,
        StatusCode::NOT_FOUND
    );

    let (task, _) = fx.parked("delete_repo");
    let me = fx.sign_in(ADMIN).await;
    let sign_in = fx.get("/console/signin", None).await;
    for path in [
        "/console/inbox",
        "/console/tasks",
        &format!("/console/tasks/{}", task.id),
        "/console/policy",
        "/console/reports",
        "/console/nowhere",
    ] {
        let page = fx.get(path, Some(&me.cookie)).await;
        let csp = page.headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}"
        );
        assert_eq!(page.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        no_inline_code(path, &page.text);
    }
    no_inline_code("signin", &sign_in.text);
}

fn no_inline_code(path: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    for (at, _) in lower.match_indices("<script") {
        let tag = &lower[at..at + lower[at..].find('>').unwrap()];
        assert!(
            tag.contains(" src=\"/console/assets/"),
            "{path}: inline script {tag}"
        );
    }
    assert!(!lower.contains("<style"), "{path}: a <style> element");
    assert!(!lower.contains(" style="), "{path}: a style attribute");
    assert!(!lower.contains("javascript:"), "{path}: a javascript: URL");
    let handler = regex::Regex::new(r#"\son[a-z]+\s*="#).unwrap();
    assert!(!handler.is_match(&lower), "{path}: an inline event handler");
}

#[tokio::test]
async fn unknown_pages_and_methods_are_pages_too() {
    let fx = Fixture::new();
    let me = fx.sign_in(OPERATOR).await;
    let page = fx.get("/console/tasks/task_nope", Some(&me.cookie)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(
        page.text.contains("no task &#34;task_nope&#34;"),
        "{}",
        page.text
    );
    let page = fx.get("/console/../v1/tasks", Some(&me.cookie)).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = fx.get("/console", None).await;
    assert_eq!(page.location(), "/console/");
    let page = fx
        .post("/console/whoami", Some(&me.cookie), &[("csrf", &me.csrf)])
        .await;
    assert_eq!(page.status, StatusCode::METHOD_NOT_ALLOWED, "{}", page.text);
    let big = "x".repeat(70_000);
    let page = fx
        .post(
            "/console/grants",
            Some(&me.cookie),
            &[("csrf", &me.csrf), ("reason", &big)],
        )
        .await;
    assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
}
