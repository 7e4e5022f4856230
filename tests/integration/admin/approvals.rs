//! Calls parked for a human, answered through the admin API: listed,
//! shown with their arguments, approved (creating a one-call grant) and
//! denied with a reason.

use serde_json::{Value, json};
use toolgate::store::model::{argument_digest, new_id, now_ms};
use toolgate::store::{Approval, ApprovalKind, ApprovalState};

use super::lifecycle::{AGENT, create_task, gateway, ids};
use crate::common::admin::{AdminGateway, OPERATOR_TOKEN, VIEWER_TOKEN, assert_error};

/// Parks a call for approval as the gateway's call path would.
fn park(gw: &AdminGateway, task: &str, arguments: Value) -> String {
    let now = now_ms();
    let approval = Approval {
        id: new_id("appr"),
        kind: ApprovalKind::Call,
        task_id: task.to_owned(),
        agent: AGENT.to_owned(),
        on_behalf_of: None,
        route: "tools".to_owned(),
        tool: "delete_file".to_owned(),
        argument_digest: argument_digest(&arguments),
        arguments,
        why: "deletes need a human".to_owned(),
        requested: None,
        created_at_ms: now,
        expires_at_ms: now + 600_000,
        state: ApprovalState::Pending,
        decided: None,
        grant_id: None,
    };
    gw.gateway.tasks().park_request(approval).unwrap().id
}

#[tokio::test]
async fn parked_calls_are_approved_and_denied_through_the_api() {
    let gw = gateway().await;
    let task = create_task(&gw, AGENT).await;
    let first = park(&gw, &task, json!({"path": "/srv/a.log"}));
    let second = park(&gw, &task, json!({"path": "/srv/b.log"}));

    let pending = gw
        .get(
            &format!("/v1/approvals?state=pending&task={task}"),
            VIEWER_TOKEN,
        )
        .await;
    assert_eq!(
        ids(&pending.json(), "approvals").len(),
        2,
        "{}",
        pending.text()
    );
    let shown = gw
        .get(&format!("/v1/approvals/{first}"), VIEWER_TOKEN)
        .await
        .json();
    assert_eq!(shown["approval"]["arguments"]["path"], "/srv/a.log");

    let r = gw
        .post(
            &format!("/v1/approvals/{first}/approve"),
            VIEWER_TOKEN,
            &json!({}),
        )
        .await;
    assert_error(&r, 403, "forbidden");
    let r = gw
        .post(
            &format!("/v1/approvals/{first}/approve"),
            OPERATOR_TOKEN,
            &json!({"ttl": "2h"}),
        )
        .await;
    assert_error(&r, 400, "invalid_request");
    let r = gw
        .post(
            &format!("/v1/approvals/{first}/approve"),
            OPERATOR_TOKEN,
            &json!({"ttl": "2m", "reason": "ok once"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["approval"]["state"], "approved");
    assert_eq!(v["approval"]["decided"]["by"], "operator");
    assert_eq!(v["approval"]["grant_id"], v["grant"]["id"]);
    assert_eq!(v["grant"]["tool"], "delete_file");
    assert_eq!(v["grant"]["max_uses"], 1, "one exact call");
    assert_eq!(v["grant"]["live"], true);
    let again = gw
        .post(
            &format!("/v1/approvals/{first}/approve"),
            OPERATOR_TOKEN,
            &json!({}),
        )
        .await;
    assert_error(&again, 409, "not_pending");

    let r = gw
        .post(
            &format!("/v1/approvals/{second}/deny"),
            OPERATOR_TOKEN,
            &json!({"reason": "not today"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["approval"]["state"], "denied");
    assert_eq!(r.json()["approval"]["decided"]["why"], "not today");
    let denied = gw.get("/v1/approvals?state=denied", VIEWER_TOKEN).await;
    assert_eq!(ids(&denied.json(), "approvals"), vec![second]);
}
