//! Admin API, tasks: list, show (with grants, approvals and activity),
//! create, complete, cancel, and revoke every grant of one.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::error::Error;
use super::input::{self, Query};
use super::routes::{Reply, blocking};
use crate::gateway::Gateway;
use crate::store::model::now_ms;
use crate::store::{ApprovalFilter, GrantFilter, Millis, RevokeScope, Task, TaskFilter, TaskState};
use crate::tasks::{Caps, NewTask};

/// How an operator ends a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Complete,
    Cancel,
}

impl End {
    fn state(self) -> TaskState {
        match self {
            Self::Complete => TaskState::Completed,
            Self::Cancel => TaskState::Cancelled,
        }
    }
}

/// `{"reason"?}`: the body of the endings and revocations.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReasonBody {
    #[serde(default)]
    pub(super) reason: Option<String>,
}

const STATES: &str = "active, completed, cancelled, expired";

pub(super) fn list(gw: &Arc<Gateway>, query: &Query) -> Result<Reply, Error> {
    let filter = TaskFilter {
        agent: query.get("agent"),
        state: query.parse_as("state", STATES)?,
    };
    let now = now_ms();
    let tasks: Vec<Task> = gw
        .tasks()
        .store()
        .tasks(&filter)
        .into_iter()
        .map(|t| current(t, now))
        .collect();
    Ok(Reply::ok(json!({ "tasks": tasks })))
}

pub(super) fn show(gw: &Arc<Gateway>, id: &str) -> Result<Reply, Error> {
    let store = gw.tasks().store();
    let now = now_ms();
    let task = store.task(id).ok_or_else(|| not_found("task", id))?;
    let grants = store.grants(
        &GrantFilter {
            task_id: Some(id.to_owned()),
            ..GrantFilter::default()
        },
        now,
    );
    let approvals: Vec<_> = store
        .approvals(
            &ApprovalFilter {
                task_id: Some(id.to_owned()),
                ..ApprovalFilter::default()
            },
            now,
        )
        .into_iter()
        .map(|a| super::approvals::current(gw, a, now))
        .collect();
    Ok(Reply::ok(json!({
        "grants": super::grants::views(gw, grants, now),
        "task": current(task, now),
        "approvals": approvals,
        "activity": store.activity(id),
    })))
}

pub(super) async fn create(gw: &Arc<Gateway>, actor: String, req: NewTask) -> Result<Reply, Error> {
    let task = blocking(gw, move |tasks, snapshot| {
        let caps = Caps {
            tasks: &snapshot.tasks,
            approvals: &snapshot.approvals,
        };
        tasks.create_task(caps, req, &actor)
    })
    .await?;
    let id = task.id.clone();
    Ok(Reply::created(json!({ "task": task }), id))
}

pub(super) async fn end(
    gw: &Arc<Gateway>,
    actor: String,
    id: String,
    end: End,
    req: ReasonBody,
) -> Result<Reply, Error> {
    let why = input::reason(req.reason, false)?;
    let task = blocking(gw, move |tasks, _| {
        tasks.end_task(&id, end.state(), &actor, &why)
    })
    .await?;
    Ok(Reply::ok(json!({ "task": current(task, now_ms()) })))
}

pub(super) async fn revoke_grants(
    gw: &Arc<Gateway>,
    actor: String,
    id: String,
    req: ReasonBody,
) -> Result<Reply, Error> {
    let why = input::reason(req.reason, false)?;
    let revoked = blocking(gw, move |tasks, _| {
        tasks.revoke_grants(&RevokeScope::Task(id), &actor, &why)
    })
    .await?;
    Ok(Reply::ok(json!({ "revoked": revoked })))
}

/// The record as of `now`: an active task past its expiry shows `expired`.
fn current(mut task: Task, now: Millis) -> Task {
    task.state = task.state_at(now);
    task
}

pub(super) fn not_found(kind: &'static str, id: &str) -> Error {
    Error::from(crate::store::Error::NotFound {
        kind,
        id: id.to_owned(),
    })
}
