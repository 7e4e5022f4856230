//! SECURITY.md stays true: every row of its "Fail-closed defaults" table
//! names a real config key whose default is the value the table gives.
//!
//! For each row the same minimal config is loaded twice, without the key
//! and with the key set to the documented value; the two must load the
//! same (their `Debug` forms are compared, so every field counts). A key
//! the config does not know is refused by `deny_unknown_fields`, and a
//! wrong value makes the two differ.

use std::path::{Path, PathBuf};

use toolgate::config::{Config, ListenerRole};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `(key, TOML value)` of each row of the table.
fn documented_defaults() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("SECURITY.md")).unwrap();
    let section = text
        .split("\n## ")
        .find(|s| s.starts_with("Fail-closed defaults"))
        .expect("SECURITY.md has a \"Fail-closed defaults\" section");
    let rows: Vec<(String, String)> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let unquote = |cell: &str| {
                cell.strip_prefix('`')
                    .and_then(|c| c.strip_suffix('`'))
                    .unwrap_or_else(|| panic!("a backquoted cell in {line:?}"))
                    .to_owned()
            };
            (unquote(cells[1]), unquote(cells[2]))
        })
        .collect();
    assert!(rows.len() >= 20, "the table has {} rows", rows.len());
    rows
}

/// A minimal config: one issuer, one route, a decision log. `extra` goes
/// where `key` belongs (dotted keys at the top for the single tables, in
/// the block for `issuers.*` and `routes.*`).
fn config_with(key: Option<(&str, &str)>) -> String {
    let (mut top, mut issuer, mut route) = (String::new(), String::new(), String::new());
    if let Some((key, value)) = key {
        match key.split_once('.') {
            Some(("issuers", rest)) => issuer = format!("{rest} = {value}\n"),
            Some(("routes", rest)) => route = format!("{rest} = {value}\n"),
            _ => top = format!("{key} = {value}\n"),
        }
    }
    format!(
        "{top}audit.dir = \"audit\"\n\n\
         [[issuers]]\nname = \"dev\"\nissuer = \"toolgate-dev\"\nmode = \"spiffe\"\n\
         trust_domains = [\"toolgate.dev\"]\njwks_file = \"jwks.json\"\n{issuer}\n\
         [[routes]]\nname = \"tools\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:1/mcp\"\n{route}\
         [routes.auth]\nissuers = [\"dev\"]\n"
    )
}

fn load(text: &str) -> Config {
    let base: &Path = &repo().join("config/dev");
    toolgate::config::load_str(text, "security-test.toml", base)
        .unwrap_or_else(|e| panic!("{e}\n--- config:\n{text}"))
}

/// What a config does, for comparing two: its `Debug` form, with the
/// connection caps as the listeners apply them (an unset cap takes its
/// listener's default) and the policy budget as requests get it.
fn effect(config: &Config) -> String {
    let mut applied = config.clone();
    for (c, role) in [
        (&mut applied.server.connections, ListenerRole::Agents),
        (&mut applied.admin.connections, ListenerRole::Admin),
    ] {
        c.max_connections = Some(c.max_connections(role));
        c.max_connections_per_address = Some(c.max_connections_per_address(role));
    }
    // Unset, the budget is ten times the deadline.
    applied.policy_limits.request_budget = Some(applied.policy_limits.request_budget());
    format!("{applied:?}")
}

#[test]
fn security_md_fail_closed_defaults_are_the_real_defaults() {
    let bare = effect(&load(&config_with(None)));
    let mut wrong = Vec::new();
    for (key, value) in documented_defaults() {
        let explicit = effect(&load(&config_with(Some((&key, &value)))));
        if explicit != bare {
            wrong.push(format!("{key} = {value}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "SECURITY.md names these as defaults, but writing them changes the config: {wrong:?}"
    );
}

/// The check above can fail: a value that is not the default is caught,
/// in the top tables, the route block and the connection caps alike.
#[test]
fn a_wrong_default_in_the_table_would_be_caught() {
    let bare = effect(&load(&config_with(None)));
    for (key, value) in [
        ("routes.default_decision", "\"allow\""),
        ("limits.max_request_body", "1048577"),
        ("issuers.leeway", "\"31s\""),
        ("server.connections.max_connections", "9999"),
        ("admin.connections.max_connections_per_address", "129"),
        ("audit.on_failure", "\"serve\""),
    ] {
        let explicit = effect(&load(&config_with(Some((key, value)))));
        assert_ne!(explicit, bare, "{key} = {value} went unnoticed");
    }
}
