//! The metrics the issue asks for, each scraped from `/metrics` after
//! causing it: decisions by tool, latency by stage, module evaluations and
//! faults, tasks, grants and their churn (expiry included), approvals and
//! the age of the oldest, decision-log writes.

use std::time::Duration;

use http::Method;
use serde_json::json;

use super::{busy_gateway, scrape};
use crate::common::{TestGateway, metric, metric_in, metric_reaching};
use crate::policy::tools_upstream;
use crate::tasks::{AGENT, admin, config, create_task, issue_grant, raw_call, refusal, token};

/// The metrics the issue names, each read after causing it: decisions by
/// tool, the four latency histograms, module evaluations and faults, the
/// loaded-module info, tasks, live grants, grant churn, decision-log writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_metric_the_issue_names_counts_what_caused_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (gw, _up, grant) = busy_gateway(tmp.path()).await;
    let text = scrape(&gw).await;
    let value = |m: &str| metric_in(&text, m);
    let allowed =
        "toolgate_decisions_total{route=\"tools\",phase=\"call\",tool=\"echo\",decision=\"allow\"}";
    assert_eq!(value(allowed), 1.0, "{text}");
    // The list taught the gateway the upstream's names: its own decisions carry them.
    let listed =
        "toolgate_decisions_total{route=\"tools\",phase=\"list\",tool=\"echo\",decision=\"allow\"}";
    assert_eq!(value(listed), 1.0, "{text}");
    assert_eq!(
        value("toolgate_decisions_total{phase=\"list\",tool=\"other\"}"),
        0.0,
        "{text}"
    );
    let parked = "toolgate_decisions_total{route=\"tools\",phase=\"call\",tool=\"search\",decision=\"needs_approval\"}";
    assert_eq!(value(parked), 1.0, "{text}");
    let faulted = "toolgate_decisions_total{route=\"broken\",tool=\"echo\",decision=\"deny\",reason=\"policy_error\"}";
    assert_eq!(value(faulted), 1.0, "{text}");
    for stage in ["identify", "decide", "request_duration"] {
        let count = format!("toolgate_{stage}_seconds_count{{route=\"tools\"}}");
        assert!(value(&count) >= 2.0, "{count}: {text}");
    }
    // Forwarded twice (the list and the allowed call); the parked one refused.
    let upstream = "toolgate_upstream_first_byte_seconds_count{route=\"tools\"}";
    assert_eq!(value(upstream), 2.0, "{text}");
    assert_eq!(
        value("toolgate_requests_total{route=\"tools\",outcome=\"forwarded\"}"),
        2.0
    );
    assert_eq!(
        value("toolgate_requests_total{route=\"tools\",outcome=\"refused\"}"),
        1.0
    );
    // jit allowed echo twice: in the list and the call.
    assert_eq!(
        value("toolgate_policy_evaluations_total{policy=\"jit\",result=\"allow\"}"),
        2.0
    );
    assert_eq!(
        value("toolgate_policy_faults_total{policy=\"trap\",kind=\"trap\"}"),
        1.0
    );
    assert_eq!(value("toolgate_policy_module_info{policy=\"jit\"}"), 1.0);
    assert_eq!(value("toolgate_tasks_active"), 1.0);
    assert_eq!(value("toolgate_grants_live"), 1.0);
    assert_eq!(value("toolgate_approvals_pending"), 1.0);
    assert_eq!(
        value("toolgate_task_events_total{event=\"grant_issued\"}"),
        1.0
    );
    assert_eq!(
        value("toolgate_task_events_total{event=\"grant_used\"}"),
        1.0
    );
    assert!(text.contains("toolgate_audit_queue_depth "), "{text}");
    assert_eq!(value("toolgate_audit_dropped_total"), 0.0);

    let r = admin(
        &gw,
        Method::POST,
        &format!("/v1/grants/{grant}/revoke"),
        Some(json!({"reason": "done"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        metric(&gw, "toolgate_task_events_total{event=\"grant_revoked\"}").await,
        1.0
    );
    assert_eq!(metric(&gw, "toolgate_grants_live").await, 0.0);
    // Every decision and event reached the log: none dropped.
    let written = "toolgate_audit_records_total{kind=\"decision\"}";
    assert_eq!(metric_reaching(&gw, written, 3.0).await, 3.0);
    assert_eq!(metric(&gw, "toolgate_audit_healthy").await, 1.0);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_approval_has_an_age_and_a_grant_running_out_is_counted() {
    let up = tools_upstream().await;
    let gw = TestGateway::start(&config(
        "tools",
        &up.url("/mcp"),
        "needs_approval",
        "",
        "[tasks]\nsweep_interval = \"100ms\"\n",
    ))
    .await;
    let age = "toolgate_approvals_oldest_pending_age_seconds";
    assert_eq!(metric(&gw, age).await, 0.0, "nothing waits yet");
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "tools", None);
    let r = raw_call(&gw, "tools", &bearer, Some(&task), "delete", json!({})).await;
    assert!(refusal(&r).is_some(), "parked: {}", r.text());

    // A grant that lives three seconds (long enough that it is still live
    // for the call and the metric read below on a loaded machine), and one
    // used up before then: not "expired".
    let spent = issue_grant(&gw, &task, "echo", Some(1)).await;
    let r = admin(
        &gw,
        Method::POST,
        "/v1/grants",
        Some(json!({"task_id": task, "tool": "search", "ttl": "3s", "reason": "short"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = raw_call(
        &gw,
        "tools",
        &bearer,
        Some(&task),
        "echo",
        json!({"text": "x"}),
    )
    .await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    assert!(!spent.is_empty());

    let expired = "toolgate_task_events_total{event=\"grant_expired\"}";
    assert_eq!(metric(&gw, expired).await, 0.0);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    // Exactly the three-second grant: the used-up one and the 5-minute one are not.
    assert_eq!(metric_reaching(&gw, expired, 1.0).await, 1.0);
    let waited = metric(&gw, age).await;
    assert!(
        (1.5..60.0).contains(&waited),
        "oldest approval waited {waited}s"
    );
    assert_eq!(metric(&gw, "toolgate_approvals_pending").await, 1.0);

    // Answered: nothing waits, the age is back to 0.
    let pending = admin(&gw, Method::GET, "/v1/approvals?state=pending", None).await;
    let id = pending.json()["approvals"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin(
        &gw,
        Method::POST,
        &format!("/v1/approvals/{id}/deny"),
        Some(json!({"reason": "no"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(metric(&gw, age).await, 0.0);
    // Still exactly one expiry: the sweep does not count a grant twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metric(&gw, expired).await, 1.0);
    gw.stop().await;
}
