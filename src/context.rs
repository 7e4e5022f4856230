//! Task-context stage: which task a call runs in, the live context policy
//! sees (the task, the grants matching the tool, counters, recent calls),
//! and settling a decision afterwards — counting the grant it used, parking
//! it for approval (and maybe waiting for the answer), remembering the call.
//!
//! A task id comes from the token's task claim or the route's task header.
//! Either way it is trusted only if the task names this caller as its agent
//! (and, for a delegated token, the user it acts for; and the token's issuer,
//! if the task names one); otherwise the call is refused (`task_invalid`). Calls in an ended task are refused (`task_ended`).

mod settle;
mod wire;

use std::sync::Arc;

use serde_json::value::RawValue;

use crate::decide::{ContextWire, Decision, LazyJson, Reason, RequestFacts, Verdict};
use crate::identify::Identity;
use crate::store::model::now_ms;
use crate::store::{Grant, Millis, Store, Task, TaskState};

pub use settle::{Call as Settle, settle};

/// The task a call runs in, as far as the caller's claims hold up.
#[derive(Debug, Clone)]
pub enum Scope {
    /// No task named: policy decides without one.
    None,
    /// Shared with the task's JSON for policy, made only if a module reads it.
    Active(Arc<Task>),
    /// The named task cannot be used: every call is refused.
    Refused {
        reason: Reason,
        message: String,
        task_id: String,
    },
}

/// The caller as a task names it: the acting agent and the user it acts for.
pub fn caller_of(identity: &Identity) -> Option<(&str, Option<&str>)> {
    match identity {
        Identity::Anonymous => None,
        Identity::Workload(w) => Some(match &w.delegation.agent {
            Some(agent) => (agent.as_str(), w.delegation.user.as_deref()),
            None => (w.subject.as_str(), None),
        }),
    }
}

/// Resolves the task a call names (token claim or task header).
pub fn resolve(store: &dyn Store, identity: &Identity, facts: &RequestFacts, now: Millis) -> Scope {
    let claimed = match identity {
        Identity::Workload(w) => w.task_id.as_deref(),
        Identity::Anonymous => None,
    };
    let named = match (claimed, facts.task_hint.as_deref()) {
        (None, None) => return Scope::None,
        (Some(a), Some(b)) if a != b => {
            return refused(
                Reason::TaskInvalid,
                a,
                format!("the token names task {a} but the task header names {b}"),
            );
        }
        (Some(id), _) | (None, Some(id)) => id,
    };
    let Some((agent, user)) = caller_of(identity) else {
        return refused(
            Reason::TaskInvalid,
            named,
            "anonymous callers cannot run in a task".into(),
        );
    };
    let Some(task) = store.task(named) else {
        return refused(
            Reason::TaskInvalid,
            named,
            format!("task {named} does not exist"),
        );
    };
    let issuer = match identity {
        Identity::Workload(w) => Some(w.issuer.as_str()),
        Identity::Anonymous => None,
    };
    if task.agent != agent
        || task
            .on_behalf_of
            .as_deref()
            .is_some_and(|u| Some(u) != user)
        || task
            .issuer
            .as_deref()
            .is_some_and(|iss| Some(iss) != issuer)
    {
        return refused(
            Reason::TaskInvalid,
            named,
            format!("task {named} was not given to this caller"),
        );
    }
    match task.state_at(now) {
        TaskState::Active => Scope::Active(Arc::new(task)),
        state => refused(
            Reason::TaskEnded,
            named,
            format!(
                "task {named} is {}: its grants ended with it",
                state.as_str()
            ),
        ),
    }
}

fn refused(reason: Reason, task_id: &str, message: String) -> Scope {
    Scope::Refused {
        reason,
        message,
        task_id: task_id.to_owned(),
    }
}

/// One request's live context: built once, shared by every decision in it.
#[derive(Debug, Clone)]
pub struct Live {
    pub scope: Scope,
    task: LazyJson,
    /// The task's counters and recent calls for the `list` phase, read at
    /// the first listed tool (a `tools/call` counts and reads its own).
    listed: std::sync::OnceLock<ListedActivity>,
}

type ListedActivity = (LazyJson, LazyJson);

impl Live {
    /// No task (routes and calls without one).
    pub fn none() -> Self {
        Self {
            scope: Scope::None,
            task: LazyJson::NONE,
            listed: std::sync::OnceLock::new(),
        }
    }

    pub fn build(store: &dyn Store, identity: &Identity, facts: &RequestFacts) -> Self {
        let now = now_ms();
        let scope = resolve(store, identity, facts, now);
        let Scope::Active(task) = &scope else {
            return Self {
                scope,
                ..Self::none()
            };
        };
        let task = Arc::clone(task);
        Self {
            task: LazyJson::new(move || wire::task(&task, now)),
            listed: std::sync::OnceLock::new(),
            scope,
        }
    }

    pub fn task(&self) -> Option<&Task> {
        match &self.scope {
            Scope::Active(task) => Some(task.as_ref()),
            Scope::None | Scope::Refused { .. } => None,
        }
    }

    pub fn task_id(&self) -> Option<&str> {
        match &self.scope {
            Scope::Active(task) => Some(&task.id),
            Scope::Refused { task_id, .. } => Some(task_id),
            Scope::None => None,
        }
    }

    /// The refusal every decision in a request with an unusable task gets.
    pub fn refusal(&self) -> Option<Decision> {
        match &self.scope {
            Scope::Refused {
                reason,
                message,
                task_id,
            } => {
                let mut d = Decision::new(Verdict::Deny, *reason, message.clone());
                d.task = Some(task_id.clone());
                Some(d)
            }
            Scope::None | Scope::Active(_) => None,
        }
    }

    /// The context for deciding `tool` on `route` in the `list` phase (the
    /// request's counters as they stood), and the grants in it.
    pub fn for_tool(
        &self,
        store: &dyn Store,
        route: &str,
        tool: &str,
    ) -> (ContextWire, Vec<Grant>) {
        let Some(task) = self.task() else {
            return (ContextWire::default(), Vec::new());
        };
        let grants = store.live_grants(&task.id, route, tool, now_ms());
        let (counters, recent) = self
            .listed
            .get_or_init(|| wire::activity(store.activity(&task.id)));
        let wire = ContextWire {
            task: self.task.clone(),
            grants: wire::grants(&grants),
            counters: counters.clone(),
            recent_calls: recent.clone(),
        };
        (wire, grants)
    }

    /// The contexts for deciding each of `tools` (one list) on `route` in
    /// the `list` phase: [`Self::for_tool`] for each, with one clock reading
    /// for the list; a tool whose grants are those of the tool before it
    /// (a task's `*` grant) shares their wire form instead of serializing
    /// them again.
    pub fn for_tools(&self, store: &dyn Store, route: &str, tools: &[&str]) -> Vec<ContextWire> {
        let Some(task) = self.task() else {
            return tools.iter().map(|_| ContextWire::default()).collect();
        };
        let now = now_ms();
        let (counters, recent) = self
            .listed
            .get_or_init(|| wire::activity(store.activity(&task.id)));
        let mut last: Option<(Vec<Grant>, Option<Arc<RawValue>>)> = None;
        tools
            .iter()
            .map(|tool| {
                let grants = store.live_grants(&task.id, route, tool, now);
                let wire = match &last {
                    Some((before, wire)) if *before == grants => wire.clone(),
                    Some(_) | None => {
                        let wire = wire::grants(&grants);
                        last = Some((grants, wire.clone()));
                        wire
                    }
                };
                ContextWire {
                    task: self.task.clone(),
                    grants: wire,
                    counters: counters.clone(),
                    recent_calls: recent.clone(),
                }
            })
            .collect()
    }

    /// The context for deciding a follow-up of an MCP task (`tasks/get`, …)
    /// whose call was allowed by `kept`: counted like a call, and shown the
    /// kept grant as long as it is not revoked or expired — with the use
    /// its call spent still in hand, since the follow-up spends none.
    pub fn for_follow_up(
        &self,
        store: &dyn Store,
        route: &str,
        tool: &str,
        kept: &str,
    ) -> (ContextWire, Vec<Grant>) {
        let (mut wire, mut grants) = self.for_call(store, route, tool);
        let Some(task) = self.task() else {
            return (wire, grants);
        };
        let now = now_ms();
        let Some(mut grant) = store.grant(kept).filter(|g| {
            g.task_id == task.id && g.covers(route, tool) && !grants.iter().any(|l| l.id == g.id)
        }) else {
            return (wire, grants);
        };
        if let Some(max) = grant.max_uses {
            grant.uses = grant.uses.min(max.saturating_sub(1));
        }
        if grant.is_live(now) {
            grants.push(grant);
            wire.grants = wire::grants(&grants);
        }
        (wire, grants)
    }

    /// The context for deciding one call of `tool`: the call is counted in
    /// its task first (atomically), and policy sees the counters as they
    /// were just before it — so concurrent calls, and the calls of one
    /// batch, each see the ones before them.
    pub fn for_call(
        &self,
        store: &dyn Store,
        route: &str,
        tool: &str,
    ) -> (ContextWire, Vec<Grant>) {
        let Some(task) = self.task() else {
            return (ContextWire::default(), Vec::new());
        };
        let (counters, recent_calls) = wire::activity(store.begin_call(&task.id, tool));
        let grants = store.live_grants(&task.id, route, tool, now_ms());
        let wire = ContextWire {
            task: self.task.clone(),
            grants: wire::grants(&grants),
            counters,
            recent_calls,
        };
        (wire, grants)
    }
}

#[cfg(test)]
mod tests;
