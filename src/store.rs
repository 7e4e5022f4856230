//! Task-context stage: where tasks, grants, approvals and per-task activity
//! live. The hot path reads an in-memory [`MemoryStore`] (dashmap) through
//! the narrow [`Store`] API, which returns owned values; every change an
//! operator is told about is first written to a [`Durable`] journal (the
//! embedded on-disk store) — a write that fails is refused, never half-done.
//! (Ending a task is done once the task's own record is written: its grants
//! and approvals die with it, and the sweep finishes recording that.)
//!
//! A shared backend for several replicas (Redis) implements [`Store`]
//! itself: the API is the seam, not the dashmap.

pub mod disk;
pub mod memory;
pub mod model;

use std::fmt;

pub use memory::MemoryStore;
pub use model::{
    Activity, Approval, ApprovalKind, ApprovalState, Constraint, ConstraintTest, Counters, Ending,
    Grant, GrantSource, Millis, RecentCall, RequestedGrant, Task, TaskState,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no {kind} {id:?}")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id:?} already exists")]
    Exists { kind: &'static str, id: String },
    #[error("task {id:?} is {state}")]
    TaskEnded { id: String, state: &'static str },
    #[error("approval {id:?} is {state}, not pending")]
    NotPending { id: String, state: &'static str },
    #[error("grant {id:?} is no longer usable")]
    GrantUnusable { id: String },
    #[error("limit reached: {0}")]
    Limit(String),
    #[error("durable store: {0}")]
    Durable(#[from] disk::Error),
}

impl Error {
    /// Machine-readable code for API answers.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "not_found",
            Self::Exists { .. } => "conflict",
            Self::TaskEnded { .. } => "task_ended",
            Self::NotPending { .. } => "not_pending",
            Self::GrantUnusable { .. } => "grant_unusable",
            Self::Limit(_) => "limit_reached",
            Self::Durable(_) => "store_unavailable",
        }
    }
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub agent: Option<String>,
    pub state: Option<TaskState>,
}

/// Which grants to list.
#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub task_id: Option<String>,
    pub agent: Option<String>,
    /// Only grants usable now (live, in an active task).
    pub live_only: bool,
}

/// Which approvals to list.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub state: Option<ApprovalState>,
    pub task_id: Option<String>,
    pub agent: Option<String>,
}

/// Whose grants a bulk revocation ends.
#[derive(Debug, Clone)]
pub enum RevokeScope {
    Task(String),
    /// Every grant of this agent subject, across its tasks.
    Agent(String),
}

/// What a sweep changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Swept {
    pub tasks_expired: usize,
    pub approvals_expired: usize,
    pub grants_dropped: usize,
    pub purged: usize,
}

/// The store API: owned values out, atomic changes in. Every method that
/// changes something returns only after the change is durable.
pub trait Store: Send + Sync + fmt::Debug {
    fn create_task(&self, task: Task) -> Result<Task, Error>;
    fn task(&self, id: &str) -> Option<Task>;
    fn tasks(&self, filter: &TaskFilter) -> Vec<Task>;
    /// Completes, cancels or expires a task, revokes its grants and expires
    /// its pending approvals. Once the task's own change is durable the task
    /// has ended: a failure to record the rest is logged, not returned.
    fn end_task(&self, id: &str, state: TaskState, ending: Ending) -> Result<Task, Error>;

    /// Issues a grant in an active task.
    fn issue_grant(&self, grant: Grant) -> Result<Grant, Error>;
    fn grant(&self, id: &str) -> Option<Grant>;
    /// For a grant that came from an approval (source `approval` or
    /// `policy`): that approval's id and who granted it; `None` for an
    /// operator's grant or an unknown id. What the decision log names as a
    /// call's approver, without a copy of the whole grant.
    fn grant_approval(&self, id: &str) -> Option<(String, String)> {
        self.grant(id).and_then(|g| approval_of(&g))
    }
    fn grants(&self, filter: &GrantFilter, now: Millis) -> Vec<Grant>;
    fn revoke_grant(&self, id: &str, ending: Ending) -> Result<Grant, Error>;
    /// Revokes every live grant in scope; returns their ids.
    fn revoke_grants(&self, scope: &RevokeScope, ending: Ending) -> Result<Vec<String>, Error>;
    /// The grants of an active task usable now for this tool on this route.
    fn live_grants(&self, task_id: &str, route: &str, tool: &str, now: Millis) -> Vec<Grant>;
    /// Counts one use of a grant, atomically: with `max_uses` N exactly N
    /// calls succeed. Fails if the grant (or its task) is no longer usable.
    /// A use of an unlimited grant (`max_uses` none) is counted on the
    /// caller's async thread: it must not wait on storage.
    fn consume(&self, grant_id: &str, now: Millis) -> Result<Grant, Error>;

    /// Counts a call of `tool` in its task before it is decided and returns
    /// the task's activity as it was just before — what policy sees — in
    /// one atomic step: concurrent calls each see the ones counted before
    /// them, never the same count.
    fn begin_call(&self, task_id: &str, tool: &str) -> Activity;
    /// Records how a call counted by [`Store::begin_call`] ended: denied or
    /// not, and among the task's recent calls.
    fn finish_call(&self, task_id: &str, call: RecentCall, denied: bool);
    fn activity(&self, task_id: &str) -> Activity;

    /// Parks a pending approval; an identical pending one (same kind, agent,
    /// on-behalf-of user, task, route, tool, argument digest and, for a
    /// grant request, requested grant) is returned instead of a second.
    fn park(&self, approval: Approval) -> Result<Approval, Error>;
    fn approval(&self, id: &str) -> Option<Approval>;
    fn approvals(&self, filter: &ApprovalFilter, now: Millis) -> Vec<Approval>;
    /// Approves a pending approval and issues `grant` in the same write.
    fn approve(&self, id: &str, grant: Grant, ending: Ending) -> Result<(Approval, Grant), Error>;
    fn deny(&self, id: &str, ending: Ending) -> Result<Approval, Error>;

    /// Expires what is due, drops dead grants from the hot maps, purges
    /// ended records older than `retain_ms`, flushes activity.
    fn sweep(&self, now: Millis, retain_ms: Millis) -> Result<Swept, Error>;
}

/// The approval a grant came from, and who granted it (see
/// [`Store::grant_approval`]).
pub(crate) fn approval_of(g: &Grant) -> Option<(String, String)> {
    match &g.source {
        GrantSource::Operator => None,
        GrantSource::Approval { approval_id } | GrantSource::Policy { approval_id, .. } => {
            Some((approval_id.clone(), g.granted_by.clone()))
        }
    }
}
