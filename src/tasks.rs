//! Task-context stage, the rules: what may be created, for how long, and
//! what approving means. The admin API, the operator CLI (through the admin
//! API), the agents' grant-request endpoint and the gateway's call path all
//! change tasks through [`Tasks`]; it enforces the configured caps, checks
//! constraints, turns an approval into a grant and wakes the calls waiting
//! for it. Storage is the [`Store`]'s.

pub mod events;
pub mod requests;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use serde_json::Value;
use tokio::sync::watch;

use crate::config;
use crate::store::model::{argument_digest, new_id, now_ms};
use crate::store::{
    Approval, ApprovalKind, ApprovalState, Ending, Grant, GrantSource, Millis, Store, Task,
    TaskState,
};
use events::{Event, Events};
pub use requests::{ApproveRequest, GrantRequest, NewGrant, NewTask};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

impl Error {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid_request",
            Self::Store(e) => e.code(),
        }
    }

    /// The HTTP status an API answers this error with.
    pub fn status(&self) -> http::StatusCode {
        use crate::store::Error as S;
        use http::StatusCode;
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Store(S::NotFound { .. }) => StatusCode::NOT_FOUND,
            Self::Store(S::Limit(_)) => StatusCode::TOO_MANY_REQUESTS,
            Self::Store(S::Durable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(
                S::Exists { .. }
                | S::TaskEnded { .. }
                | S::NotPending { .. }
                | S::GrantUnusable { .. },
            ) => StatusCode::CONFLICT,
        }
    }

    fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// Largest arguments document a parked call keeps, in bytes.
const MAX_PARKED_ARGUMENTS: usize = 64 * 1024;

/// The caps and approval settings in force (from the current snapshot).
#[derive(Debug, Clone, Copy)]
pub struct Caps<'a> {
    pub tasks: &'a config::Tasks,
    pub approvals: &'a config::Approvals,
}

/// Tasks, grants and approvals, with their rules.
#[derive(Debug)]
pub struct Tasks {
    store: Arc<dyn Store>,
    /// Calls held open for an approval, by approval id.
    waiters: DashMap<String, watch::Sender<ApprovalState>>,
    events: Events,
}

impl Tasks {
    pub fn new(store: Arc<dyn Store>, registry: &prometheus::Registry) -> Arc<Self> {
        Arc::new(Self {
            store,
            waiters: DashMap::new(),
            events: Events::new(registry),
        })
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Opens the configured store: the on-disk journal at `tasks.store`, or
    /// memory only (warned: nothing survives a restart).
    pub fn open(
        config: &config::Tasks,
        approvals: &config::Approvals,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, Error> {
        let limits = crate::store::memory::StoreLimits {
            max_tasks: config.max_tasks,
            max_grants_per_task: config.max_grants_per_task,
            max_pending_approvals: approvals.max_pending,
            recent_calls: config.recent_calls,
            max_pending_per_task: approvals.max_pending_per_task,
        };
        let health = crate::store::disk::health::StoreHealth::new(registry);
        let store = match &config.store {
            Some(path) => {
                let journal = crate::store::disk::redb::RedbJournal::open(path)
                    .map_err(crate::store::Error::from)?;
                let journal = crate::store::disk::health::Watched::new(journal, health);
                let store = crate::store::MemoryStore::open(Arc::new(journal), limits)?;
                tracing::info!(path = %path.display(), "task store opened");
                store
            }
            None => {
                tracing::warn!(
                    "tasks.store is not set: tasks, grants and approvals are kept in memory only and lost on restart"
                );
                crate::store::MemoryStore::in_memory(limits)
            }
        };
        Ok(Self::new(Arc::new(store), registry))
    }

    /// Sweeps expiry and flushes counters every `tasks.sweep_interval` until
    /// `stop` is cancelled (then once more).
    pub fn spawn_sweeper(
        self: &Arc<Self>,
        snapshot: impl Fn() -> Arc<crate::snapshot::Snapshot> + Send + 'static,
        stop: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            // Grants expire by the clock, not by a write: each sweep names
            // those whose time ran out since the last one.
            let mut since = now_ms();
            loop {
                let settings = snapshot();
                let interval = settings.tasks.sweep_interval;
                let retain = millis(settings.tasks.retention);
                let store = Arc::clone(&this.store);
                let now = now_ms();
                let swept = tokio::task::spawn_blocking(move || {
                    let ran_out = expired_between(store.as_ref(), since, now);
                    (ran_out, store.sweep(now, retain))
                })
                .await
                .map(|(ran_out, swept)| {
                    for g in &ran_out {
                        this.events
                            .record(Event::GrantExpired, &g.id, &g.task_id, "system");
                    }
                    swept
                });
                since = now;
                match swept {
                    Ok(Ok(s)) if s != crate::store::Swept::default() => {
                        this.events.count(Event::TaskExpired, s.tasks_expired);
                        this.events
                            .count(Event::ApprovalExpired, s.approvals_expired);
                        tracing::debug!(
                            tasks_expired = s.tasks_expired,
                            approvals_expired = s.approvals_expired,
                            purged = s.purged,
                            "task store swept"
                        );
                    }
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "task store sweep failed"),
                    Err(e) => tracing::error!(error = %e, "task store sweep panicked"),
                }
                if stop.is_cancelled() {
                    break;
                }
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(interval) => {}
                }
            }
        })
    }

    /// Creates a task; its TTL defaults to and is capped by config.
    pub fn create_task(&self, caps: Caps<'_>, req: NewTask, actor: &str) -> Result<Task, Error> {
        let ttl = match req.ttl.as_deref() {
            Some(text) => requests::duration("ttl", text)?,
            None => caps.tasks.default_ttl,
        };
        requests::within("ttl", ttl, caps.tasks.max_ttl, "tasks.max_ttl", "task")?;
        requests::check_text("agent", &req.agent, 1024)?;
        requests::check_text("purpose", &req.purpose, 4096)?;
        if let Some(issuer) = &req.issuer {
            requests::check_text("issuer", issuer, 1024)?;
        }
        if let Some(user) = &req.on_behalf_of {
            requests::check_text("on_behalf_of", user, 1024)?;
        }
        requests::check_labels(&req.labels)?;
        let now = now_ms();
        let task = Task {
            id: new_id("task"),
            agent: req.agent,
            issuer: req.issuer,
            on_behalf_of: req.on_behalf_of,
            purpose: req.purpose,
            labels: req.labels,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(millis(ttl)),
            created_by: actor.to_owned(),
            state: TaskState::Active,
            ended: None,
        };
        let task = self.store.create_task(task)?;
        self.events
            .record(Event::TaskCreated, &task.id, &task.id, actor);
        Ok(task)
    }

    /// Completes or cancels a task: every grant in it ends.
    pub fn end_task(
        &self,
        id: &str,
        state: TaskState,
        actor: &str,
        why: &str,
    ) -> Result<Task, Error> {
        let task = self.store.end_task(id, state, ending(actor, why))?;
        let event = match state {
            TaskState::Completed => Event::TaskCompleted,
            TaskState::Cancelled => Event::TaskCancelled,
            TaskState::Expired | TaskState::Active => Event::TaskExpired,
        };
        self.events.record(event, id, id, actor);
        // The store expired the task's pending approvals with it: calls
        // held open for them stop waiting now.
        let expired = self.store.approvals(
            &crate::store::ApprovalFilter {
                task_id: Some(id.to_owned()),
                state: Some(ApprovalState::Expired),
                agent: None,
            },
            now_ms(),
        );
        for approval in expired {
            self.wake(&approval.id, ApprovalState::Expired);
        }
        Ok(task)
    }

    /// Issues an operator's grant in an active task.
    pub fn issue_grant(&self, caps: Caps<'_>, req: NewGrant, actor: &str) -> Result<Grant, Error> {
        let now = now_ms();
        let task = self.store.task(&req.task_id).ok_or_else(|| {
            Error::Store(crate::store::Error::NotFound {
                kind: "task",
                id: req.task_id.clone(),
            })
        })?;
        let (not_before_ms, expires_at_ms) = requests::window(&req, now, caps.tasks.max_grant_ttl)?;
        requests::check_grant_scope(&req.tool, &req.constraints)?;
        requests::check_text("reason", &req.reason, 4096)?;
        if req.max_uses == Some(0) {
            return Err(Error::invalid(
                "max_uses",
                "must be at least 1 (omit it for unlimited)",
            ));
        }
        let grant = Grant {
            id: new_id("grant"),
            task_id: task.id,
            agent: task.agent,
            tool: req.tool,
            tool_exact: false,
            route: req.route,
            constraints: req.constraints,
            not_before_ms,
            expires_at_ms,
            max_uses: req.max_uses,
            uses: 0,
            reason: req.reason,
            granted_by: actor.to_owned(),
            created_at_ms: now,
            source: GrantSource::Operator,
            argument_digest: None,
            revoked: None,
        };
        let grant = self.store.issue_grant(grant)?;
        self.events
            .record(Event::GrantIssued, &grant.id, &grant.task_id, actor);
        Ok(grant)
    }

    /// Revokes one grant (idempotent: an already revoked one is returned).
    pub fn revoke_grant(&self, id: &str, actor: &str, why: &str) -> Result<Grant, Error> {
        let was = self.store.grant(id).is_some_and(|g| g.revoked.is_none());
        let grant = self.store.revoke_grant(id, ending(actor, why))?;
        if was {
            self.events
                .record(Event::GrantRevoked, &grant.id, &grant.task_id, actor);
        }
        Ok(grant)
    }

    /// Revokes every live grant of a task or of an agent; returns their ids.
    pub fn revoke_grants(
        &self,
        scope: &crate::store::RevokeScope,
        actor: &str,
        why: &str,
    ) -> Result<Vec<String>, Error> {
        let revoked = self.store.revoke_grants(scope, ending(actor, why))?;
        let task = match scope {
            crate::store::RevokeScope::Task(id) => id.as_str(),
            crate::store::RevokeScope::Agent(_) => "",
        };
        for id in &revoked {
            self.events.record(Event::GrantRevoked, id, task, actor);
        }
        Ok(revoked)
    }

    /// Parks a call policy wants a human to look at.
    pub fn park_call(
        &self,
        caps: Caps<'_>,
        task: &Task,
        route: &str,
        tool: &str,
        arguments: &Value,
        why: &str,
    ) -> Result<(Approval, bool), Error> {
        // An approval keeps the call's arguments for the approver to read:
        // bounded, so parked calls cannot fill memory and disk.
        let size = serde_json::to_vec(arguments).map_or(usize::MAX, |v| v.len());
        if size > MAX_PARKED_ARGUMENTS {
            return Err(Error::invalid(
                "arguments",
                format!(
                    "{size} bytes is more than an approval keeps ({MAX_PARKED_ARGUMENTS}); ask for a grant instead"
                ),
            ));
        }
        if tool.len() > 512 {
            return Err(Error::invalid("tool", "name longer than 512 bytes"));
        }
        let now = now_ms();
        let approval = Approval {
            id: new_id("appr"),
            kind: ApprovalKind::Call,
            task_id: task.id.clone(),
            agent: task.agent.clone(),
            on_behalf_of: task.on_behalf_of.clone(),
            route: route.to_owned(),
            tool: tool.to_owned(),
            arguments: arguments.clone(),
            argument_digest: argument_digest(arguments),
            why: why.to_owned(),
            requested: None,
            created_at_ms: now,
            expires_at_ms: now.saturating_add(millis(caps.approvals.pending_ttl)),
            state: ApprovalState::Pending,
            decided: None,
            grant_id: None,
        };
        let id = approval.id.clone();
        let parked = self.store.park(approval)?;
        let new = parked.id == id;
        if new {
            self.events.record(
                Event::ApprovalParked,
                &parked.id,
                &parked.task_id,
                &parked.agent,
            );
        }
        Ok((parked, new))
    }

    /// Parks an agent's own grant request.
    pub fn park_request(&self, approval: Approval) -> Result<Approval, Error> {
        let id = approval.id.clone();
        let parked = self.store.park(approval)?;
        if parked.id == id {
            self.events.record(
                Event::ApprovalParked,
                &parked.id,
                &parked.task_id,
                &parked.agent,
            );
        }
        Ok(parked)
    }

    /// Approves `approval` with `grant` (already built) as `actor`.
    pub fn approve_with(
        &self,
        id: &str,
        grant: Grant,
        actor: &str,
        why: &str,
    ) -> Result<(Approval, Grant), Error> {
        let (approval, grant) = self.store.approve(id, grant, ending(actor, why))?;
        self.events.record(
            Event::ApprovalApproved,
            &approval.id,
            &approval.task_id,
            actor,
        );
        self.events
            .record(Event::GrantIssued, &grant.id, &grant.task_id, actor);
        self.wake(id, ApprovalState::Approved);
        Ok((approval, grant))
    }

    /// Approves: creates the grant (for a parked call, scoped to that exact
    /// call with a short TTL; for a request, what was asked within the caps)
    /// and wakes a call waiting for it.
    pub fn approve(
        &self,
        caps: Caps<'_>,
        id: &str,
        req: ApproveRequest,
        actor: &str,
    ) -> Result<(Approval, Grant), Error> {
        // The approver's note is stored and shown like a denial's reason:
        // bounded, no control characters (found by the admin_body fuzz target).
        if let Some(reason) = req.reason.as_deref().filter(|r| !r.is_empty()) {
            requests::check_text("reason", reason, 4096)?;
        }
        let approval = self.store.approval(id).ok_or_else(|| {
            Error::Store(crate::store::Error::NotFound {
                kind: "approval",
                id: id.to_owned(),
            })
        })?;
        let grant = self.approval_grant(
            caps,
            &approval,
            &req,
            actor,
            GrantSource::Approval {
                approval_id: approval.id.clone(),
            },
        )?;
        let why = req.reason.unwrap_or_default();
        self.approve_with(id, grant, actor, &why)
    }

    /// The grant approving `approval` creates.
    pub fn approval_grant(
        &self,
        caps: Caps<'_>,
        approval: &Approval,
        req: &ApproveRequest,
        actor: &str,
        source: GrantSource,
    ) -> Result<Grant, Error> {
        let now = now_ms();
        let cap = caps.tasks.max_grant_ttl;
        let requested_ttl = approval
            .requested
            .as_ref()
            .map(|r| Duration::from_millis(r.ttl_ms));
        let ttl = match req.ttl.as_deref() {
            Some(text) => requests::duration("ttl", text)?,
            None => match approval.kind {
                ApprovalKind::Call => caps.approvals.grant_ttl,
                ApprovalKind::Request => requested_ttl.unwrap_or(caps.approvals.grant_ttl),
            },
        };
        requests::within("ttl", ttl, cap, "tasks.max_grant_ttl", "grant")?;
        // The grant covers at most what the approver (or policy) was shown:
        // the tool, and — when arguments were given — exactly those
        // arguments. Requested constraints only narrow it further.
        let exact_arguments = || crate::store::Constraint {
            pointer: String::new(),
            test: crate::store::ConstraintTest::Equals(approval.arguments.clone()),
        };
        let (tool, tool_exact, route, constraints, max_uses, digest) =
            match (&approval.kind, &approval.requested) {
                (ApprovalKind::Request, Some(r)) => {
                    let mut constraints = r.constraints.clone();
                    if !approval.arguments.is_null() {
                        constraints.push(exact_arguments());
                    }
                    (
                        r.tool.clone(),
                        false,
                        r.route.clone(),
                        constraints,
                        req.max_uses.or(r.max_uses),
                        None,
                    )
                }
                // One exact call: its tool name literally (a name holding
                // `*` is not a glob here), its arguments, one use.
                (ApprovalKind::Call | ApprovalKind::Request, _) => (
                    approval.tool.clone(),
                    true,
                    Some(approval.route.clone()),
                    vec![exact_arguments()],
                    Some(req.max_uses.unwrap_or(1)),
                    Some(approval.argument_digest.clone()),
                ),
            };
        if max_uses == Some(0) {
            return Err(Error::invalid("max_uses", "must be at least 1"));
        }
        Ok(Grant {
            id: new_id("grant"),
            task_id: approval.task_id.clone(),
            agent: approval.agent.clone(),
            tool,
            tool_exact,
            route,
            constraints,
            not_before_ms: None,
            expires_at_ms: now.saturating_add(millis(ttl)),
            max_uses,
            uses: 0,
            reason: if approval.why.is_empty() {
                format!("approval {}", approval.id)
            } else {
                approval.why.clone()
            },
            granted_by: actor.to_owned(),
            created_at_ms: now,
            source,
            argument_digest: digest,
            revoked: None,
        })
    }

    pub fn deny(&self, id: &str, actor: &str, why: &str) -> Result<Approval, Error> {
        let approval = self.store.deny(id, ending(actor, why))?;
        self.events.record(
            Event::ApprovalDenied,
            &approval.id,
            &approval.task_id,
            actor,
        );
        self.wake(id, ApprovalState::Denied);
        Ok(approval)
    }

    /// Waits up to `wait` for a pending approval to be answered; returns its
    /// state then (still `Pending` if nobody answered in time).
    pub async fn wait(&self, id: &str, wait: Duration) -> ApprovalState {
        let mut rx = self
            .waiters
            .entry(id.to_owned())
            .or_insert_with(|| watch::channel(ApprovalState::Pending).0)
            .subscribe();
        // Whatever ends the wait — an answer, the deadline, or the caller
        // going away (this future dropped) — the entry goes with its last waiter.
        let _guard = WaitGuard {
            waiters: &self.waiters,
            id,
        };
        // Answered between parking and subscribing?
        let current = self
            .store
            .approval(id)
            .map_or(ApprovalState::Expired, |a| a.state_at(now_ms()));
        if current != ApprovalState::Pending {
            return current;
        }
        let answered =
            tokio::time::timeout(wait, rx.wait_for(|s| *s != ApprovalState::Pending)).await;
        match answered {
            Ok(Ok(state)) => *state,
            Ok(Err(_)) | Err(_) => self
                .store
                .approval(id)
                .map_or(ApprovalState::Expired, |a| a.state_at(now_ms())),
        }
    }

    fn wake(&self, id: &str, state: ApprovalState) {
        if let Some(tx) = self.waiters.get(id) {
            tx.send_replace(state);
        }
    }
}

/// Removes a waiter entry once nobody waits on it any more.
struct WaitGuard<'a> {
    waiters: &'a DashMap<String, watch::Sender<ApprovalState>>,
    id: &'a str,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        // The guard drops before the receiver it guards (declared after
        // it): one receiver — ours — may still be counted.
        self.waiters
            .remove_if(self.id, |_, tx| tx.receiver_count() <= 1);
    }
}

pub(crate) fn ending(actor: &str, why: &str) -> Ending {
    Ending {
        by: actor.to_owned(),
        at_ms: now_ms(),
        why: why.to_owned(),
    }
}

/// Grants whose time ran out in `[since, now)` while they were still usable
/// (not revoked, uses left): the sweep reports each as `grant_expired`. A
/// store that cannot be read reports none (the sweep logs its own error).
fn expired_between(store: &dyn Store, since: Millis, now: Millis) -> Vec<Grant> {
    store
        .grants(&crate::store::GrantFilter::default(), now)
        .into_iter()
        .filter(|g| {
            g.revoked.is_none()
                && (since..now).contains(&g.expires_at_ms)
                && g.max_uses.is_none_or(|max| g.uses < max)
        })
        .collect()
}

pub(crate) fn millis(d: Duration) -> Millis {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::store::memory::StoreLimits;

    #[tokio::test]
    async fn a_caller_going_away_leaves_no_waiter_behind() {
        let tasks = Tasks::new(
            Arc::new(MemoryStore::in_memory(StoreLimits::default())),
            &prometheus::Registry::new(),
        );
        let caps = Caps {
            tasks: &config::Tasks::default(),
            approvals: &config::Approvals::default(),
        };
        let task = tasks
            .create_task(
                caps,
                NewTask {
                    agent: "a".into(),
                    issuer: None,
                    on_behalf_of: None,
                    purpose: "p".into(),
                    labels: Default::default(),
                    ttl: None,
                },
                "ops",
            )
            .unwrap();
        let (approval, new) = tasks
            .park_call(caps, &task, "r", "t", &serde_json::json!({}), "why")
            .unwrap();
        assert!(new);
        // Dropped mid-wait, as when the caller disconnects.
        let gone = tokio::time::timeout(
            Duration::from_millis(20),
            tasks.wait(&approval.id, Duration::from_secs(60)),
        )
        .await;
        assert!(gone.is_err());
        assert!(tasks.waiters.is_empty(), "the waiter entry went with it");
        // Two waiters: the answer reaches both, then the entry goes.
        let (a, b, _) = tokio::join!(
            tasks.wait(&approval.id, Duration::from_secs(5)),
            tasks.wait(&approval.id, Duration::from_secs(5)),
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tasks.deny(&approval.id, "ops", "no").unwrap();
            }
        );
        assert_eq!((a, b), (ApprovalState::Denied, ApprovalState::Denied));
        assert!(tasks.waiters.is_empty());

        // Ending the task releases a call held for one of its approvals.
        let (held, _) = tasks
            .park_call(caps, &task, "r", "t", &serde_json::json!({"n": 2}), "why")
            .unwrap();
        let (state, _) = tokio::join!(tasks.wait(&held.id, Duration::from_secs(30)), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            tasks
                .end_task(&task.id, TaskState::Completed, "ops", "done")
                .unwrap();
        });
        assert_eq!(state, ApprovalState::Expired);
    }
}
