//! Which task a call runs in: a task header is trusted only for the task's
//! own agent; unknown and foreign tasks are refused; a token's task claim
//! and header must agree; revocation by agent; policy may auto-approve a
//! grant request (the `grant` phase) or refuse it.

use http::{Method, StatusCode};
use serde_json::json;

use super::*;
use crate::common::send;
use crate::common::upstream::{FakeUpstream, json as json_answer};

async fn upstream() -> FakeUpstream {
    FakeUpstream::start(|_| async {
        json_answer(200, &json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_headers_are_trusted_only_for_their_own_agent() {
    let up = upstream().await;
    let gw = TestGateway::start(&config("tools", &up.url(""), "deny", "", "")).await;
    let mine = create_task(&gw, AGENT).await;
    let theirs = create_task(&gw, OTHER_AGENT).await;
    issue_grant(&gw, &mine, "*", None).await;
    issue_grant(&gw, &theirs, "*", None).await;
    let me = token(AGENT, "tools", None);

    let ok = raw_call(&gw, "tools", &me, Some(&mine), "echo", json!({})).await;
    assert_eq!(refusal(&ok), None, "{}", ok.text());
    // Naming another agent's task (with its live grants) gets nothing.
    let r = raw_call(&gw, "tools", &me, Some(&theirs), "echo", json!({})).await;
    let text = refusal(&r).expect("refused");
    assert!(
        text.contains("task_invalid") && text.contains("not given to this caller"),
        "{text}"
    );
    let r = raw_call(&gw, "tools", &me, Some("task_nope"), "echo", json!({})).await;
    assert!(refusal(&r).unwrap().contains("does not exist"));
    // Claim and header must agree.
    let claimed = token(AGENT, "tools", Some(&mine));
    let r = raw_call(&gw, "tools", &claimed, Some(&theirs), "echo", json!({})).await;
    assert!(refusal(&r).unwrap().contains("task_invalid"));
    let r = raw_call(&gw, "tools", &claimed, None, "echo", json!({})).await;
    assert_eq!(refusal(&r), None, "the claim alone names the task");
    // Without a task jit-grants has no grants to go by.
    let r = raw_call(&gw, "tools", &me, None, "echo", json!({})).await;
    assert!(refusal(&r).unwrap().contains("no live grant"));
    assert_eq!(up.seen().len(), 2);

    // Revoking every grant of an agent (the source of truth changed).
    let r = admin(
        &gw,
        Method::POST,
        "/v1/agents/revoke-grants",
        Some(json!({"agent": AGENT, "reason": "left the team"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["revoked"].as_array().unwrap().len(), 1);
    let r = raw_call(&gw, "tools", &me, Some(&mine), "echo", json!({})).await;
    assert!(refusal(&r).unwrap().contains("no live grant"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_auto_approves_low_risk_grant_requests() {
    let up = upstream().await;
    let allowlist = build(&["allowlist"]);
    // An allowlist in the grant phase only: read-only tools are granted at once.
    let extra = format!(
        "\n[[policies]]\nname = \"low-risk\"\nmodule = \"{}\"\nvectors = \"{}\"\nphases = [\"grant\"]\n\
         [policies.config]\nrules = [{{ subjects = [\"{AGENT}\"], tools = [\"read_*\"] }}]\n",
        allowlist[0].display(),
        vectors("allowlist").display()
    );
    let gw = TestGateway::start(&config("tools", &up.url(""), "deny", "", &extra)).await;
    let task = create_task(&gw, AGENT).await;
    let me = token(AGENT, "tools", Some(&task));
    let ask = |tool: &str| {
        let me = me.clone();
        let body = json!({"route": "tools", "tool": tool, "ttl": "2m", "reason": "need to read the config"});
        let url = gw.url("/_toolgate/grant-requests");
        async move {
            send(
                Method::POST,
                &url,
                &[
                    ("authorization", &format!("Bearer {me}")),
                    ("content-type", "application/json"),
                ],
                serde_json::to_vec(&body).unwrap(),
            )
            .await
        }
    };
    let r = ask("read_file").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "granted");
    assert_eq!(v["grant"]["source"]["kind"], "policy");
    assert!(
        v["grant"]["granted_by"]
            .as_str()
            .unwrap()
            .starts_with("policy:low-risk@"),
        "{v}"
    );
    assert_eq!(v["approval"]["state"], "approved");
    let ok = raw_call(&gw, "tools", &me, None, "read_file", json!({"path": "a"})).await;
    assert_eq!(refusal(&ok), None);

    // Policy saw these arguments: the grant covers exactly them, whatever
    // constraints (none here) the agent asked for.
    let body = json!({"route": "tools", "tool": "read_config", "arguments": {"path": "app.toml"},
                      "reason": "read the app config"});
    let r = send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[
            ("authorization", &format!("Bearer {me}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ok = raw_call(
        &gw,
        "tools",
        &me,
        None,
        "read_config",
        json!({"path": "app.toml"}),
    )
    .await;
    assert_eq!(refusal(&ok), None);
    let other = raw_call(
        &gw,
        "tools",
        &me,
        None,
        "read_config",
        json!({"path": "/etc/shadow"}),
    )
    .await;
    assert!(refusal(&other).is_some(), "other arguments are not covered");
    // A glob is never granted by policy: it waits for a human.
    let r = ask("read_*").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["status"], "pending");

    // Anything else is refused by the same policy, with its reason.
    let r = ask("delete_repo").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert_eq!(r.json()["error"]["reason"], "policy_deny");

    // Hostile requests: no token, foreign route, missing reason, no task.
    let r = send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[("content-type", "application/json")],
        r#"{"route":"tools","tool":"x","reason":"r"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.contains_key("www-authenticate"));
    let r = send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[("authorization", &format!("Bearer {me}"))],
        r#"{"route":"nope","tool":"x","reason":"r"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let r = send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[("authorization", &format!("Bearer {me}"))],
        r#"{"route":"tools","tool":"x"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("reason"), "{}", r.text());
    // Well-formed JSON that breaks a rule: the admin API's code, naming it.
    for (body, field) in [
        (
            r#"{"route":"tools","tool":"x","reason":"r","max_uses":0}"#,
            "max_uses",
        ),
        (
            r#"{"route":"tools","tool":"x","reason":"r","ttl":"5000d"}"#,
            "ttl",
        ),
    ] {
        let r = send(
            Method::POST,
            &gw.url("/_toolgate/grant-requests"),
            &[("authorization", &format!("Bearer {me}"))],
            body,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.text());
        assert_eq!(
            r.json()["error"]["code"],
            "invalid_request",
            "{body}: {}",
            r.text()
        );
        assert!(r.text().contains(field), "{body}: {}", r.text());
    }
    let taskless = token(AGENT, "tools", None);
    let r = send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[("authorization", &format!("Bearer {taskless}"))],
        r#"{"route":"tools","tool":"x","reason":"r"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("task"), "{}", r.text());
    let r = send(Method::GET, &gw.url("/_toolgate/grant-requests"), &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "POST", "only POST is allowed here");
    assert_eq!(r.json()["error"]["code"], "method_not_allowed");
    assert!(
        r.text().contains("grant-request endpoint"),
        "the message names the endpoint, not an MCP route: {}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_grant_covers_exactly_the_approved_call() {
    let up = upstream().await;
    let gw = TestGateway::start(&config("tools", &up.url(""), "needs_approval", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let me = token(AGENT, "tools", Some(&task));
    // A tool name with a glob character in it, parked and approved...
    let r = raw_call(&gw, "tools", &me, None, "report_*", json!({})).await;
    assert!(refusal(&r).unwrap().contains("approval_pending"));
    let pending = admin(
        &gw,
        Method::GET,
        &format!("/v1/approvals?state=pending&task={task}"),
        None,
    )
    .await
    .json();
    let id = pending["approvals"][0]["id"].as_str().unwrap().to_owned();
    let r = admin(
        &gw,
        Method::POST,
        &format!("/v1/approvals/{id}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["grant"]["tool_exact"], true);
    // ...covers that name only, not every name the glob would match,
    let r = raw_call(&gw, "tools", &me, None, "report_payroll", json!({})).await;
    assert!(
        refusal(&r).unwrap().contains("approval_pending"),
        "{}",
        r.text()
    );
    // nor other arguments; the approved call passes once.
    let r = raw_call(&gw, "tools", &me, None, "report_*", json!({"x": 1})).await;
    assert!(refusal(&r).is_some());
    let r = raw_call(&gw, "tools", &me, None, "report_*", json!({})).await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    let r = raw_call(&gw, "tools", &me, None, "report_*", json!({})).await;
    assert!(refusal(&r).is_some(), "one use");
    assert_eq!(up.seen().len(), 1);
}
