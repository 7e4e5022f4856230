//! The operator console in a real browser: headless Chromium (WebDriver)
//! against the real gateway, with calls parked by the real Python MCP
//! client through the real `jit-grants` module. Screenshots of the inbox
//! and a task page go to `target/console-screenshots/`.

mod approvals;
mod browser;
mod grants;
mod guard;
mod policy;
mod reports;

use crate::common::admin::token_table;
use crate::tasks::{OPERATOR_TOKEN, config};

/// A viewer's admin token in these tests.
pub(crate) const VIEWER_TOKEN: &str = "tgadm_console-test-viewer-token";
/// An admin's admin token in these tests.
pub(crate) const ADMIN_TOKEN: &str = "tgadm_console-test-admin-token";

/// `tasks::config` (one MCP route guarded by `jit-grants`, the operator
/// token `ops`) plus a viewer token `watcher` and an admin token `root`.
pub(crate) fn console_config(upstream: &str, missing: &str, route_extra: &str) -> String {
    config(
        "tools",
        upstream,
        missing,
        route_extra,
        &[
            token_table("watcher", "viewer", VIEWER_TOKEN),
            token_table("root", "admin", ADMIN_TOKEN),
        ]
        .concat(),
    )
}

/// The operator's token (named `ops`, role operator).
pub(crate) const OPERATOR: &str = OPERATOR_TOKEN;
