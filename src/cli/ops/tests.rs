//! Operator CLI unit tests: command line → admin API request (method,
//! path, body), and command lines refused before anything is sent. The
//! output side is in `output`.

mod output;

use clap::Parser as _;
use http::Method;
use serde_json::json;

use super::request::{Call, Shape, segment};
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
    let (c, _) = call(&["task", "cancel", "task_2"]);
    assert_eq!(c.path, "/v1/tasks/task_2/cancel");
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
    assert_eq!(segment(".."), "%2E%2E");
    let e = usage_error(&["task", "cancel", "../x"]);
    assert!(e.contains("\"../x\" is not an id"), "{e}");
}

/// Issue 12: a placeholder id pasted from the docs is named as such, not
/// sent percent-encoded and echoed back as `task_%E2%80%A6`.
#[test]
fn placeholder_ids_are_refused_by_name() {
    for line in [
        &["task", "show", "task_\u{2026}"][..],
        &["task", "complete", "task_\u{2026}"],
        &["grant", "revoke", "grant_\u{2026}"],
        &["grant", "revoke", "--task", "task_..."],
        &["approval", "approve", "appr_\u{2026}"],
        &[
            "grant",
            "create",
            "--task",
            "task_\u{2026}",
            "--tool",
            "x",
            "--ttl",
            "1m",
            "--reason",
            "r",
        ],
    ] {
        let e = usage_error(line);
        assert!(
            e.contains("is a placeholder: use a real id"),
            "{line:?}: {e}"
        );
        assert!(!e.contains('%'), "{e}");
    }
}

/// Issue 12: durations in compound forms and RFC 3339 times on the command
/// line; a bad one is a usage error before anything is sent.
#[test]
fn durations_and_times_are_read_as_people_write_them() {
    let (c, _) = call(&[
        "grant",
        "create",
        "--task",
        "t",
        "--tool",
        "x",
        "--reason",
        "r",
        "--expires-at",
        "2026-01-01T01:00:00+01:00",
        "--not-before",
        "1767225600",
    ]);
    let body = c.body.unwrap();
    assert_eq!(body["expires_at"], 1_767_225_600_u64);
    assert_eq!(body["not_before"], 1_767_225_600_u64);
    let (c, _) = call(&[
        "task",
        "create",
        "--agent",
        "a",
        "--purpose",
        "p",
        "--ttl",
        "1h30m",
    ]);
    assert_eq!(c.body.unwrap()["ttl"], "1h30m");
    let (c, _) = call(&["approval", "approve", "appr_1", "--ttl", "1d"]);
    assert_eq!(c.body.unwrap()["ttl"], "1d");
    let e = usage_error(&[
        "task",
        "create",
        "--agent",
        "a",
        "--purpose",
        "p",
        "--ttl",
        "5x",
    ]);
    assert!(e.contains("\"5x\" is not a duration"), "{e}");
    let e = usage_error(&[
        "grant",
        "create",
        "--task",
        "t",
        "--tool",
        "x",
        "--reason",
        "r",
        "--expires-at",
        "tomorrow",
    ]);
    assert!(e.contains("RFC 3339"), "{e}");
}

/// Issue 12: the connection options have defaults or are optional; help
/// never shows them as required.
#[test]
fn connection_options_are_not_shown_as_required() {
    use clap::CommandFactory as _;
    let mut cli = Cli::command();
    for path in [["task", "list"], ["grant", "create"], ["approval", "deny"]] {
        let sub = cli
            .find_subcommand_mut(path[0])
            .and_then(|c| c.find_subcommand_mut(path[1]))
            .unwrap();
        let usage = sub.render_usage().to_string();
        assert!(!usage.contains("--admin-url"), "{usage}");
        assert!(!usage.contains("--token"), "{usage}");
    }
}
