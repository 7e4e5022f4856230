//! Record stage for tasks: every task, grant and approval change becomes a
//! line on the `toolgate::grants` log target (with its actor, never
//! arguments or tokens), a sample of `toolgate_task_events_total`, and —
//! with `[audit]` — a line of the decision log (the writer adds the task's
//! purpose and labels and the grant's or approval's facts), so grants
//! given, used up, revoked and left waiting are telemetry and evidence.

use std::sync::OnceLock;

use prometheus::{IntCounterVec, Opts, Registry};

use crate::audit::{AuditLog, Entry, EventEntry};

/// What happened to a task, grant or approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    TaskCreated,
    TaskCompleted,
    TaskCancelled,
    TaskExpired,
    GrantIssued,
    GrantUsed,
    GrantExpired,
    GrantRevoked,
    ApprovalParked,
    ApprovalApproved,
    ApprovalDenied,
    ApprovalExpired,
    WebhookDelivered,
    WebhookFailed,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TaskCreated => "task_created",
            Self::TaskCompleted => "task_completed",
            Self::TaskCancelled => "task_cancelled",
            Self::TaskExpired => "task_expired",
            Self::GrantIssued => "grant_issued",
            Self::GrantUsed => "grant_used",
            Self::GrantExpired => "grant_expired",
            Self::GrantRevoked => "grant_revoked",
            Self::ApprovalParked => "approval_parked",
            Self::ApprovalApproved => "approval_approved",
            Self::ApprovalDenied => "approval_denied",
            Self::ApprovalExpired => "approval_expired",
            Self::WebhookDelivered => "webhook_delivered",
            Self::WebhookFailed => "webhook_failed",
        }
    }

    /// Whether a count of it (no ids: a sweep) is a decision-log line too.
    /// A grant's use is on the decision line of the call that used it.
    fn logged_as_count(self) -> bool {
        match self {
            Self::TaskExpired | Self::ApprovalExpired => true,
            Self::TaskCreated
            | Self::TaskCompleted
            | Self::TaskCancelled
            | Self::GrantIssued
            | Self::GrantUsed
            | Self::GrantExpired
            | Self::GrantRevoked
            | Self::ApprovalParked
            | Self::ApprovalApproved
            | Self::ApprovalDenied
            | Self::WebhookDelivered
            | Self::WebhookFailed => false,
        }
    }
}

/// Counts and logs task events.
#[derive(Debug, Clone)]
pub struct Events {
    counter: IntCounterVec,
    audit: std::sync::Arc<OnceLock<AuditLog>>,
}

impl Events {
    /// Registers `toolgate_task_events_total` in `registry` (the gateway's).
    pub fn new(registry: &Registry) -> Self {
        let counter = IntCounterVec::new(
            Opts::new(
                "toolgate_task_events_total",
                "Task, grant and approval changes, by event.",
            ),
            &["event"],
        )
        .expect("static metric definition is valid");
        // Registering twice (a second gateway on the same registry) keeps
        // the first registration; counting still works on this handle.
        let _ = registry.register(Box::new(counter.clone()));
        Self {
            counter,
            audit: std::sync::Arc::default(),
        }
    }

    /// Writes every event to `audit` from now on (set once, at start-up).
    pub fn attach(&self, audit: AuditLog) {
        let _ = self.audit.set(audit);
    }

    /// Counts `n` events that need no log line of their own (sweeps).
    pub fn count(&self, event: Event, n: usize) {
        self.counter
            .with_label_values(&[event.as_str()])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        if n > 0
            && event.logged_as_count()
            && let Some(audit) = self.audit.get()
        {
            audit.send(Entry::Event(Box::new(EventEntry {
                at_ms: crate::audit::now_ms(),
                event: event.as_str(),
                id: String::new(),
                task: String::new(),
                actor: String::new(),
                count: Some(u64::try_from(n).unwrap_or(u64::MAX)),
            })));
        }
    }

    /// Counts and logs one event about `id` (in `task`), done by `actor`.
    pub fn record(&self, event: Event, id: &str, task: &str, actor: &str) {
        self.counter.with_label_values(&[event.as_str()]).inc();
        tracing::info!(target: "toolgate::grants", event = event.as_str(), id, task, actor);
        if let Some(audit) = self.audit.get() {
            audit.send(Entry::Event(Box::new(EventEntry {
                at_ms: crate::audit::now_ms(),
                event: event.as_str(),
                id: id.to_owned(),
                task: task.to_owned(),
                actor: actor.to_owned(),
                count: None,
            })));
        }
    }
}
