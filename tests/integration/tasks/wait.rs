//! Approvals: a parked call held open resumes by itself once an operator
//! approves within the route's wait; a denial comes back as the refusal; an
//! unanswered one names its approval id; the webhook hears of it, signed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::common::metric;
use crate::common::peers::{PyServer, py_client};
use crate::common::upstream::{FakeUpstream, json as json_answer};

/// Polls until a pending approval for the task shows up; returns its id.
async fn pending(gw: &TestGateway, task: &str) -> String {
    for _ in 0..200 {
        let r = admin(
            gw,
            Method::GET,
            &format!("/v1/approvals?state=pending&task={task}"),
            None,
        )
        .await;
        if let Some(a) = r.json()["approvals"].as_array().and_then(|a| a.first()) {
            return a["id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pending approval appeared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_resumes_once_approved() {
    let py = PyServer::start(&[]).await;
    let hook_seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let seen = Arc::clone(&hook_seen);
    let hook = FakeUpstream::start(move |req| {
        let seen = Arc::clone(&seen);
        async move {
            let header = |name: &str| {
                req.headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let sig = format!(
                "{} {}",
                header("x-toolgate-timestamp"),
                header("x-toolgate-signature")
            );
            seen.lock()
                .unwrap()
                .push((String::from_utf8_lossy(&req.body).into_owned(), sig));
            json_answer(200, &json!({"ok": true}))
        }
    })
    .await;
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret_file.path(), "hook-secret\n").unwrap();
    let extra = format!(
        "[approvals]\ngrant_ttl = \"1m\"\n[approvals.webhook]\nurl = \"{}\"\nsecret = {{ file = \"{}\" }}\n",
        hook.url("/hook"),
        secret_file.path().display()
    );
    let gw = TestGateway::start(&config(
        "tools",
        &py.url(),
        "needs_approval",
        "approval_wait = \"20s\"",
        &extra,
    ))
    .await;
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "tools", Some(&task));

    // The real client's call is held open while the operator looks at it.
    let url = gw.url("/tools");
    let auth = format!("Authorization: Bearer {bearer}");
    let call = tokio::spawn(async move {
        py_client(&[
            "--url",
            &url,
            "--header",
            &auth,
            "--era",
            "modern",
            "call",
            "--tool",
            "echo",
            "--args",
            r#"{"text":"held"}"#,
        ])
        .await
    });
    let id = pending(&gw, &task).await;
    let shown = admin(&gw, Method::GET, &format!("/v1/approvals/{id}"), None)
        .await
        .json();
    assert_eq!(shown["approval"]["tool"], "echo");
    assert_eq!(shown["approval"]["arguments"], json!({"text": "held"}));
    assert!(!call.is_finished(), "the call waits for the answer");
    let r = admin(
        &gw,
        Method::POST,
        &format!("/v1/approvals/{id}/approve"),
        Some(json!({"reason": "ok"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let out = call.await.unwrap().expect("client");
    assert_eq!(out["isError"], false, "{out}");
    assert_eq!(out["text"], "held");

    // The approval's grant covers exactly that call, once: the same call
    // again is parked anew; with other arguments likewise.
    let grant = &r.json()["grant"];
    assert_eq!(grant["max_uses"], 1);
    assert!(grant["argument_digest"].is_string());

    // The webhook heard of the pending approval, signed with the secret.
    let mut delivered = Vec::new();
    for _ in 0..100 {
        delivered = hook_seen.lock().unwrap().clone();
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (body, sig) = delivered.first().expect("webhook delivered").clone();
    let event: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(event["event"], "approval.pending");
    assert_eq!(event["approval"]["id"], id.as_str());
    let (timestamp, sig) = sig.split_once(' ').unwrap();
    let age = toolgate::store::model::now_ms() / 1000 - timestamp.parse::<u64>().unwrap();
    assert!(age < 60, "a fresh timestamp");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"hook-secret");
    let signed = format!("{timestamp}.{body}");
    let expect: String = aws_lc_rs::hmac::sign(&key, signed.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sig, format!("sha256={expect}"));

    // Grant changes are telemetry too.
    let parked = metric(&gw, "toolgate_task_events_total{event=\"approval_parked\"}").await;
    let approved = metric(
        &gw,
        "toolgate_task_events_total{event=\"approval_approved\"}",
    )
    .await;
    let used = metric(&gw, "toolgate_task_events_total{event=\"grant_used\"}").await;
    assert_eq!((parked, approved, used), (1.0, 1.0, 1.0));
    let mut delivered = 0.0;
    for _ in 0..50 {
        delivered = metric(
            &gw,
            "toolgate_task_events_total{event=\"webhook_delivered\"}",
        )
        .await;
        if delivered > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(delivered, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_and_unanswered_approvals_are_refusals_naming_the_approval() {
    let up = FakeUpstream::start(|_| async {
        json_answer(
            200,
            &json!({"jsonrpc": "2.0", "id": 7, "result": {"content": []}}),
        )
    })
    .await;
    let gw = TestGateway::start(&config(
        "tools",
        &up.url(""),
        "needs_approval",
        "approval_wait = \"300ms\"",
        "",
    ))
    .await;
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "tools", None);

    // Unanswered within the wait: isError naming the approval and how to retry.
    let r = raw_call(
        &gw,
        "tools",
        &bearer,
        Some(&task),
        "delete_repo",
        json!({"repo": "acme/app"}),
    )
    .await;
    let text = refusal(&r).expect("refused");
    let id = pending(&gw, &task).await;
    assert!(
        text.contains(&id) && text.contains("approval_pending") && text.contains("retry"),
        "{text}"
    );
    assert_eq!(r.json()["id"], 7);
    // The same call again parks no second approval.
    raw_call(
        &gw,
        "tools",
        &bearer,
        Some(&task),
        "delete_repo",
        json!({"repo": "acme/app"}),
    )
    .await;
    let all = admin(
        &gw,
        Method::GET,
        &format!("/v1/approvals?task={task}"),
        None,
    )
    .await
    .json();
    assert_eq!(all["approvals"].as_array().unwrap().len(), 1, "{all}");

    assert!(up.seen().is_empty(), "nothing reached the upstream");

    // Denied by an operator while the call waits: the refusal says who and
    // why. A gateway of its own, whose calls wait long enough (10 s) that
    // the denial, sent once the call has parked its approval, comes while
    // it still waits however slow the machine; only the denial can end it
    // with `approval_denied`.
    let denying = TestGateway::start(&config(
        "tools",
        &up.url(""),
        "needs_approval",
        "approval_wait = \"10s\"",
        "",
    ))
    .await;
    let task = create_task(&denying, AGENT).await;
    let waiter = raw_call(
        &denying,
        "tools",
        &bearer,
        Some(&task),
        "delete_repo",
        json!({"repo": "acme/app"}),
    );
    let deny = async {
        let id = pending(&denying, &task).await;
        admin(
            &denying,
            Method::POST,
            &format!("/v1/approvals/{id}/deny"),
            Some(json!({"reason": "not today"})),
        )
        .await
    };
    let asked = std::time::Instant::now();
    let (r, d) = tokio::join!(waiter, deny);
    let answered = asked.elapsed();
    assert_eq!(d.status, StatusCode::OK, "{}", d.text());
    let text = refusal(&r).expect("refused");
    assert!(
        text.contains("approval_denied") && text.contains("not today") && text.contains("ops"),
        "{text}"
    );
    assert_eq!(r.json()["id"], 7);
    // The denial woke the call: one that only looked again when its wait
    // ran out would have answered the same, 10 s after it asked.
    assert!(
        answered < Duration::from_secs(8),
        "the denied call answered {answered:?} after it asked"
    );
    assert!(up.seen().is_empty(), "nothing reached the upstream");
}
