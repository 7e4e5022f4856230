//! Admin API, which endpoint a request is for: the path table, the role
//! each endpoint needs, the audit name of each change, and the dispatch to
//! the handlers. Every authenticated change is recorded here, once, with
//! its actor: an audit line and `toolgate_admin_actions_total`.

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::Error;
use super::input::{self, Query};
use super::{approvals, grants, policies, reports, tasks};
use crate::Body;
use crate::config::Role;
use crate::gateway::Gateway;
use crate::snapshot::Snapshot;

/// One admin endpoint, with the ids its path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Endpoint {
    Whoami,
    ListTasks,
    CreateTask,
    ShowTask(String),
    EndTask(String, tasks::End),
    RevokeTaskGrants(String),
    ListGrants,
    IssueGrant,
    ShowGrant(String),
    RevokeGrant(String),
    RevokeAgentGrants,
    ListApprovals,
    ShowApproval(String),
    Approve(String),
    Deny(String),
    ListPolicies,
    ReloadPolicies,
    ReloadConfig,
    Decisions,
    Report(reports::Kind),
}

/// Finds the endpoint for a method and path: 404 for an unknown path,
/// 405 (naming the methods it takes) for a known path.
pub(super) fn route(method: &Method, path: &str) -> Result<Endpoint, Error> {
    use Endpoint as E;
    let not_found = || Error::NotFound(path.to_owned());
    let path_ok = crate::accept::normalize_path(path).map_err(|_| not_found())?;
    let segments: Vec<String> = path_ok[1..].split('/').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(not_found());
    }
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    let id = |i: usize| s[i].to_owned();
    let (get, post) = match s.as_slice() {
        ["v1", "whoami"] => (Some(E::Whoami), None),
        ["v1", "tasks"] => (Some(E::ListTasks), Some(E::CreateTask)),
        ["v1", "tasks", _] => (Some(E::ShowTask(id(2))), None),
        ["v1", "tasks", _, "complete"] => (None, Some(E::EndTask(id(2), tasks::End::Complete))),
        ["v1", "tasks", _, "cancel"] => (None, Some(E::EndTask(id(2), tasks::End::Cancel))),
        ["v1", "tasks", _, "grants", "revoke"] => (None, Some(E::RevokeTaskGrants(id(2)))),
        ["v1", "grants"] => (Some(E::ListGrants), Some(E::IssueGrant)),
        ["v1", "grants", _] => (Some(E::ShowGrant(id(2))), None),
        ["v1", "grants", _, "revoke"] => (None, Some(E::RevokeGrant(id(2)))),
        ["v1", "agents", "revoke-grants"] => (None, Some(E::RevokeAgentGrants)),
        ["v1", "approvals"] => (Some(E::ListApprovals), None),
        ["v1", "approvals", _] => (Some(E::ShowApproval(id(2))), None),
        ["v1", "approvals", _, "approve"] => (None, Some(E::Approve(id(2)))),
        ["v1", "approvals", _, "deny"] => (None, Some(E::Deny(id(2)))),
        ["policies"] | ["v1", "policies"] => (Some(E::ListPolicies), None),
        ["policies", "reload"] | ["v1", "policies", "reload"] => (None, Some(E::ReloadPolicies)),
        ["v1", "config", "reload"] => (None, Some(E::ReloadConfig)),
        ["v1", "decisions"] => (Some(E::Decisions), None),
        ["v1", "reports", "denials"] => (Some(E::Report(reports::Kind::Denials)), None),
        ["v1", "reports", "drift"] => (Some(E::Report(reports::Kind::Drift)), None),
        ["v1", "reports", "grants", _] => (Some(E::Report(reports::Kind::Trace(id(3)))), None),
        _ => return Err(not_found()),
    };
    let allow = match (&get, &post) {
        (Some(_), Some(_)) => "GET, POST",
        (Some(_), None) => "GET",
        (None, _) => "POST",
    };
    match *method {
        Method::GET => get,
        Method::POST => post,
        _ => None,
    }
    .ok_or_else(|| Error::MethodNotAllowed {
        path: path.to_owned(),
        method: method.clone(),
        allow,
    })
}

impl Endpoint {
    /// The least role that may call it.
    pub(super) fn role(&self) -> Role {
        match self {
            Self::Whoami
            | Self::ListTasks
            | Self::ShowTask(_)
            | Self::ListGrants
            | Self::ShowGrant(_)
            | Self::ListApprovals
            | Self::ShowApproval(_)
            | Self::ListPolicies
            | Self::Decisions
            | Self::Report(_) => Role::Viewer,
            Self::CreateTask
            | Self::EndTask(..)
            | Self::RevokeTaskGrants(_)
            | Self::IssueGrant
            | Self::RevokeGrant(_)
            | Self::RevokeAgentGrants
            | Self::Approve(_)
            | Self::Deny(_) => Role::Operator,
            Self::ReloadPolicies | Self::ReloadConfig => Role::Admin,
        }
    }

    /// The audit name of a change; `None` for reads, which are not audited.
    pub(super) fn action(&self) -> Option<&'static str> {
        match self {
            Self::CreateTask => Some("task.create"),
            Self::EndTask(_, tasks::End::Complete) => Some("task.complete"),
            Self::EndTask(_, tasks::End::Cancel) => Some("task.cancel"),
            Self::RevokeTaskGrants(_) => Some("task.revoke_grants"),
            Self::IssueGrant => Some("grant.issue"),
            Self::RevokeGrant(_) => Some("grant.revoke"),
            Self::RevokeAgentGrants => Some("agent.revoke_grants"),
            Self::Approve(_) => Some("approval.approve"),
            Self::Deny(_) => Some("approval.deny"),
            Self::ReloadPolicies => Some("policies.reload"),
            Self::ReloadConfig => Some("config.reload"),
            Self::Whoami
            | Self::ListTasks
            | Self::ShowTask(_)
            | Self::ListGrants
            | Self::ShowGrant(_)
            | Self::ListApprovals
            | Self::ShowApproval(_)
            | Self::ListPolicies
            | Self::Decisions
            | Self::Report(_) => None,
        }
    }

    /// The id the path names, if any.
    fn target(&self) -> Option<&str> {
        match self {
            Self::ShowTask(id)
            | Self::EndTask(id, _)
            | Self::RevokeTaskGrants(id)
            | Self::ShowGrant(id)
            | Self::RevokeGrant(id)
            | Self::ShowApproval(id)
            | Self::Approve(id)
            | Self::Deny(id) => Some(id),
            Self::Whoami
            | Self::ListTasks
            | Self::CreateTask
            | Self::ListGrants
            | Self::IssueGrant
            | Self::RevokeAgentGrants
            | Self::ListApprovals
            | Self::ListPolicies
            | Self::ReloadPolicies
            | Self::ReloadConfig
            | Self::Decisions
            | Self::Report(_) => None,
        }
    }
}

/// A handler's answer: status, JSON body, and for a change whose target
/// the path does not name (a created task, an agent) that target.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: StatusCode,
    pub(super) body: Value,
    pub(super) target: Option<String>,
}

impl Reply {
    pub(super) fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
            target: None,
        }
    }

    pub(super) fn created(body: Value, target: String) -> Self {
        Self {
            status: StatusCode::CREATED,
            body,
            target: Some(target),
        }
    }

    pub(super) fn into_response(self) -> Response<Body> {
        crate::answer::json_response(self.status, &self.body)
    }
}

/// Checks the caller's role, reads the body, runs the endpoint and records
/// a change.
pub(super) async fn serve(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    endpoint: &Endpoint,
    req: Request<Incoming>,
) -> Result<Reply, Error> {
    let (parts, body) = req.into_parts();
    let result = match caller.require(endpoint.role()) {
        // Only changes take a body; a read's is never looked at.
        Ok(()) if parts.method == Method::POST => match input::read(&parts.headers, body).await {
            Ok(bytes) => run(gateway, caller, endpoint, parts.uri.query(), &bytes).await,
            Err(e) => Err(e),
        },
        Ok(()) => run(gateway, caller, endpoint, parts.uri.query(), &[]).await,
        Err(e) => Err(e),
    };
    audit(gateway, caller, endpoint, &result);
    result
}

/// One admin call made in-process (the operator console): the same path
/// table, role check, handlers and audit record as over HTTP, with the body
/// already read (at most [`input::MAX_BODY`] bytes is the caller's duty).
pub(super) async fn dispatch(
    gateway: &Arc<Gateway>,
    caller: &Caller,
    method: &Method,
    path_and_query: &str,
    body: &[u8],
) -> Result<Reply, Error> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let endpoint = route(method, path)?;
    let result = match caller.require(endpoint.role()) {
        Ok(()) => run(gateway, caller, &endpoint, query, body).await,
        Err(e) => Err(e),
    };
    audit(gateway, caller, &endpoint, &result);
    result
}

/// Records a change (not a read): an audit line with its actor and the
/// `toolgate_admin_actions_total` sample.
fn audit(gateway: &Gateway, caller: &Caller, endpoint: &Endpoint, result: &Result<Reply, Error>) {
    if let Some(action) = endpoint.action() {
        let (outcome, target) = match result {
            Ok(reply) => ("ok", reply.target.as_deref().or(endpoint.target())),
            Err(e) => (e.code(), endpoint.target()),
        };
        gateway.recorder().admin_action(action, outcome);
        gateway.recorder().admin_event(crate::audit::AdminEntry {
            at_ms: crate::audit::now_ms(),
            actor: caller.actor.clone(),
            role: caller.role.as_str(),
            action: action.to_owned(),
            target: target.map(str::to_owned),
            outcome: outcome.to_owned(),
            remote: None,
        });
        tracing::info!(
            target: "toolgate::audit",
            actor = %caller.actor,
            role = caller.role.as_str(),
            action,
            target_id = target.unwrap_or("-"),
            outcome,
            "admin action"
        );
    }
}

async fn run(
    gw: &Arc<Gateway>,
    caller: &Caller,
    endpoint: &Endpoint,
    query: Option<&str>,
    body: &[u8],
) -> Result<Reply, Error> {
    use Endpoint as E;
    let raw_query = query;
    let query = |allowed: &[&str]| Query::parse(query, allowed);
    let actor = caller.actor.clone();
    match endpoint {
        E::Whoami => Ok(Reply::ok(
            json!({"actor": caller.actor, "role": caller.role.as_str()}),
        )),
        E::ListTasks => tasks::list(gw, &query(&["agent", "state"])?),
        E::ShowTask(id) => tasks::show(gw, id),
        E::CreateTask => tasks::create(gw, actor, input::parse(body)?).await,
        E::EndTask(id, end) => tasks::end(gw, actor, id.clone(), *end, input::parse(body)?).await,
        E::RevokeTaskGrants(id) => {
            tasks::revoke_grants(gw, actor, id.clone(), input::parse(body)?).await
        }
        E::ListGrants => grants::list(gw, &query(&["task", "agent", "live"])?),
        E::ShowGrant(id) => grants::show(gw, id),
        E::IssueGrant => grants::issue(gw, actor, input::parse(body)?).await,
        E::RevokeGrant(id) => grants::revoke(gw, actor, id.clone(), input::parse(body)?).await,
        E::RevokeAgentGrants => grants::revoke_agent(gw, actor, input::parse(body)?).await,
        E::ListApprovals => approvals::list(gw, &query(&["state", "task", "agent"])?),
        E::ShowApproval(id) => approvals::show(gw, id),
        E::Approve(id) => approvals::approve(gw, actor, id.clone(), input::parse(body)?).await,
        E::Deny(id) => approvals::deny(gw, actor, id.clone(), input::parse(body)?).await,
        E::ListPolicies => Ok(policies::list(gw)),
        E::ReloadPolicies => policies::reload(gw, actor).await,
        E::ReloadConfig => policies::reload_config(gw),
        E::Decisions => reports::decisions(gw, raw_query).await,
        E::Report(kind) => reports::report(gw, kind.clone(), raw_query).await,
    }
}

/// Runs a change off the async threads: the store may wait for its disk.
pub(super) async fn blocking<T, F>(gateway: &Arc<Gateway>, change: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&crate::tasks::Tasks, &Snapshot) -> Result<T, crate::tasks::Error> + Send + 'static,
{
    let tasks = Arc::clone(gateway.tasks());
    let snapshot = gateway.snapshot();
    tokio::task::spawn_blocking(move || change(&tasks, &snapshot))
        .await
        .map_err(|e| Error::Internal(format!("the store task failed: {e}")))?
        .map_err(Error::from)
}

#[cfg(test)]
mod tests;
