//! Admin API, grants: list, show, issue, revoke one, revoke every grant of
//! an agent. Each grant is shown with `live`: usable right now.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::error::Error;
use super::input::{self, Query};
use super::routes::{Reply, blocking};
use super::tasks::{ReasonBody, not_found};
use crate::gateway::Gateway;
use crate::store::model::now_ms;
use crate::store::{Grant, GrantFilter, Millis, RevokeScope};
use crate::tasks::{Caps, NewGrant};

/// A grant as the API shows it.
#[derive(Debug, Serialize)]
pub(super) struct GrantView {
    #[serde(flatten)]
    pub(super) grant: Grant,
    /// `live`, or why not: `revoked`, `expired`, `used_up`, `task_ended`,
    /// `scheduled` (before its `not_before`).
    pub(super) state: &'static str,
    /// Usable now: `state` is `live`.
    pub(super) live: bool,
}

/// `POST /v1/agents/revoke-grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentRevoke {
    pub(super) agent: String,
    #[serde(default)]
    pub(super) reason: Option<String>,
}

pub(super) fn list(gw: &Arc<Gateway>, query: &Query) -> Result<Reply, Error> {
    let filter = GrantFilter {
        task_id: query.get("task"),
        agent: query.get("agent"),
        live_only: query.flag("live")?,
    };
    let store = gw.tasks().store();
    let now = now_ms();
    let grants = store.grants(&filter, now);
    Ok(Reply::ok(json!({ "grants": views(gw, grants, now) })))
}

pub(super) fn show(gw: &Arc<Gateway>, id: &str) -> Result<Reply, Error> {
    let store = gw.tasks().store();
    let grant = store.grant(id).ok_or_else(|| not_found("grant", id))?;
    let view = views(gw, vec![grant], now_ms());
    Ok(Reply::ok(json!({ "grant": view.first() })))
}

pub(super) async fn issue(gw: &Arc<Gateway>, actor: String, req: NewGrant) -> Result<Reply, Error> {
    let grant = blocking(gw, move |tasks, snapshot| {
        // A grant for a route that does not exist could never be used.
        if let Some(name) = req.route.as_deref()
            && !snapshot.routes().iter().any(|r| r.name == name)
        {
            let known: Vec<&str> = snapshot.routes().iter().map(|r| r.name.as_str()).collect();
            return Err(crate::tasks::Error::Invalid {
                field: "route",
                message: format!(
                    "no route is named {name:?}; the configured routes are: {}",
                    known.join(", ")
                ),
            });
        }
        let caps = Caps {
            tasks: &snapshot.tasks,
            approvals: &snapshot.approvals,
        };
        tasks.issue_grant(caps, req, &actor)
    })
    .await?;
    let id = grant.id.clone();
    let view = views(gw, vec![grant], now_ms());
    Ok(Reply::created(json!({ "grant": view.first() }), id))
}

pub(super) async fn revoke(
    gw: &Arc<Gateway>,
    actor: String,
    id: String,
    req: ReasonBody,
) -> Result<Reply, Error> {
    let why = input::reason(req.reason, false)?;
    let grant = blocking(gw, move |tasks, _| tasks.revoke_grant(&id, &actor, &why)).await?;
    let view = views(gw, vec![grant], now_ms());
    Ok(Reply::ok(json!({ "grant": view.first() })))
}

pub(super) async fn revoke_agent(
    gw: &Arc<Gateway>,
    actor: String,
    req: AgentRevoke,
) -> Result<Reply, Error> {
    if req.agent.trim().is_empty() {
        return Err(Error::Invalid("agent: is required".into()));
    }
    let why = input::reason(req.reason, false)?;
    let agent = req.agent;
    let scope = RevokeScope::Agent(agent.clone());
    let revoked = blocking(gw, move |tasks, _| {
        tasks.revoke_grants(&scope, &actor, &why)
    })
    .await?;
    Ok(Reply {
        target: Some(agent),
        ..Reply::ok(json!({ "revoked": revoked }))
    })
}

/// Grants as operators see them: their state as of `now`, and the values
/// their constraints compare with masked as the decision log masks the
/// arguments they stand for (`audit.mask`).
pub(super) fn views(gw: &Gateway, grants: Vec<Grant>, now: Millis) -> Vec<GrantView> {
    let store = gw.tasks().store();
    let masks = gw.recorder().audit().map(|a| a.masks());
    let mut tasks: HashMap<String, TaskNow> = HashMap::new();
    grants
        .into_iter()
        .map(|mut grant| {
            if let Some(masks) = masks {
                masks.constraints(&mut grant.constraints);
            }
            let task = *tasks.entry(grant.task_id.clone()).or_insert_with(|| {
                match store.task(&grant.task_id) {
                    Some(t) if t.is_active(now) => TaskNow::Active,
                    Some(t) => TaskNow::Ended {
                        at_ms: t.ended.map_or(t.expires_at_ms, |e| e.at_ms),
                    },
                    None => TaskNow::Ended { at_ms: Millis::MAX },
                }
            });
            let state = state(&grant, task, now);
            GrantView {
                live: state == "live",
                state,
                grant,
            }
        })
        .collect()
}

/// A grant's task as of now, for its `state`.
#[derive(Debug, Clone, Copy)]
enum TaskNow {
    Active,
    /// Ended (completed, cancelled, expired) at this time.
    Ended {
        at_ms: Millis,
    },
}

/// Ending a task revokes its grants in the store; those read `task_ended`
/// (the reason they stopped), a grant revoked before its task ended
/// reads `revoked`.
fn state(grant: &Grant, task: TaskNow, now: Millis) -> &'static str {
    let ended_at = match task {
        TaskNow::Active => None,
        TaskNow::Ended { at_ms } => Some(at_ms),
    };
    match (&grant.revoked, ended_at) {
        // Revoked with its task: why it had stopped before, if it had.
        (Some(r), Some(ended)) if r.at_ms >= ended && grant.expires_at_ms <= ended => "expired",
        (Some(r), Some(ended)) if r.at_ms >= ended && grant.uses_left() == Some(0) => "used_up",
        (Some(r), Some(ended)) if r.at_ms >= ended => "task_ended",
        (Some(_), _) => "revoked",
        (None, _) if now >= grant.expires_at_ms => "expired",
        (None, _) if grant.uses_left() == Some(0) => "used_up",
        (None, Some(_)) => "task_ended",
        (None, None) if grant.not_before_ms.is_some_and(|nb| now < nb) => "scheduled",
        (None, None) => "live",
    }
}
