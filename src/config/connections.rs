//! Start-up stage: the limits of one listener's connections — how long a
//! client may take to send a request, how long it may idle, how many
//! connections it may hold and how large a request head may be.

use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// `[server.connections]` and `[admin.connections]`. Every field has a safe
/// default; the two connection caps default per listener (see the getters).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connections {
    /// The whole request head (and, on a new connection, the TLS handshake)
    /// must arrive within this time of its first byte — or of connecting.
    #[serde(default = "Connections::default_header_read", with = "duration")]
    pub header_read_timeout: Duration,
    /// A request body must arrive whole within this time of the gateway
    /// starting to read it (`Expect: 100-continue` included). Larger ⇒ 408.
    #[serde(default = "Connections::default_body_read", with = "duration")]
    pub body_read_timeout: Duration,
    /// A connection with no request in flight is closed after this long.
    #[serde(default = "Connections::default_idle", with = "duration")]
    pub idle_timeout: Duration,
    /// Open connections the listener holds at most (default: 10000 on the
    /// main listener, 256 on the admin listener; the main listener's cap is
    /// lowered at start-up to fit the process's open-file limit).
    pub max_connections: Option<usize>,
    /// Open connections one source address may hold (default: 512 on the
    /// main listener, 128 on the admin listener).
    pub max_connections_per_address: Option<usize>,
    /// Concurrent streams one HTTP/2 connection may carry.
    #[serde(default = "Connections::default_streams")]
    pub max_concurrent_streams: u32,
    /// Header fields one request may carry. More ⇒ 431.
    #[serde(default = "Connections::default_headers")]
    pub max_headers: usize,
    /// Total size of one request's header fields (names, values and their
    /// separators), in bytes. Larger ⇒ 431. Bounds what reaches an upstream.
    #[serde(default = "Connections::default_header_bytes")]
    pub max_header_bytes: usize,
}

/// Which listener a [`Connections`] table configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    Agents,
    Admin,
}

impl Connections {
    fn default_header_read() -> Duration {
        Duration::from_secs(10)
    }
    fn default_body_read() -> Duration {
        Duration::from_secs(30)
    }
    fn default_idle() -> Duration {
        Duration::from_secs(60)
    }
    fn default_streams() -> u32 {
        100
    }
    fn default_headers() -> usize {
        100
    }
    fn default_header_bytes() -> usize {
        64 * 1024
    }

    /// The connection cap of `role`'s listener, as configured or by default.
    pub fn max_connections(&self, role: ListenerRole) -> usize {
        self.max_connections.unwrap_or(match role {
            ListenerRole::Agents => 10_000,
            ListenerRole::Admin => 256,
        })
    }

    /// The per-source-address cap of `role`'s listener.
    pub fn max_connections_per_address(&self, role: ListenerRole) -> usize {
        self.max_connections_per_address.unwrap_or(match role {
            ListenerRole::Agents => 512,
            ListenerRole::Admin => 128,
        })
    }

    /// Reports values that would switch a protection off or make the
    /// listener unusable; `at` is the table's path, e.g. `server.connections`.
    pub(super) fn check(&self, at: &str, report: &mut dyn FnMut(&str, String)) {
        let mut positive = |field: &str, ok: bool, what: &str| {
            if !ok {
                report(&format!("{at}.{field}"), what.to_owned());
            }
        };
        for (field, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            positive(field, !value.is_zero(), "must be greater than zero");
        }
        positive(
            "max_connections",
            self.max_connections != Some(0),
            "must be at least 1",
        );
        positive(
            "max_connections_per_address",
            self.max_connections_per_address != Some(0),
            "must be at least 1",
        );
        positive(
            "max_concurrent_streams",
            self.max_concurrent_streams > 0,
            "must be at least 1",
        );
        positive(
            "max_headers",
            (1..=MAX_HEADERS).contains(&self.max_headers),
            "must be between 1 and 10000",
        );
        positive(
            "max_header_bytes",
            (MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&self.max_header_bytes),
            "must be between 1024 (1 KiB) and 1048576 (1 MiB)",
        );
    }
}

const MAX_HEADERS: usize = 10_000;
const MIN_HEADER_BYTES: usize = 1024;
const MAX_HEADER_BYTES: usize = 1024 * 1024;

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::default_header_read(),
            body_read_timeout: Self::default_body_read(),
            idle_timeout: Self::default_idle(),
            max_connections: None,
            max_connections_per_address: None,
            max_concurrent_streams: Self::default_streams(),
            max_headers: Self::default_headers(),
            max_header_bytes: Self::default_header_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe_and_per_listener() {
        let c = Connections::default();
        assert_eq!(c.max_connections(ListenerRole::Agents), 10_000);
        assert_eq!(c.max_connections(ListenerRole::Admin), 256);
        assert_eq!(c.max_connections_per_address(ListenerRole::Agents), 512);
        assert_eq!(c.max_connections_per_address(ListenerRole::Admin), 128);
        let mut errors = Vec::new();
        c.check("server.connections", &mut |at, msg| {
            errors.push(format!("{at}: {msg}"));
        });
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn values_that_switch_a_protection_off_are_reported() {
        let c: Connections = toml::from_str(
            "header_read_timeout = \"0s\"\nmax_connections = 0\nmax_headers = 0\nmax_header_bytes = 10",
        )
        .unwrap();
        let mut errors = Vec::new();
        c.check("admin.connections", &mut |at, _| errors.push(at.to_owned()));
        assert_eq!(
            errors,
            [
                "admin.connections.header_read_timeout",
                "admin.connections.max_connections",
                "admin.connections.max_headers",
                "admin.connections.max_header_bytes",
            ]
        );
    }
}
