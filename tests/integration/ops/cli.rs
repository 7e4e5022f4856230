//! `toolgate task|grant` through the binary against a running server:
//! tables, `key: value` output, `--json`, and errors with their exit codes.

use crate::common::process::{CliRun, OPERATOR_TOKEN, ServeDir, VIEWER_TOKEN, toolgate};

use super::AGENT;

/// Runs the CLI against `url` with the operator token from the environment.
async fn ops(url: &str, args: &[&str]) -> CliRun {
    toolgate(
        args,
        &[
            ("TOOLGATE_ADMIN_URL", url),
            ("TOOLGATE_ADMIN_TOKEN", OPERATOR_TOKEN),
        ],
    )
    .await
}

/// The value of a `key: value` line.
fn value<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{text}"))
}

/// The table line that starts with `id`.
fn row<'a>(table: &'a str, id: &str) -> &'a str {
    table
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("no row for {id} in:\n{table}"))
}

#[tokio::test]
async fn operator_drives_tasks_and_grants_through_the_cli() {
    let dir = ServeDir::new();
    let server = dir.start();
    let url = server.admin_url();

    let out = ops(
        &url,
        &[
            "task",
            "create",
            "--agent",
            AGENT,
            "--purpose",
            "triage T-1",
            "--label",
            "ticket=T-1",
            "--ttl",
            "30m",
        ],
    )
    .await;
    let created = out.ok();
    let task = value(created, "id").to_owned();
    assert!(task.starts_with("task_"), "{created}");
    assert_eq!(value(created, "state"), "active");
    assert_eq!(value(created, "labels"), "ticket=T-1");
    assert!(value(created, "expires").ends_with("(in 29m)"), "{created}");

    // --json prints the API's answer as-is.
    let other = ops(
        &url,
        &[
            "task",
            "--json",
            "create",
            "--agent",
            "spiffe://toolgate.dev/agent/other",
            "--purpose",
            "other",
        ],
    )
    .await
    .json();
    let other_id = other["task"]["id"].as_str().expect("task id").to_owned();

    let list = ops(&url, &["task", "list", "--agent", AGENT]).await;
    let table = list.ok();
    assert!(table.starts_with("ID "), "{table}");
    let header = table.lines().next().unwrap();
    for column in ["STATE", "AGENT", "PURPOSE", "EXPIRES"] {
        assert!(header.contains(column), "{header}");
    }
    let line = row(table, &task);
    assert!(
        line.contains("  active  ") && line.contains(AGENT) && line.contains("in 29m"),
        "{line}"
    );
    assert!(!table.contains(&other_id), "filtered by agent:\n{table}");

    // Two grants: one by table output, one by --json with a constraint.
    let out = ops(
        &url,
        &[
            "grant",
            "create",
            "--task",
            &task,
            "--tool",
            "read_*",
            "--ttl",
            "15m",
            "--max-uses",
            "5",
            "--reason",
            "ticket T-1",
        ],
    )
    .await;
    let g1_text = out.ok();
    let g1 = value(g1_text, "id").to_owned();
    assert_eq!(value(g1_text, "state"), "live");
    assert_eq!(value(g1_text, "uses"), "0/5");
    assert_eq!(value(g1_text, "task"), task);
    assert!(value(g1_text, "expires").ends_with("(in 14m)"), "{g1_text}");
    let g2 = ops(
        &url,
        &[
            "grant",
            "create",
            "--json",
            "--task",
            &task,
            "--tool",
            "write_file",
            "--route",
            "tools",
            "--constraint",
            r#"{"pointer":"/path","prefix":"/tmp/"}"#,
            "--ttl",
            "10m",
            "--reason",
            "scratch files",
        ],
    )
    .await
    .json();
    assert_eq!(g2["grant"]["constraints"][0]["prefix"], "/tmp/", "{g2}");
    let g2 = g2["grant"]["id"].as_str().expect("grant id").to_owned();

    let table = ops(&url, &["grant", "list", "--task", &task]).await;
    let table = table.ok();
    let header = table.lines().next().unwrap();
    for column in ["ID", "STATE", "AGENT", "TOOL", "EXPIRES", "USES"] {
        assert!(header.contains(column), "{header}");
    }
    let line = row(table, &g1);
    assert!(
        line.contains(" live ") && line.contains("read_*") && line.ends_with("0/5"),
        "{line}"
    );
    let line = row(table, &g2);
    assert!(
        line.contains("write_file") && line.contains(" tools ") && line.contains("in 9m"),
        "{line}"
    );

    // Revoke one; the live listing drops it, the full listing says why.
    let revoked = ops(&url, &["grant", "revoke", &g1, "--reason", "not needed"]).await;
    let revoked = revoked.ok();
    assert_eq!(value(revoked, "state"), "revoked");
    assert!(
        value(revoked, "revoked").contains("by ops: not needed"),
        "{revoked}"
    );
    let live = ops(&url, &["grant", "list", "--task", &task, "--live"]).await;
    assert!(
        !live.ok().contains(&g1) && live.ok().contains(&g2),
        "{}",
        live.stdout
    );

    let shown = ops(&url, &["task", "show", &task]).await;
    let shown = shown.ok();
    assert_eq!(value(shown, "purpose"), "triage T-1");
    assert!(
        row(shown, &g1).contains("revoked") && row(shown, &g2).contains("live"),
        "{shown}"
    );

    // Completing the task ends every grant in it.
    let done = ops(&url, &["task", "complete", &task, "--reason", "fixed"]).await;
    let done = done.ok();
    assert_eq!(value(done, "state"), "completed");
    assert!(value(done, "ended").contains("by ops: fixed"), "{done}");
    let live = ops(&url, &["grant", "list", "--task", &task, "--live"]).await;
    assert_eq!(live.ok(), "no grants\n");
    let json = ops(&url, &["task", "show", &task, "--json"]).await.json();
    assert_eq!(json["task"]["state"], "completed", "{json}");
    let again = ops(&url, &["task", "complete", &task]).await;
    assert_eq!(again.code(), Some(2), "{again:?}");
    assert!(
        again.stderr.starts_with("error: task_ended: "),
        "{}",
        again.stderr
    );

    drop(server);
}

#[tokio::test]
async fn cli_errors_name_the_code_and_set_the_exit_status() {
    let dir = ServeDir::new();
    let server = dir.start();
    let url = server.admin_url();

    // A wrong token: 401, exit 2, nothing on stdout, the token never echoed.
    let wrong = "tg-wrong-token-7a7a7a";
    let run = toolgate(
        &["task", "list"],
        &[
            ("TOOLGATE_ADMIN_URL", &url),
            ("TOOLGATE_ADMIN_TOKEN", wrong),
        ],
    )
    .await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(
        run.stderr.starts_with("error: invalid_token: ")
            || run.stderr.starts_with("error: unauthenticated: "),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(wrong), "{}", run.stderr);

    // No token at all: the error says how to give one.
    let run = toolgate(&["grant", "list", "--admin-url", &url], &[]).await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.starts_with("error: unauthenticated: ")
            && run.stderr.contains("export TOOLGATE_ADMIN_TOKEN=<token>")
            && run.stderr.contains("--token-file FILE"),
        "{}",
        run.stderr
    );

    // A viewer may read but not write; the token comes from a file.
    let token_file = dir.path().join("viewer.token");
    std::fs::write(&token_file, format!("{VIEWER_TOKEN}\n")).unwrap();
    let file = token_file.to_str().unwrap();
    let run = toolgate(
        &["task", "list", "--admin-url", &url, "--token-file", file],
        &[],
    )
    .await;
    assert_eq!(run.ok(), "no tasks\n");
    let run = toolgate(
        &[
            "task",
            "create",
            "--agent",
            AGENT,
            "--purpose",
            "p",
            "--admin-url",
            &url,
            "--token-file",
            file,
        ],
        &[],
    )
    .await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.starts_with("error: forbidden: "),
        "{}",
        run.stderr
    );

    // Unknown id: 404 → exit 2; a refused request body: 400 → exit 2.
    let run = ops(&url, &["grant", "show", "grant_nope"]).await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.starts_with("error: not_found: "),
        "{}",
        run.stderr
    );
    let run = ops(
        &url,
        &[
            "task",
            "create",
            "--agent",
            AGENT,
            "--purpose",
            "p",
            "--ttl",
            "forever",
        ],
    )
    .await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.contains("\"forever\" is not a duration"),
        "{}",
        run.stderr
    );
    let run = ops(
        &url,
        &[
            "task",
            "create",
            "--agent",
            AGENT,
            "--purpose",
            "p",
            "--ttl",
            "48h",
        ],
    )
    .await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert_eq!(
        run.stderr,
        "error: invalid_request: ttl: 2d is longer than 1d, the longest a task may live \
         (tasks.max_ttl)\n"
    );

    // Usage errors are caught before anything is sent.
    let run = ops(
        &url,
        &[
            "grant", "create", "--task", "t", "--tool", "x", "--reason", "r",
        ],
    )
    .await;
    assert_eq!(run.code(), Some(2), "{run:?}");

    // Nobody listening: a connection error, exit 1.
    drop(server);
    let run = ops(&url, &["task", "list"]).await;
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: cannot reach the admin API at "),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains(OPERATOR_TOKEN), "{}", run.stderr);
}

/// Issue 12: `--ttl 48h` on a grant names the field, the limit as a
/// duration and the config key that sets it; compound durations and RFC
/// 3339 expiries go through.
#[tokio::test]
async fn grant_lifetimes_are_written_and_refused_in_words() {
    let dir = ServeDir::new();
    let server = dir.start();
    let url = server.admin_url();
    let task = ops(
        &url,
        &[
            "task",
            "--json",
            "create",
            "--agent",
            AGENT,
            "--purpose",
            "p",
            "--ttl",
            "1h30m",
        ],
    )
    .await
    .json()["task"]["id"]
        .as_str()
        .expect("task id")
        .to_owned();
    let grant = |extra: &'static [&'static str]| {
        let mut args = vec![
            "grant", "create", "--task", &task, "--tool", "x", "--reason", "r",
        ];
        args.extend_from_slice(extra);
        let url = url.clone();
        let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ops(&url, &args).await
        }
    };
    let run = grant(&["--ttl", "48h"]).await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert_eq!(
        run.stderr,
        "error: invalid_request: ttl: 2d is longer than 1d, the longest a grant may live \
         (tasks.max_grant_ttl)\n"
    );
    assert!(!run.stderr.contains("86400"), "{}", run.stderr);
    let run = grant(&["--ttl", "1h30m"]).await;
    assert!(
        value(run.ok(), "expires").ends_with("(in 1h29m)"),
        "{run:?}"
    );
    let run = grant(&["--expires-at", "2999-01-01T00:00:00Z"]).await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.starts_with(
            "error: invalid_request: expires_at: the grant would end at 2999-01-01T00:00:00Z, \
             more than 1d from now"
        ),
        "{}",
        run.stderr
    );
}
