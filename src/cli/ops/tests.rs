//! Operator CLI unit tests: command line → admin API request, answers →
//! tables and `key: value` lines, error answers → exit codes.

use clap::Parser as _;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::Error;
use super::client::answer;
use super::render::render;
use super::request::{Call, Shape, segment};
use super::table::{Table, relative, span, utc};
use crate::cli::{Cli, Command};

/// 2026-01-01 00:00:00Z.
const NOW: u64 = 1_767_225_600_000;

fn call(line: &[&str]) -> (Call, Shape) {
    let cli = Cli::try_parse_from(std::iter::once("toolgate").chain(line.iter().copied()))
        .unwrap_or_else(|e| panic!("{line:?} does not parse: {e}"));
    match cli.command {
        Command::Ops(ops) => ops.call(),
        other => panic!("not an operator command: {other:?}"),
    }
}

fn usage_error(line: &[&str]) -> String {
    Cli::try_parse_from(std::iter::once("toolgate").chain(line.iter().copied()))
        .err()
        .unwrap_or_else(|| panic!("{line:?} should be refused"))
        .to_string()
}

#[test]
fn task_commands_map_to_requests() {
    let (c, shape) = call(&[
        "task",
        "list",
        "--agent",
        "spiffe://x/a b",
        "--state",
        "active",
    ]);
    assert_eq!(c.method, Method::GET);
    assert_eq!(
        c.path,
        "/v1/tasks?agent=spiffe%3A%2F%2Fx%2Fa+b&state=active"
    );
    assert_eq!((c.body, shape), (None, Shape::Tasks));

    let (c, shape) = call(&[
        "task",
        "create",
        "--agent",
        "spiffe://example.org/agent/a",
        "--purpose",
        "triage",
        "--label",
        "ticket=T-1",
        "--label",
        "team=ops=x",
        "--ttl",
        "30m",
        "--json",
    ]);
    assert_eq!(
        (c.method, c.path.as_str(), shape),
        (Method::POST, "/v1/tasks", Shape::Task)
    );
    assert_eq!(
        c.body,
        Some(
            json!({"agent": "spiffe://example.org/agent/a", "purpose": "triage",
                    "labels": {"ticket": "T-1", "team": "ops=x"}, "ttl": "30m"})
        )
    );

    let (c, _) = call(&["task", "complete", "task_1", "--reason", "done"]);
    assert_eq!(c.path, "/v1/tasks/task_1/complete");
    assert_eq!(c.body, Some(json!({"reason": "done"})));
    let (c, _) = call(&["task", "cancel", "../x"]);
    assert_eq!(c.path, "/v1/tasks/%2E%2E%2Fx/cancel");
    assert_eq!(c.body, Some(json!({})));
    assert_eq!(call(&["task", "show", "task_1"]).1, Shape::TaskDetail);
}

#[test]
fn grant_commands_map_to_requests() {
    let (c, shape) = call(&[
        "grant",
        "create",
        "--task",
        "task_1",
        "--tool",
        "read_*",
        "--route",
        "github",
        "--constraint",
        r#"{"pointer":"/repo","equals":"a/b"}"#,
        "--ttl",
        "15m",
        "--max-uses",
        "5",
        "--reason",
        "ticket T-1",
    ]);
    assert_eq!((c.path.as_str(), shape), ("/v1/grants", Shape::Grant));
    assert_eq!(
        c.body,
        Some(
            json!({"task_id": "task_1", "tool": "read_*", "route": "github",
                    "constraints": [{"pointer": "/repo", "equals": "a/b"}],
                    "ttl": "15m", "max_uses": 5, "reason": "ticket T-1"})
        )
    );
    let (c, _) = call(&[
        "grant",
        "create",
        "--task",
        "t",
        "--tool",
        "x",
        "--expires-at",
        "1767229200",
        "--reason",
        "r",
    ]);
    assert_eq!(
        c.body,
        Some(json!({"task_id": "t", "tool": "x", "expires_at": 1_767_229_200_u64, "reason": "r"}))
    );

    let (c, _) = call(&["grant", "list", "--task", "task_1", "--live"]);
    assert_eq!(c.path, "/v1/grants?task=task_1&live=true");
    assert_eq!(call(&["grant", "list"]).0.path, "/v1/grants");

    let (c, shape) = call(&["grant", "revoke", "grant_1", "--reason", "oops"]);
    assert_eq!(
        (c.path.as_str(), shape),
        ("/v1/grants/grant_1/revoke", Shape::Grant)
    );
    assert_eq!(c.body, Some(json!({"reason": "oops"})));
    let (c, shape) = call(&["grant", "revoke", "--task", "task_1"]);
    assert_eq!(
        (c.path.as_str(), shape),
        ("/v1/tasks/task_1/grants/revoke", Shape::Revoked)
    );
    let (c, _) = call(&[
        "grant",
        "revoke",
        "--agent",
        "spiffe://x/a",
        "--reason",
        "r",
    ]);
    assert_eq!(c.path, "/v1/agents/revoke-grants");
    assert_eq!(
        c.body,
        Some(json!({"agent": "spiffe://x/a", "reason": "r"}))
    );
}

#[test]
fn approval_commands_map_to_requests() {
    let (c, shape) = call(&["approval", "list", "--state", "pending", "--task", "task_1"]);
    assert_eq!(
        (c.path.as_str(), shape),
        ("/v1/approvals?state=pending&task=task_1", Shape::Approvals)
    );
    let (c, _) = call(&[
        "approval",
        "approve",
        "apr_1",
        "--ttl",
        "5m",
        "--max-uses",
        "1",
    ]);
    assert_eq!(c.path, "/v1/approvals/apr_1/approve");
    assert_eq!(c.body, Some(json!({"ttl": "5m", "max_uses": 1})));
    let (c, _) = call(&["approval", "deny", "apr_1", "--reason", "no"]);
    assert_eq!(
        (c.path.as_str(), c.body),
        ("/v1/approvals/apr_1/deny", Some(json!({"reason": "no"})))
    );
}

#[test]
fn bad_command_lines_are_refused_before_sending() {
    let e = usage_error(&[
        "grant", "create", "--task", "t", "--tool", "x", "--reason", "r",
    ]);
    assert!(e.contains("--ttl") || e.contains("expires"), "{e}");
    let e = usage_error(&[
        "grant",
        "create",
        "--task",
        "t",
        "--tool",
        "x",
        "--reason",
        "r",
        "--ttl",
        "1m",
        "--expires-at",
        "5",
    ]);
    assert!(e.contains("cannot be used with"), "{e}");
    usage_error(&["grant", "revoke"]);
    usage_error(&["grant", "revoke", "g", "--task", "t"]);
    usage_error(&[
        "task",
        "create",
        "--agent",
        "a",
        "--purpose",
        "p",
        "--label",
        "novalue",
    ]);
    usage_error(&["task", "list", "--state", "sleeping"]);
    let e = usage_error(&[
        "grant",
        "create",
        "--task",
        "t",
        "--tool",
        "x",
        "--reason",
        "r",
        "--ttl",
        "1m",
        "--constraint",
        r#"{"pointer":"/a","nope":1}"#,
    ]);
    assert!(e.contains("not a constraint"), "{e}");
}

#[test]
fn ids_cannot_escape_their_path_segment() {
    assert_eq!(segment("grant_0af-~"), "grant_0af-~");
    assert_eq!(segment("a/b?c#d"), "a%2Fb%3Fc%23d");
}

#[test]
fn times_read_as_people_say_them() {
    assert_eq!(relative(NOW + 14 * 60_000 + 5_000, NOW), "in 14m");
    assert_eq!(relative(NOW - 180_000, NOW), "3m ago");
    assert_eq!(relative(NOW + 400, NOW), "now");
    assert_eq!(span(45), "45s");
    assert_eq!(span(2 * 3600 + 5 * 60 + 9), "2h5m");
    assert_eq!(span(3600), "1h");
    assert_eq!(span(3 * 86_400 + 4 * 3600), "3d4h");
    assert_eq!(utc(NOW), "2026-01-01 00:00:00Z");
    assert_eq!(utc(951_827_696_000), "2000-02-29 12:34:56Z");
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
        list,
        "ID      STATE      AGENT  PURPOSE  EXPIRES\ntask_1  completed  a      triage   in 30m\n"
    );
    let one = render(Shape::Task, &json!({"task": task.clone()}), NOW).unwrap();
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
