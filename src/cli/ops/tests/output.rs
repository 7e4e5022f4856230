//! Operator CLI unit tests, output: times, aligned tables, records as
//! `key: value` lines, error answers → codes and exit statuses.

use http::StatusCode;
use serde_json::{Value, json};

use super::NOW;
use crate::cli::ops::Error;
use crate::cli::ops::client::answer;
use crate::cli::ops::render::render;
use crate::cli::ops::request::Shape;
use crate::cli::ops::table::{Table, relative, span, when};

#[test]
fn times_read_as_people_say_them() {
    assert_eq!(relative(NOW + 14 * 60_000 + 5_000, NOW), "in 14m");
    assert_eq!(relative(NOW - 180_000, NOW), "3m ago");
    assert_eq!(relative(NOW + 400, NOW), "now");
    assert_eq!(span(45), "45s");
    assert_eq!(span(2 * 3600 + 5 * 60 + 9), "2h5m");
    assert_eq!(span(3600), "1h");
    assert_eq!(span(3 * 86_400 + 4 * 3600), "3d4h");
    assert_eq!(when(NOW + 60_000, NOW), "2026-01-01T00:01:00Z (in 1m)");
}

#[test]
fn tables_align_columns_and_escape_control_characters() {
    let mut t = Table::new(&["ID", "TOOL", "USES"]);
    t.row(vec!["g_1".into(), "read_file".into(), "2/5".into()]);
    t.row(vec!["g_22".into(), "x\u{1b}[31m".into(), "0/∞".into()]);
    assert_eq!(
        t.render(),
        "ID    TOOL         USES\n\
         g_1   read_file    2/5\n\
         g_22  x\\u{1b}[31m  0/∞\n"
    );
}

fn grant_json(id: &str, uses: u64, max: Option<u64>, expires: u64) -> Value {
    json!({"id": id, "task_id": "task_1", "agent": "spiffe://example.org/agent/a",
           "tool": "read_*", "route": null, "constraints": [], "expires_at_ms": expires,
           "max_uses": max, "uses": uses, "reason": "r", "granted_by": "ops",
           "created_at_ms": NOW - 60_000, "source": {"kind": "operator"}})
}

#[test]
fn grant_lists_show_state_expiry_and_uses() {
    let mut revoked = grant_json("grant_b", 0, None, NOW + 60_000);
    revoked["revoked"] = json!({"by": "ops", "at_ms": NOW - 1000});
    let answer = json!({"grants": [
        grant_json("grant_a", 2, Some(5), NOW + 14 * 60_000 + 30_000),
        revoked,
        grant_json("grant_c", 0, None, NOW - 180_000),
    ]});
    let text = render(Shape::Grants, &answer, NOW).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "ID       STATE    AGENT                         TOOL    ROUTE  EXPIRES  USES"
    );
    assert_eq!(
        lines[1],
        "grant_a  live     spiffe://example.org/agent/a  read_*  *      in 14m   2/5"
    );
    assert!(lines[2].starts_with("grant_b  revoked "), "{text}");
    assert!(
        !lines[2].contains(" in "),
        "a revoked grant does not expire: {text}"
    );
    assert!(
        lines[3].contains("expired") && lines[3].contains("3m ago"),
        "{text}"
    );
    assert_eq!(
        render(Shape::Grants, &json!({"grants": []}), NOW).unwrap(),
        "no grants\n"
    );

    let one = render(
        Shape::Grant,
        &json!({"grant": grant_json("grant_a", 5, Some(5), NOW + 1000)}),
        NOW,
    )
    .unwrap();
    assert!(
        one.starts_with("id:          grant_a\nstate:       used_up\n"),
        "{one}"
    );
    assert!(one.contains("\nuses:        5/5\n"), "{one}");
}

#[test]
fn task_answers_render_as_tables_and_fields() {
    let task = json!({"id": "task_1", "agent": "a", "purpose": "triage", "labels": {"t": "1"},
        "created_at_ms": NOW - 60_000, "expires_at_ms": NOW + 1_800_000, "created_by": "ops",
        "state": "completed", "ended": {"by": "ops", "at_ms": NOW - 2000, "why": "done"}});
    let list = render(Shape::Tasks, &json!({"tasks": [task.clone()]}), NOW).unwrap();
    assert_eq!(
        list, "ID      STATE      AGENT  PURPOSE  EXPIRES\ntask_1  completed  a      triage   -\n",
        "a completed task does not expire"
    );
    let one = render(Shape::Task, &json!({"task": task.clone()}), NOW).unwrap();
    assert!(!one.contains("expires"), "{one}");
    assert!(one.contains("\nlabels:      t=1\n"), "{one}");
    assert!(
        one.contains("\nended:       2s ago by ops: done\n"),
        "{one}"
    );
    let detail = json!({"task": task, "grants": [], "approvals": [],
        "activity": {"counters": {"total": 3, "denied": 1, "per_tool": {"echo": 3}}, "recent": []}});
    let text = render(Shape::TaskDetail, &detail, NOW).unwrap();
    assert!(text.contains("3 calls, 1 denied; echo 3"), "{text}");
    assert!(text.contains("grants:\nno grants\n") && text.ends_with("approvals:\nno approvals\n"));
    let bad = render(Shape::Tasks, &json!({"tasks": [{"id": 1}]}), NOW).unwrap_err();
    assert!(matches!(bad, Error::BadAnswer(_)), "{bad}");
}

#[test]
fn error_answers_become_codes_and_exit_statuses() {
    let body = br#"{"error":{"code":"invalid_token","message":"unknown admin token"}}"#;
    let e = answer(StatusCode::UNAUTHORIZED, body).unwrap_err();
    assert_eq!(e.to_string(), "invalid_token: unknown admin token");
    assert_eq!(e.exit_code(), 2);
    let e = answer(StatusCode::SERVICE_UNAVAILABLE, b"").unwrap_err();
    assert_eq!(
        e.to_string(),
        "service_unavailable: HTTP 503 Service Unavailable"
    );
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        answer(StatusCode::OK, br#"{"a":1}"#).unwrap(),
        json!({"a": 1})
    );
}

#[test]
fn approvals_render_with_arguments_and_the_grant_approving_made() {
    let approval = json!({"id": "appr_1", "kind": "call", "task_id": "task_1",
        "agent": "spiffe://example.org/agent/a", "route": "tools", "tool": "delete_file",
        "arguments": {"path": "/tmp/x\u{7}"}, "argument_digest": "ab12", "why": "deletes need a human",
        "created_at_ms": NOW - 60_000, "expires_at_ms": NOW + 3_600_000, "state": "approved",
        "decided": {"by": "ops", "at_ms": NOW - 5_000, "why": "fine"}, "grant_id": "grant_9"});
    let list = render(
        Shape::Approvals,
        &json!({"approvals": [approval.clone()]}),
        NOW,
    )
    .unwrap();
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0],
        "ID      STATE     KIND  AGENT                         TOOL         ROUTE  EXPIRES"
    );
    assert_eq!(
        lines[1],
        "appr_1  approved  call  spiffe://example.org/agent/a  delete_file  tools  in 1h"
    );

    let mut grant = grant_json("grant_9", 0, Some(1), NOW + 300_000);
    grant["source"] = json!({"kind": "approval", "approval_id": "appr_1"});
    grant["argument_digest"] = json!("ab12");
    let answer = json!({"approval": approval, "grant": grant});
    let text = render(Shape::Approval, &answer, NOW).unwrap();
    assert!(text.starts_with("id:         appr_1\n"), "{text}");
    // The bell inside the arguments is escaped JSON, never a raw control byte.
    assert!(
        text.contains("\narguments:  {\"path\":\"/tmp/x\\u0007\"}\n"),
        "{text}"
    );
    assert!(
        text.contains("\ndecided:    5s ago by ops: fine\n"),
        "{text}"
    );
    assert!(
        text.contains("\ngrant created:\nid:          grant_9\n"),
        "{text}"
    );
    assert!(text.contains("\nsource:      approval appr_1\n"), "{text}");
    assert!(text.contains("\nfor call:    ab12\n"), "{text}");
    assert!(!text.chars().any(|c| c.is_control() && c != '\n'), "{text}");
}
