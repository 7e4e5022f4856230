//! Record stage for tasks: every task, grant and approval change becomes a
//! line on the `toolgate::grants` log target (with its actor, never
//! arguments or tokens) and a sample of `toolgate_task_events_total`, so
//! grants given, used up, revoked and left waiting are telemetry too.

use prometheus::{IntCounterVec, Opts, Registry};

/// What happened to a task, grant or approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    TaskCreated,
    TaskCompleted,
    TaskCancelled,
    TaskExpired,
    GrantIssued,
    GrantUsed,
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
            Self::GrantRevoked => "grant_revoked",
            Self::ApprovalParked => "approval_parked",
            Self::ApprovalApproved => "approval_approved",
            Self::ApprovalDenied => "approval_denied",
            Self::ApprovalExpired => "approval_expired",
            Self::WebhookDelivered => "webhook_delivered",
            Self::WebhookFailed => "webhook_failed",
        }
    }
}

/// Counts and logs task events.
#[derive(Debug, Clone)]
pub struct Events {
    counter: IntCounterVec,
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
        Self { counter }
    }

    /// Counts `n` events that need no log line of their own (sweeps).
    pub fn count(&self, event: Event, n: usize) {
        self.counter
            .with_label_values(&[event.as_str()])
            .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
    }

    /// Counts and logs one event about `id` (in `task`), done by `actor`.
    pub fn record(&self, event: Event, id: &str, task: &str, actor: &str) {
        self.count(event, 1);
        tracing::info!(target: "toolgate::grants", event = event.as_str(), id, task, actor);
    }
}
