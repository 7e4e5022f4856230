//! Start-up stage: the checks serde cannot do — unique names, well-formed
//! prefixes and URLs, readable secrets and certificates. Each problem is
//! reported through `report(path, message)`; none stops the others.

use http::Uri;
use http::header::HeaderName;

use super::{Config, Route};
use crate::forward::headers::is_hop_by_hop;

/// Where each parsed table stands in the document: a table that failed to
/// parse is skipped, and later errors must still name the right one.
pub(super) struct Positions {
    pub(super) routes: Vec<usize>,
    pub(super) issuers: Vec<usize>,
    pub(super) policies: Vec<usize>,
}

pub(super) fn check(config: &Config, positions: &Positions, report: &mut dyn FnMut(&str, String)) {
    if let Some(url) = &config.server.public_url {
        match url.parse::<Uri>() {
            Ok(u)
                if matches!(u.scheme_str(), Some("http" | "https"))
                    && u.authority().is_some()
                    && u.query().is_none() => {}
            _ => report(
                "server.public_url",
                format!("{url:?} is not an http(s) base URL"),
            ),
        }
    }
    super::validate_identity::check(config, &positions.issuers, &positions.routes, report);
    super::validate_policy::check(config, &positions.policies, report);
    super::validate_tasks::check(config, &positions.routes, report);
    if let Some(audit) = &config.audit {
        audit.check(report);
    }
    if let Some(tls) = &config.server.tls
        && let Err(e) = crate::listener::tls::server_config(tls)
    {
        report("server.tls", e.to_string());
    }
    config
        .server
        .connections
        .check("server.connections", report);
    config.admin.connections.check("admin.connections", report);
    if config.server.drain_timeout.is_zero() {
        report("server.drain_timeout", "must be greater than zero".into());
    }
    if config.admin.enabled
        && config.admin.bind == config.server.bind
        && config.admin.bind.port() != 0
    {
        report(
            "admin.bind",
            format!(
                "{} is already the main listener's address",
                config.admin.bind
            ),
        );
    }
    if config.limits.max_request_body == 0 {
        report(
            "limits.max_request_body",
            "must be greater than zero".into(),
        );
    }
    if config.limits.max_inspected_response == 0 {
        report(
            "limits.max_inspected_response",
            "must be greater than zero".into(),
        );
    }
    // Duplicate names and paths are found on the document (`load`).
    for (route, &i) in config.routes.iter().zip(&positions.routes) {
        let at = |field: &str| format!("routes[{i}].{field}");
        check_route(route, &mut |field, msg| report(&at(field), msg));
    }
}

fn check_route(route: &Route, report: &mut dyn FnMut(&str, String)) {
    if !valid_name(&route.name) {
        report(
            "name",
            format!(
                "{:?} is not a valid route name (1-64 of a-z, 0-9, '-', '_')",
                route.name
            ),
        );
    }
    if let Err(msg) = check_prefix(&route.path) {
        report("path", msg);
    }
    match route.upstream.parse::<Uri>() {
        Ok(uri) => check_upstream(route, &uri, report),
        Err(e) => report("upstream", format!("not a valid URL: {e}")),
    }
    if let Some(auth) = &route.upstream_auth {
        match auth.header.parse::<HeaderName>() {
            Ok(name) if is_hop_by_hop(&name) || name == http::header::HOST => report(
                "upstream_auth.header",
                format!("{name} cannot carry an upstream credential"),
            ),
            Ok(_) => {}
            Err(_) => report(
                "upstream_auth.header",
                format!("{:?} is not a valid header name", auth.header),
            ),
        }
        if let Err(msg) = auth.value.resolve() {
            report("upstream_auth.value", msg);
        }
    }
    let t = &route.timeouts;
    for (field, d) in [
        ("timeouts.connect", t.connect),
        ("timeouts.first_byte", t.first_byte),
        ("timeouts.stream_idle", t.stream_idle),
        ("timeouts.pool_idle", t.pool_idle),
    ] {
        if d.is_zero() {
            report(field, "must be greater than zero".into());
        }
    }
}

fn check_prefix(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} must start with '/'"));
    }
    if path.len() > 1 && path.ends_with('/') {
        return Err(format!("{path:?} must not end with '/'"));
    }
    if path.contains(['?', '#', '%', ' ']) || path.contains("//") {
        return Err(format!(
            "{path:?} must be a plain path (no query, fragment, escapes, spaces or '//')"
        ));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(format!("{path:?} must not contain '.' or '..' segments"));
    }
    if path == "/.well-known" || path.starts_with("/.well-known/") {
        return Err("paths under /.well-known are reserved for the gateway".into());
    }
    Ok(())
}

fn check_upstream(route: &Route, uri: &Uri, report: &mut dyn FnMut(&str, String)) {
    let https = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        Some(other) => {
            report("upstream", format!("scheme {other:?} is not http or https"));
            return;
        }
        None => {
            report(
                "upstream",
                "needs a scheme and host, e.g. http://127.0.0.1:9000/mcp".into(),
            );
            return;
        }
    };
    match uri.authority() {
        None => report("upstream", "has no host".into()),
        Some(a) if a.as_str().contains('@') => {
            report(
                "upstream",
                "must not carry credentials; use upstream_auth".into(),
            );
        }
        Some(_) => {}
    }
    if uri.query().is_some() {
        report("upstream", "must not have a query string".into());
    }
    if let Some(ca) = &route.upstream_ca_file {
        if !https {
            report(
                "upstream_ca_file",
                "only applies to an https upstream".into(),
            );
        } else if let Err(e) = crate::forward::client::load_roots(ca) {
            report("upstream_ca_file", e.to_string());
        }
    }
}

/// Names of routes, issuers and policies: they appear in metric labels and
/// log fields, so they stay short and plain.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
