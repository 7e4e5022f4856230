//! Understand stage: the JSON-RPC methods MCP defines for a client to send,
//! in any protocol version toolgate speaks. The gateway handles these as
//! MCP says (a `tools/call` is decided, a `tools/list` answer filtered, the
//! rest forwarded); any other method — a lookalike such as `TOOLS/CALL`, a
//! vendor extension, a method of a later version — is decided by policy as
//! a method call before it may reach the upstream.

/// Requests a client sends (2024-11-05 … 2026-07-28).
pub const REQUESTS: [&str; 20] = [
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "prompts/list",
    "prompts/get",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "completion/complete",
    "logging/setLevel",
    "tasks/get",
    "tasks/list",
    "tasks/result",
    "tasks/cancel",
    "tasks/update",
    "server/discover",
    "subscriptions/listen",
];

/// Notifications a client sends.
pub const NOTIFICATIONS: [&str; 5] = [
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "notifications/tasks/status",
];

/// True for a method MCP defines for clients, spelled exactly so.
pub fn is_known(method: &str) -> bool {
    REQUESTS.contains(&method) || NOTIFICATIONS.contains(&method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_spellings_are_known() {
        for known in [
            "tools/call",
            "tools/list",
            "ping",
            "notifications/initialized",
        ] {
            assert!(is_known(known), "{known}");
        }
        for unknown in [
            "TOOLS/CALL",
            "Tools/Call",
            "tools/call ",
            " tools/call",
            "tools/call\0",
            "tools//call",
            "tools/call/",
            "vendor/run",
            "",
            "notifications/tools/list_changed",
            "sampling/createMessage",
        ] {
            assert!(!is_known(unknown), "{unknown:?}");
        }
    }
}
