//! Admin API, approvals: list, show (with the parked call's arguments),
//! approve (creating the grant) and deny (with a reason).

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;

use super::error::Error;
use super::input::{self, Query};
use super::routes::{Reply, blocking};
use super::tasks::not_found;
use crate::gateway::Gateway;
use crate::store::model::now_ms;
use crate::store::{Approval, ApprovalFilter, Millis};
use crate::tasks::{ApproveRequest, Caps};

/// `POST /v1/approvals/{id}/deny`: the reason is required.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DenyBody {
    pub(super) reason: String,
}

const STATES: &str = "pending, approved, denied, expired";

pub(super) fn list(gw: &Arc<Gateway>, query: &Query) -> Result<Reply, Error> {
    let filter = ApprovalFilter {
        state: query.parse_as("state", STATES)?,
        task_id: query.get("task"),
        agent: query.get("agent"),
    };
    let now = now_ms();
    let approvals: Vec<Approval> = gw
        .tasks()
        .store()
        .approvals(&filter, now)
        .into_iter()
        .map(|a| current(gw, a, now))
        .collect();
    Ok(Reply::ok(json!({ "approvals": approvals })))
}

pub(super) fn show(gw: &Arc<Gateway>, id: &str) -> Result<Reply, Error> {
    let approval = gw
        .tasks()
        .store()
        .approval(id)
        .ok_or_else(|| not_found("approval", id))?;
    Ok(Reply::ok(
        json!({ "approval": current(gw, approval, now_ms()) }),
    ))
}

pub(super) async fn approve(
    gw: &Arc<Gateway>,
    actor: String,
    id: String,
    req: ApproveRequest,
) -> Result<Reply, Error> {
    let (approval, grant) = blocking(gw, move |tasks, snapshot| {
        let caps = Caps {
            tasks: &snapshot.tasks,
            approvals: &snapshot.approvals,
        };
        tasks.approve(caps, &id, req, &actor)
    })
    .await?;
    let now = now_ms();
    let grant = super::grants::views(gw, vec![grant], now);
    Ok(Reply::ok(json!({
        "approval": current(gw, approval, now),
        "grant": grant.first(),
    })))
}

pub(super) async fn deny(
    gw: &Arc<Gateway>,
    actor: String,
    id: String,
    req: DenyBody,
) -> Result<Reply, Error> {
    let why = input::reason(Some(req.reason), true)?;
    let approval = blocking(gw, move |tasks, _| tasks.deny(&id, &actor, &why)).await?;
    Ok(Reply::ok(
        json!({ "approval": current(gw, approval, now_ms()) }),
    ))
}

/// The record as an operator sees it: as of `now` (a pending approval past
/// its expiry shows `expired`), its arguments masked as the decision log
/// masks them (`audit.mask`).
pub(super) fn current(gw: &Gateway, mut approval: Approval, now: Millis) -> Approval {
    approval.state = approval.state_at(now);
    if let Some(audit) = gw.recorder().audit() {
        approval.arguments = audit.masks().at("", &approval.arguments);
    }
    approval
}
