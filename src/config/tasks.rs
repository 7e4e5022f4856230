//! Start-up stage: the task store and the approval flow — where tasks and
//! grants are kept, how long they may live, and whom to tell about pending
//! approvals.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{SecretRef, duration};

/// `[tasks]`: tasks, grants and their store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tasks {
    /// The embedded on-disk store (a redb file). Without it tasks, grants
    /// and approvals live in memory only and are lost on restart (logged as
    /// a warning at start-up).
    pub store: Option<PathBuf>,
    /// TTL of a task created without one.
    #[serde(default = "Tasks::default_ttl", with = "duration")]
    pub default_ttl: Duration,
    /// Longest TTL a task may be given.
    #[serde(default = "Tasks::max_ttl", with = "duration")]
    pub max_ttl: Duration,
    /// Longest a grant may live (its expiry is mandatory).
    #[serde(default = "Tasks::max_ttl", with = "duration")]
    pub max_grant_ttl: Duration,
    /// How many recent calls policy sees per task.
    #[serde(default = "Tasks::default_recent")]
    pub recent_calls: usize,
    #[serde(default = "Tasks::default_max_tasks")]
    pub max_tasks: usize,
    #[serde(default = "Tasks::default_max_grants")]
    pub max_grants_per_task: usize,
    /// How long ended tasks, grants and approvals stay listable.
    #[serde(default = "Tasks::max_ttl", with = "duration")]
    pub retention: Duration,
    /// How often expiry is swept and counters are flushed to disk.
    #[serde(default = "Tasks::default_sweep", with = "duration")]
    pub sweep_interval: Duration,
}

impl Tasks {
    fn default_ttl() -> Duration {
        Duration::from_secs(3600)
    }
    fn max_ttl() -> Duration {
        Duration::from_secs(24 * 3600)
    }
    fn default_recent() -> usize {
        20
    }
    fn default_max_tasks() -> usize {
        100_000
    }
    fn default_max_grants() -> usize {
        1_000
    }
    fn default_sweep() -> Duration {
        Duration::from_secs(1)
    }
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            store: None,
            default_ttl: Self::default_ttl(),
            max_ttl: Self::max_ttl(),
            max_grant_ttl: Self::max_ttl(),
            recent_calls: Self::default_recent(),
            max_tasks: Self::default_max_tasks(),
            max_grants_per_task: Self::default_max_grants(),
            retention: Self::max_ttl(),
            sweep_interval: Self::default_sweep(),
        }
    }
}

/// `[approvals]`: calls parked for a human.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    /// A pending approval nobody answers within this expires.
    #[serde(default = "Approvals::default_pending_ttl", with = "duration")]
    pub pending_ttl: Duration,
    /// TTL of the grant an approval creates (scoped to the one call).
    #[serde(default = "Approvals::default_grant_ttl", with = "duration")]
    pub grant_ttl: Duration,
    #[serde(default = "Approvals::default_max_pending")]
    pub max_pending: usize,
    /// Pending approvals one task may have at once: one agent cannot use
    /// up everyone's `max_pending`.
    #[serde(default = "Approvals::default_max_pending_per_task")]
    pub max_pending_per_task: usize,
    /// Notified (POST, JSON) of every new pending approval.
    pub webhook: Option<Webhook>,
    /// Where a 2026-07-28 client sends its human to act on a parked call
    /// (a URL-mode elicitation); `{approval}` becomes the approval id.
    /// Default: the console inbox on the admin listener.
    pub elicitation_url: Option<String>,
    /// Signs the `requestState` of an approval asked for through the
    /// protocol (at least 32 bytes). Default: a key made at start, so such
    /// states do not outlive the process (nor reach another replica).
    pub state_key: Option<super::SecretRef>,
}

impl Approvals {
    fn default_pending_ttl() -> Duration {
        Duration::from_secs(3600)
    }
    fn default_grant_ttl() -> Duration {
        Duration::from_secs(300)
    }
    fn default_max_pending() -> usize {
        10_000
    }
    fn default_max_pending_per_task() -> usize {
        100
    }
}

impl Default for Approvals {
    fn default() -> Self {
        Self {
            pending_ttl: Self::default_pending_ttl(),
            grant_ttl: Self::default_grant_ttl(),
            max_pending: Self::default_max_pending(),
            max_pending_per_task: Self::default_max_pending_per_task(),
            webhook: None,
            elicitation_url: None,
            state_key: None,
        }
    }
}

/// Where pending approvals are announced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// http(s) URL the gateway POSTs `{"event": "approval.pending", ...}` to.
    pub url: String,
    /// Optional HMAC-SHA256 key: the body's signature is sent as
    /// `X-Toolgate-Signature: sha256=<hex>`.
    pub secret: Option<SecretRef>,
    #[serde(default = "Webhook::default_timeout", with = "duration")]
    pub timeout: Duration,
    /// PEM CA certificates to trust for an https URL instead of the system roots.
    pub ca_file: Option<PathBuf>,
}

impl Webhook {
    fn default_timeout() -> Duration {
        Duration::from_secs(5)
    }
}
