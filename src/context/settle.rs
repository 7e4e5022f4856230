//! Task-context stage, after the decision: a call allowed because of a grant
//! uses it up (atomically — a grant with no use left refuses the call); a
//! call policy wants approved is allowed by an approval grant for exactly
//! this call, or parked (and, if the route says so, held open until an
//! operator answers); the call is counted in its task.

use std::sync::Arc;

use serde_json::Value;

use super::Live;
use crate::decide::{Decision, Reason, Verdict};
use crate::snapshot::{Route, Snapshot};
use crate::store::model::{argument_digest, now_ms};
use crate::store::{ApprovalState, Grant, RecentCall};
use crate::tasks::{Caps, Tasks};

/// One decided call, ready to settle.
#[derive(Debug)]
pub struct Call<'a> {
    pub tasks: &'a Arc<Tasks>,
    pub snapshot: &'a Snapshot,
    pub route: &'a Route,
    pub live: &'a Live,
    pub tool: &'a str,
    pub arguments: &'a Value,
    /// The grants policy was shown for this call.
    pub grants: Vec<Grant>,
    /// A grant this call keeps without spending a use (the follow-up of
    /// an MCP task whose call spent it).
    pub kept: Option<&'a str>,
    /// Set once a call of this request has been held for an approval: a
    /// batch is held at most once, not once per parked call.
    pub held: &'a std::sync::atomic::AtomicBool,
    /// Cancelled when the caller is gone: a held call stops waiting (and
    /// spends nothing) — there is no one left to deliver its answer to.
    pub caller_left: &'a tokio_util::sync::CancellationToken,
}

/// Settles a `call`-phase decision; returns the final one.
pub async fn settle(call: Call<'_>, mut decision: Decision) -> Decision {
    let Some(task) = call.live.task() else {
        if decision.verdict == Verdict::NeedsApproval {
            decision.message = format!(
                "{} (approvals are given within a task: run this call in a task to have it parked for a human)",
                decision.message
            );
        }
        return decision;
    };
    decision.task = Some(task.id.clone());
    let decision = match decision.verdict {
        Verdict::Allow => use_named_grants(&call, decision).await,
        Verdict::NeedsApproval => approval(&call, decision).await,
        Verdict::Deny => decision,
    };
    let denied = decision.verdict != Verdict::Allow;
    call.tasks.store().finish_call(
        &task.id,
        RecentCall {
            tool: call.tool.to_owned(),
            route: call.route.name.clone(),
            decision: decision.verdict.as_str().to_owned(),
            at_ms: now_ms(),
        },
        denied,
    );
    decision
}

/// Counts one use of every grant a module allowed because of.
async fn use_named_grants(call: &Call<'_>, mut decision: Decision) -> Decision {
    let mut named: Vec<String> = Vec::new();
    for id in crate::decide::named_grants(&decision.evidence) {
        if !named.iter().any(|n| n == id) {
            named.push(id.to_owned());
        }
    }
    for id in named {
        if !call.grants.iter().any(|g| g.id == id) {
            return refuse(
                decision,
                Reason::GrantExhausted,
                format!("grant {id} does not apply to this call"),
            );
        }
        if call.kept == Some(id.as_str()) {
            // Its call spent the use this follow-up rides on.
            continue;
        }
        let known = call.grants.iter().find(|g| g.id == id);
        match consume(call.tasks, &id, known).await {
            Ok(grant) => decision.grant = Some(grant.id),
            Err((reason, why)) => return refuse(decision, reason, why),
        }
    }
    decision
}

/// Policy wants a human: an approval grant for exactly this call allows it;
/// otherwise park it, and maybe wait for the answer.
async fn approval(call: &Call<'_>, mut decision: Decision) -> Decision {
    let digest = argument_digest(call.arguments);
    let approved = call
        .grants
        .iter()
        .find(|g| g.argument_digest.as_deref() == Some(digest.as_str()));
    if let Some(grant) = approved {
        return match consume(call.tasks, &grant.id, Some(grant)).await {
            Ok(grant) => allow_approved(decision, grant),
            Err((reason, why)) => refuse(decision, reason, why),
        };
    }
    let Some(task) = call.live.task() else {
        return decision;
    };
    let parked = {
        let (tasks, task, route, tool, args, why) = (
            Arc::clone(call.tasks),
            task.clone(),
            call.route.name.clone(),
            call.tool.to_owned(),
            call.arguments.clone(),
            decision.message.clone(),
        );
        let (task_cfg, approvals_cfg) = (
            Arc::clone(&call.snapshot.tasks),
            Arc::clone(&call.snapshot.approvals),
        );
        tokio::task::spawn_blocking(move || {
            let caps = Caps {
                tasks: &task_cfg,
                approvals: &approvals_cfg,
            };
            tasks.park_call(caps, &task, &route, &tool, &args, &why)
        })
        .await
    };
    let approval = match parked {
        Ok(Ok((approval, new))) => {
            if new && let Some(hook) = &call.snapshot.webhook {
                hook.announce(&approval, call.tasks.events());
            }
            approval
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "cannot park a call for approval");
            decision.message = format!(
                "{}; the call could not be parked for approval ({})",
                decision.message,
                e.code()
            );
            return decision;
        }
        Err(e) => {
            tracing::error!(error = %e, "parking a call panicked");
            return decision;
        }
    };
    decision.approval = Some(approval.id.clone());
    let wait = if call.held.swap(true, std::sync::atomic::Ordering::Relaxed) {
        std::time::Duration::ZERO
    } else {
        call.route.approval_wait
    };
    let state = if wait.is_zero() {
        approval.state_at(now_ms())
    } else {
        tokio::select! {
            state = call.tasks.wait(&approval.id, wait) => state,
            () = call.caller_left.cancelled() => ApprovalState::Pending,
        }
    };
    match state {
        ApprovalState::Approved => {
            let grant_id = call
                .tasks
                .store()
                .approval(&approval.id)
                .and_then(|a| a.grant_id);
            match grant_id {
                Some(id) => match consume(call.tasks, &id, None).await {
                    Ok(grant) => allow_approved(decision, grant),
                    Err((reason, why)) => refuse(decision, reason, why),
                },
                None => refuse(
                    decision,
                    Reason::ApprovalPending,
                    "approved, but its grant is gone".into(),
                ),
            }
        }
        ApprovalState::Denied => {
            let why = call
                .tasks
                .store()
                .approval(&approval.id)
                .and_then(|a| a.decided)
                .map(|d| {
                    format!(
                        "denied by {}{}",
                        d.by,
                        if d.why.is_empty() {
                            String::new()
                        } else {
                            format!(": {}", d.why)
                        }
                    )
                })
                .unwrap_or_else(|| "denied".into());
            decision.verdict = Verdict::Deny;
            decision.reason = Reason::ApprovalDenied;
            decision.message = format!("approval {} was {why}", approval.id);
            decision
        }
        ApprovalState::Pending if call.caller_left.is_cancelled() => {
            decision.reason = Reason::ApprovalPending;
            decision.message = format!(
                "{} — parked as approval {}; the caller left while the call was held",
                decision.message, approval.id
            );
            decision
        }
        ApprovalState::Pending => {
            decision.reason = Reason::ApprovalPending;
            decision.message = format!(
                "{} — parked as approval {id}; an operator can approve it (toolgate approval approve {id}); then retry this same call with the same arguments",
                decision.message,
                id = approval.id
            );
            decision
        }
        ApprovalState::Expired => {
            decision.reason = Reason::ApprovalPending;
            decision.message = format!(
                "{} — approval {} expired unanswered; retry to ask again",
                decision.message, approval.id
            );
            decision
        }
    }
}

fn allow_approved(mut decision: Decision, grant: Grant) -> Decision {
    decision.verdict = Verdict::Allow;
    decision.reason = Reason::Approved;
    decision.message = format!("approved by {}", grant.granted_by);
    if let crate::store::GrantSource::Approval { approval_id } = &grant.source {
        decision.approval = Some(approval_id.clone());
    }
    decision.grant = Some(grant.id);
    decision
}

fn refuse(mut decision: Decision, reason: Reason, message: String) -> Decision {
    decision.verdict = Verdict::Deny;
    decision.reason = reason;
    decision.message = message;
    decision
}

/// Where one use of a grant is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hop {
    /// An unlimited grant: its use is a counter bump in memory (persisted
    /// later, lazily), cheaper than a hop to the blocking pool.
    Inline,
    /// A counted grant (or one not seen yet): its use is journaled before
    /// it is granted, so it runs off the async threads.
    Blocking,
}

fn hop(known: Option<&Grant>) -> Hop {
    match known.map(|g| g.max_uses) {
        Some(None) => Hop::Inline,
        Some(Some(_)) | None => Hop::Blocking,
    }
}

/// One use of a grant: on this thread for an unlimited grant, off the async
/// threads for a counted one (a counted use is journaled). `known` is the
/// grant as policy saw it, if the caller has it. A use that cannot be
/// recorded (the store is not writable) is not granted: `store_unavailable`,
/// without the store's own error (logged and counted where it happened).
async fn consume(
    tasks: &Arc<Tasks>,
    id: &str,
    known: Option<&Grant>,
) -> Result<Grant, (Reason, String)> {
    let used = match hop(known) {
        Hop::Inline => Ok(tasks.store().consume(id, now_ms())),
        Hop::Blocking => {
            let (store, owned) = (Arc::clone(tasks.store()), id.to_owned());
            tokio::task::spawn_blocking(move || store.consume(&owned, now_ms())).await
        }
    };
    match used {
        Ok(Ok(grant)) => {
            tasks
                .events()
                .count(crate::tasks::events::Event::GrantUsed, 1);
            Ok(grant)
        }
        Ok(Err(crate::store::Error::Durable(_))) => Err((
            Reason::StoreUnavailable,
            format!("grant {id}: its use cannot be recorded now (the task store is not writable)"),
        )),
        Ok(Err(e)) => Err((Reason::GrantExhausted, format!("grant {id}: {e}"))),
        Err(_) => Err((
            Reason::GrantExhausted,
            format!("grant {id} could not be counted"),
        )),
    }
}

#[cfg(test)]
#[path = "settle/tests.rs"]
mod tests;
