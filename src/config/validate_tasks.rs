//! Start-up stage: checks of the task store, approval and admin-auth
//! settings that serde cannot do.

use std::collections::HashSet;
use std::time::Duration;

use http::Uri;

use super::Config;
use super::validate::valid_name;

/// Longest a parked call may be held open.
const MAX_APPROVAL_WAIT: Duration = Duration::from_secs(600);

pub(super) fn check(config: &Config, routes: &[usize], report: &mut dyn FnMut(&str, String)) {
    let tasks = &config.tasks;
    for (field, value) in [
        ("tasks.default_ttl", tasks.default_ttl),
        ("tasks.max_ttl", tasks.max_ttl),
        ("tasks.max_grant_ttl", tasks.max_grant_ttl),
        ("tasks.sweep_interval", tasks.sweep_interval),
        ("approvals.pending_ttl", config.approvals.pending_ttl),
        ("approvals.grant_ttl", config.approvals.grant_ttl),
    ] {
        if value.is_zero() {
            report(field, "must be greater than zero".into());
        }
    }
    if tasks.default_ttl > tasks.max_ttl {
        report("tasks.default_ttl", "is longer than tasks.max_ttl".into());
    }
    if config.approvals.grant_ttl > tasks.max_grant_ttl {
        report(
            "approvals.grant_ttl",
            "is longer than tasks.max_grant_ttl".into(),
        );
    }
    for (field, value, max) in [
        ("tasks.recent_calls", tasks.recent_calls, 1_000),
        ("tasks.max_tasks", tasks.max_tasks, 10_000_000),
        (
            "tasks.max_grants_per_task",
            tasks.max_grants_per_task,
            100_000,
        ),
        (
            "approvals.max_pending",
            config.approvals.max_pending,
            1_000_000,
        ),
    ] {
        if value == 0 || value > max {
            report(field, format!("must be between 1 and {max}"));
        }
    }
    if let Some(url) = &config.approvals.elicitation_url {
        match url.replace("{approval}", "a").parse::<Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
            _ => report(
                "approvals.elicitation_url",
                format!("{url:?} is not an http(s) URL"),
            ),
        }
    }
    if let Some(key) = &config.approvals.state_key {
        match key.resolve() {
            Ok(k) if k.expose().len() >= 32 => {}
            Ok(_) => report("approvals.state_key", "must be at least 32 bytes".into()),
            Err(e) => report("approvals.state_key", e),
        }
    }
    if let Some(hook) = &config.approvals.webhook {
        match hook.url.parse::<Uri>() {
            Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {}
            _ => report(
                "approvals.webhook.url",
                format!("{:?} is not an http(s) URL", hook.url),
            ),
        }
        if let Some(secret) = &hook.secret
            && let Err(e) = secret.resolve()
        {
            report("approvals.webhook.secret", e);
        }
        if hook.timeout.is_zero() {
            report(
                "approvals.webhook.timeout",
                "must be greater than zero".into(),
            );
        }
    }
    for (route, &i) in config.routes.iter().zip(routes) {
        if route.path == "/_toolgate" || route.path.starts_with("/_toolgate/") {
            report(
                &format!("routes[{i}].path"),
                "/_toolgate is reserved for the gateway's own endpoints".into(),
            );
        }
        if route.approval_wait > MAX_APPROVAL_WAIT {
            report(
                &format!("routes[{i}].approval_wait"),
                format!("at most {}s", MAX_APPROVAL_WAIT.as_secs()),
            );
        }
    }
    check_admin(config, report);
}

fn check_admin(config: &Config, report: &mut dyn FnMut(&str, String)) {
    let admin = &config.admin;
    let mut names = HashSet::new();
    let mut hashes = HashSet::new();
    for (i, token) in admin.tokens.iter().enumerate() {
        let at = |field: &str| format!("admin.tokens[{i}].{field}");
        if !valid_name(&token.name) {
            report(
                &at("name"),
                format!(
                    "{:?} is not a valid name (letters, digits, '-', '_', '.')",
                    token.name
                ),
            );
        }
        if !names.insert(token.name.as_str()) {
            report(&at("name"), "duplicate admin token name".into());
        }
        let hex = token.sha256.len() == 64
            && token
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex {
            report(
                &at("sha256"),
                "must be the token's SHA-256 as 64 lowercase hex digits (toolgate admin-token prints it)".into(),
            );
        } else if !hashes.insert(token.sha256.as_str()) {
            report(&at("sha256"), "the same token is listed twice".into());
        }
    }
    let client_ca = admin.tls.as_ref().and_then(|t| t.client_ca_file.as_ref());
    if !admin.clients.is_empty() && client_ca.is_none() {
        report(
            "admin.clients",
            "client certificates need admin.tls.client_ca_file".into(),
        );
    }
    if let Some(tls) = &admin.tls
        && tls.require_client_cert
        && tls.client_ca_file.is_none()
    {
        report(
            "admin.tls.require_client_cert",
            "needs admin.tls.client_ca_file".into(),
        );
    }
    // Loaded as the listener would: a bad file is found by `toolgate check`.
    if let Some(tls) = &admin.tls
        && admin.enabled
        && let Err(e) = crate::listener::tls::admin_server_config(tls)
    {
        report("admin.tls", e.to_string());
    }
    for (i, client) in admin.clients.iter().enumerate() {
        if client.san.is_empty() {
            report(
                &format!("admin.clients[{i}].san"),
                "must not be empty".into(),
            );
        }
    }
}
