//! Record stage: the compact owned records the request path hands the
//! writer thread. Building one copies a few strings and bumps a few
//! reference counts; no formatting, no serialization, no hashing.

use std::time::Duration;

use serde_json::Value;

use crate::decide::{Evidence, Phase, Reason, Verdict};
use crate::identify::Identity;

/// One thing to write.
#[derive(Debug)]
pub enum Entry {
    Decision(Box<DecisionEntry>),
    Event(EventEntry),
    Admin(AdminEntry),
    /// Seal the file and stop; the sender is told when done.
    Stop(std::sync::mpsc::Sender<()>),
}

/// One decided call (or grant request), as the request path knew it.
#[derive(Debug)]
pub struct DecisionEntry {
    pub at_ms: u64,
    pub phase: Phase,
    pub route: String,
    pub method: String,
    pub tool: String,
    /// Unmasked: the writer masks them before anything else sees them.
    pub arguments: Value,
    pub identity: Identity,
    pub task: Option<String>,
    pub verdict: Verdict,
    pub reason: Reason,
    pub message: String,
    pub evidence: std::sync::Arc<[Evidence]>,
    pub grant: Option<String>,
    pub approval: Option<String>,
    pub trace_id: String,
    pub identify: Duration,
    pub decide: Duration,
    /// From the start of the request until the record was handed over.
    pub total: Duration,
    pub upstream: Option<Upstream>,
}

/// What the upstream answered an allowed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Its response status, after this long (to the response headers).
    Status(u16, Duration),
    /// No answer: the problem code (`upstream_timeout`, …).
    Failed(&'static str, Duration),
}

/// A task, grant or approval change (`tasks::events`).
#[derive(Debug)]
pub struct EventEntry {
    pub at_ms: u64,
    /// `task_created`, `grant_issued`, … (`tasks::events::Event::as_str`).
    pub event: &'static str,
    /// The task, grant or approval changed; empty for a sweep's count.
    pub id: String,
    pub task: String,
    pub actor: String,
    /// For sweeps: how many expired at once (no ids known).
    pub count: Option<u64>,
}

/// A change requested through the admin API (or refused there).
#[derive(Debug)]
pub struct AdminEntry {
    pub at_ms: u64,
    pub actor: String,
    pub role: &'static str,
    pub action: String,
    pub target: Option<String>,
    /// `ok` or the error code.
    pub outcome: String,
    pub remote: Option<String>,
}
