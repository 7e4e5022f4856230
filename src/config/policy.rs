//! Start-up stage: the policy modules the decide stage runs and the limits
//! of their sandbox.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::duration;

/// Sandbox limits shared by every module.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyLimits {
    /// Longest a module may run for one decision; past it the call is
    /// denied with `policy_error`.
    #[serde(default = "PolicyLimits::default_deadline", with = "duration")]
    pub deadline: Duration,
    /// Largest linear memory a module instance may grow to, in bytes.
    #[serde(default = "PolicyLimits::default_memory")]
    pub max_memory: usize,
    /// Where compiled modules are cached, keyed by content hash and engine
    /// version, each entry signed (SECURITY.md, "Compiled-module cache").
    /// Default: `$XDG_CACHE_HOME/toolgate/modules` (`~/.cache/…`), never
    /// a shared temp folder; must be this user's alone (0700).
    pub cache_dir: Option<PathBuf>,
    /// Reload when a module file or its vectors change on disk.
    #[serde(default = "default_true")]
    pub watch: bool,
    /// Decisions that may wait for one slow module (each slow module has
    /// its own queue, served in turn); one more is denied at once with
    /// `policy_busy`.
    #[serde(default = "PolicyLimits::default_max_queued")]
    pub max_queued: usize,
    /// Policy time one request (a batch, and any list it returns) may use;
    /// its decisions past it are denied with `policy_budget`. Default: ten
    /// times `deadline` (see [`PolicyLimits::request_budget`]).
    #[serde(default, with = "duration::option")]
    pub request_budget: Option<Duration>,
    /// Threads that run slow modules (default: half the cores, at least
    /// one). Read at start-up.
    #[serde(default)]
    pub workers: Option<usize>,
}

impl PolicyLimits {
    fn default_deadline() -> Duration {
        Duration::from_millis(10)
    }
    fn default_memory() -> usize {
        64 * 1024 * 1024
    }
    fn default_max_queued() -> usize {
        64
    }

    /// The policy time one request may use: as configured, or ten times
    /// the deadline (ten modules run to their deadline).
    pub fn request_budget(&self) -> Duration {
        self.request_budget
            .unwrap_or(self.deadline.saturating_mul(10))
    }
}

impl Default for PolicyLimits {
    fn default() -> Self {
        Self {
            deadline: Self::default_deadline(),
            max_memory: Self::default_memory(),
            cache_dir: None,
            watch: true,
            max_queued: Self::default_max_queued(),
            request_budget: None,
            workers: None,
        }
    }
}

/// One policy module and where it applies.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Unique name, shown in decision logs.
    pub name: String,
    /// The `.wasm` file: a toolgate ABI module or an `opa build -t wasm` module.
    pub module: PathBuf,
    /// The module's test vectors (see policy-modules/ABI.md), run before it
    /// is activated; a module failing any is refused.
    pub vectors: Option<PathBuf>,
    /// Route names it applies to; empty: every route.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Tool-name globs it applies to; empty: every tool.
    #[serde(default)]
    pub tools: Vec<String>,
    /// `call` and/or `list`; empty: both. `grant` (agents' own grant
    /// requests, which an `allow` approves at once) applies only to modules
    /// that list it explicitly.
    #[serde(default)]
    pub phases: Vec<PolicyPhase>,
    /// Configuration handed to the module once per instance (any TOML value).
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// OPA modules: the entrypoint to evaluate; default the first one.
    pub entrypoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyPhase {
    Call,
    List,
    Grant,
}

fn default_true() -> bool {
    true
}
