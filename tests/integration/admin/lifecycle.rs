//! A task's life through the admin API — create, grant, list, show,
//! revoke, complete — and the refusals with their codes.

use http::Method;
use serde_json::{Value, json};

use crate::common::admin::{AdminGateway, OPERATOR_TOKEN, VIEWER_TOKEN, assert_error, role_tokens};

pub(super) const AGENT: &str = "spiffe://example.org/agent/triage";
const CAPS: &str = "[tasks]\nmax_ttl = \"2h\"\nmax_grant_ttl = \"1h\"\n";

pub(super) async fn gateway() -> AdminGateway {
    AdminGateway::start(&role_tokens(), CAPS).await
}

pub(super) async fn create_task(gw: &AdminGateway, agent: &str) -> String {
    let r = gw
        .post(
            "/v1/tasks",
            OPERATOR_TOKEN,
            &json!({"agent": agent, "purpose": "triage issue 42", "ttl": "30m",
                    "labels": {"ticket": "42"}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["task"]["id"].as_str().unwrap().to_owned()
}

async fn issue_grant(gw: &AdminGateway, task: &str) -> Value {
    let r = gw
        .post(
            "/v1/grants",
            OPERATOR_TOKEN,
            &json!({"task_id": task, "tool": "read_*", "ttl": "15m", "max_uses": 3,
                    "constraints": [{"pointer": "/path", "prefix": "/srv/"}],
                    "reason": "needs the logs"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["grant"].clone()
}

pub(super) fn ids(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} list in {v}"))
        .iter()
        .map(|x| x["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_task_is_granted_revoked_and_completed_through_the_api() {
    let gw = gateway().await;
    let task = create_task(&gw, AGENT).await;
    let shown = gw
        .get(&format!("/v1/tasks/{task}"), VIEWER_TOKEN)
        .await
        .json();
    assert_eq!(shown["task"]["state"], "active");
    assert_eq!(shown["task"]["created_by"], "operator");
    assert_eq!(shown["task"]["labels"]["ticket"], "42");

    let grant = issue_grant(&gw, &task).await;
    let grant_id = grant["id"].as_str().unwrap().to_owned();
    assert_eq!(grant["live"], true, "{grant}");
    assert_eq!(grant["state"], "live");
    assert_eq!(grant["granted_by"], "operator");
    assert_eq!(grant["agent"], AGENT, "copied from the task");
    assert_eq!(grant["constraints"][0]["prefix"], "/srv/");

    // Listed and shown, for viewers.
    let listed = gw
        .get(
            &format!("/v1/tasks?agent={AGENT}&state=active"),
            VIEWER_TOKEN,
        )
        .await;
    assert_eq!(ids(&listed.json(), "tasks"), vec![task.clone()]);
    let none = gw.get("/v1/tasks?state=completed", VIEWER_TOKEN).await;
    assert!(ids(&none.json(), "tasks").is_empty());
    let live = format!("/v1/grants?task={task}&live=true");
    assert_eq!(
        ids(&gw.get(&live, VIEWER_TOKEN).await.json(), "grants"),
        vec![grant_id.clone()]
    );
    let detail = gw
        .get(&format!("/v1/tasks/{task}"), VIEWER_TOKEN)
        .await
        .json();
    assert_eq!(ids(&detail, "grants"), vec![grant_id.clone()]);
    assert_eq!(detail["approvals"], json!([]));
    assert_eq!(detail["activity"]["counters"]["total"], 0, "{detail}");
    assert_eq!(detail["activity"]["recent"], json!([]));
    let one = gw
        .get(&format!("/v1/grants/{grant_id}"), VIEWER_TOKEN)
        .await
        .json();
    assert_eq!(one["grant"]["id"], grant_id.as_str());

    // Revoke one grant.
    let r = gw
        .post(
            &format!("/v1/grants/{grant_id}/revoke"),
            OPERATOR_TOKEN,
            &json!({"reason": "done with logs"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let revoked = &r.json()["grant"];
    assert_eq!(revoked["revoked"]["by"], "operator");
    assert_eq!(revoked["revoked"]["why"], "done with logs");
    assert_eq!(
        (revoked["state"].clone(), revoked["live"].clone()),
        (json!("revoked"), json!(false))
    );
    assert!(ids(&gw.get(&live, VIEWER_TOKEN).await.json(), "grants").is_empty());

    // Revoke every grant of the task.
    let (a, b) = (issue_grant(&gw, &task).await, issue_grant(&gw, &task).await);
    let r = gw
        .post(
            &format!("/v1/tasks/{task}/grants/revoke"),
            OPERATOR_TOKEN,
            &json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut got: Vec<String> = serde_json::from_value(r.json()["revoked"].clone()).unwrap();
    got.sort();
    let mut want = vec![
        a["id"].as_str().unwrap().to_owned(),
        b["id"].as_str().unwrap().to_owned(),
    ];
    want.sort();
    assert_eq!(got, want);

    // Complete: the last grant ends with the task.
    let last = issue_grant(&gw, &task).await;
    let r = gw
        .post(
            &format!("/v1/tasks/{task}/complete"),
            OPERATOR_TOKEN,
            &json!({"reason": "fixed"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["task"]["state"], "completed");
    assert_eq!(r.json()["task"]["ended"]["why"], "fixed");
    let g = gw
        .get(
            &format!("/v1/grants/{}", last["id"].as_str().unwrap()),
            VIEWER_TOKEN,
        )
        .await;
    assert_eq!(g.json()["grant"]["live"], false, "{}", g.text());
    // Issue 14: a grant that ended with its task says so; one revoked
    // before the task ended still reads `revoked`.
    assert_eq!(g.json()["grant"]["state"], "task_ended", "{}", g.text());
    let before = gw
        .get(
            &format!("/v1/grants/{}", a["id"].as_str().unwrap()),
            VIEWER_TOKEN,
        )
        .await;
    assert_eq!(
        before.json()["grant"]["state"],
        "revoked",
        "{}",
        before.text()
    );
    let again = gw
        .post(
            &format!("/v1/tasks/{task}/cancel"),
            OPERATOR_TOKEN,
            &json!({}),
        )
        .await;
    assert_error(&again, 409, "task_ended");
    let r = gw
        .post(
            "/v1/grants",
            OPERATOR_TOKEN,
            &json!({"task_id": task, "tool": "x", "ttl": "1m", "reason": "late"}),
        )
        .await;
    assert_error(&r, 409, "task_ended");

    // Every grant of an agent, across its tasks.
    let other = "spiffe://example.org/agent/other";
    let t2 = create_task(&gw, other).await;
    let g2 = issue_grant(&gw, &t2).await;
    let r = gw
        .post(
            "/v1/agents/revoke-grants",
            OPERATOR_TOKEN,
            &json!({"agent": other, "reason": "offboarded"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["revoked"], json!([g2["id"]]));
    let r = gw
        .post(
            "/v1/agents/revoke-grants",
            OPERATOR_TOKEN,
            &json!({"reason": "who?"}),
        )
        .await;
    assert_error(&r, 400, "invalid_json");
    assert!(r.text().contains("agent"), "{}", r.text());

    let r = gw
        .post("/v1/tasks/task_nope/cancel", OPERATOR_TOKEN, &json!({}))
        .await;
    assert_error(&r, 404, "not_found");
}

#[tokio::test]
async fn refusals_name_the_field_and_carry_their_code() {
    let gw = gateway().await;
    let task = create_task(&gw, AGENT).await;
    let grant = |extra: Value| {
        let mut body = json!({"task_id": task, "tool": "read_file", "reason": "r"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (
            "/v1/grants",
            grant(json!({})),
            400,
            "invalid_request",
            "expires_at",
        ),
        (
            "/v1/grants",
            grant(json!({"ttl": "2h"})),
            400,
            "invalid_request",
            "max_grant_ttl",
        ),
        (
            "/v1/grants",
            grant(json!({"ttl": "5m", "constraints": [{"pointer": "/a", "regex": "("}]})),
            400,
            "invalid_request",
            "regex",
        ),
        (
            "/v1/grants",
            grant(json!({"ttl": "5m", "max_uses": 0})),
            400,
            "invalid_request",
            "max_uses",
        ),
        (
            "/v1/grants",
            grant(json!({"ttl": "5m", "colour": "blue"})),
            400,
            "invalid_json",
            "colour",
        ),
        (
            "/v1/grants",
            json!({"task_id": "task_nope", "tool": "x", "ttl": "5m", "reason": "r"}),
            404,
            "not_found",
            "task_nope",
        ),
        (
            "/v1/tasks",
            json!({"agent": AGENT, "purpose": "p", "ttl": "3h"}),
            400,
            "invalid_request",
            "max_ttl",
        ),
        (
            "/v1/tasks",
            json!({"agent": AGENT}),
            400,
            "invalid_json",
            "purpose",
        ),
        (
            "/v1/tasks",
            json!({"agent": AGENT, "purpose": " "}),
            400,
            "invalid_request",
            "purpose",
        ),
        (
            "/v1/approvals/appr_nope/deny",
            json!({}),
            400,
            "invalid_json",
            "reason",
        ),
        (
            "/v1/approvals/appr_nope/deny",
            json!({"reason": ""}),
            400,
            "invalid_request",
            "reason",
        ),
        (
            "/v1/approvals/appr_nope/deny",
            json!({"reason": "no"}),
            404,
            "not_found",
            "appr_nope",
        ),
        (
            "/v1/approvals/appr_nope/approve",
            json!({}),
            404,
            "not_found",
            "appr_nope",
        ),
        (
            "/v1/grants/grant_nope/revoke",
            json!({"reason": "x"}),
            404,
            "not_found",
            "grant_nope",
        ),
    ];
    for (path, body, status, code, names) in cases {
        let r = gw.post(path, OPERATOR_TOKEN, &body).await;
        assert_error(&r, status, code);
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(names), "{path} {body}: {message}");
    }

    // Not JSON, and too much of it.
    let r = crate::common::send(
        Method::POST,
        &gw.url("/v1/tasks"),
        &[("authorization", &format!("Bearer {OPERATOR_TOKEN}"))],
        "{\"agent\": ",
    )
    .await;
    assert_error(&r, 400, "invalid_json");
    let huge = json!({"agent": AGENT, "purpose": "x".repeat(70 * 1024)});
    let r = gw.post("/v1/tasks", OPERATOR_TOKEN, &huge).await;
    assert_error(&r, 413, "body_too_large");

    // Reads: unknown ids and bad queries.
    for path in [
        "/v1/tasks/task_nope",
        "/v1/grants/grant_nope",
        "/v1/approvals/appr_nope",
    ] {
        assert_error(&gw.get(path, VIEWER_TOKEN).await, 404, "not_found");
    }
    for path in [
        "/v1/tasks?state=done",
        "/v1/grants?task_id=x",
        "/v1/grants?live=yes",
        "/v1/approvals?state=open",
    ] {
        assert_error(&gw.get(path, VIEWER_TOKEN).await, 400, "invalid_request");
    }
}
