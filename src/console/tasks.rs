//! Operator console, tasks and grants: the task list (filtered by agent and
//! state, with forms to create a task and to revoke every grant of an
//! agent) and a task's page — its grants (with revoke), counters, recent
//! calls and approvals, and forms to issue a grant, revoke them all, or end
//! the task. Read through the admin API as the signed-in operator.

use std::collections::BTreeMap;

use askama::Template;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;

use super::page::{self, Chrome};
use super::session::Session;
use super::{Ctx, Error, api, view};
use crate::Body;
use crate::store::model::now_ms;
use crate::store::{Activity, Approval, Grant, GrantSource, Task};

const STATES: [&str; 4] = ["active", "completed", "cancelled", "expired"];

/// A task in a table.
#[derive(Debug)]
pub(crate) struct TaskRow {
    pub(crate) id: String,
    pub(crate) agent: String,
    pub(crate) on_behalf_of: Option<String>,
    pub(crate) purpose: String,
    pub(crate) labels: String,
    pub(crate) state: &'static str,
    pub(crate) created: String,
    pub(crate) created_by: String,
    pub(crate) expires: String,
    pub(crate) ended: Option<String>,
}

impl TaskRow {
    fn new(t: Task, now: u64) -> Self {
        let labels = t
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let ended = t.ended.as_ref().map(|e| {
            let why = if e.why.is_empty() {
                String::new()
            } else {
                format!(": {}", e.why)
            };
            format!("by {} {}{why}", e.by, view::relative(e.at_ms, now))
        });
        Self {
            state: t.state_at(now).as_str(),
            created: view::utc(t.created_at_ms),
            expires: view::relative(t.expires_at_ms, now),
            id: t.id,
            agent: t.agent,
            on_behalf_of: t.on_behalf_of,
            purpose: t.purpose,
            created_by: t.created_by,
            labels,
            ended,
        }
    }
}

#[derive(Template)]
#[template(path = "console/tasks.html")]
struct ListPage {
    chrome: Chrome,
    tasks: Vec<TaskRow>,
    agent: String,
    state: String,
    states: [&'static str; 4],
    may_create: bool,
    may_revoke_agent: bool,
}

#[derive(Deserialize)]
struct Listed {
    tasks: Vec<Task>,
}

/// `GET /console/tasks?agent=&state=`.
pub(crate) async fn list(ctx: &Ctx, session: &Session) -> Result<Response<Body>, Error> {
    let query: BTreeMap<String, String> =
        form_urlencoded::parse(ctx.head.uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let agent = query.get("agent").cloned().unwrap_or_default();
    let state = query.get("state").cloned().unwrap_or_default();
    let api_query = form_urlencoded::Serializer::new(String::new())
        .append_pair("agent", &agent)
        .append_pair("state", &state)
        .finish();
    let answer = get(ctx, session, &format!("/v1/tasks?{api_query}")).await;
    let mut listed: Listed = api::read(answer)?;
    listed
        .tasks
        .sort_by_key(|t| std::cmp::Reverse(t.created_at_ms));
    let now = now_ms();
    let op = &session.operator;
    let page = ListPage {
        chrome: Chrome::new(ctx, session, "tasks"),
        tasks: listed
            .tasks
            .into_iter()
            .map(|t| TaskRow::new(t, now))
            .collect(),
        agent,
        state,
        states: STATES,
        may_create: ctx.api.allows(op, &Method::POST, "/v1/tasks"),
        may_revoke_agent: ctx
            .api
            .allows(op, &Method::POST, "/v1/agents/revoke-grants"),
    };
    page::html(StatusCode::OK, &page)
}

/// A grant as the API shows it (with `state`).
#[derive(Debug, Deserialize)]
struct GrantView {
    #[serde(flatten)]
    grant: Grant,
    state: String,
}

#[derive(Deserialize)]
struct Shown {
    task: Task,
    grants: Vec<GrantView>,
    approvals: Vec<Approval>,
    activity: Activity,
}

/// A grant in the task's table.
#[derive(Debug)]
pub(crate) struct GrantRow {
    pub(crate) id: String,
    pub(crate) tool: String,
    pub(crate) exact: bool,
    pub(crate) route: String,
    pub(crate) constraints: Vec<String>,
    pub(crate) uses: String,
    pub(crate) expires: String,
    pub(crate) state: String,
    pub(crate) live: bool,
    pub(crate) granted_by: String,
    pub(crate) source: String,
    pub(crate) reason: String,
    pub(crate) revoked: Option<String>,
}

impl GrantRow {
    fn new(v: GrantView, now: u64) -> Self {
        let g = v.grant;
        let source = match &g.source {
            GrantSource::Operator => "operator".to_owned(),
            GrantSource::Approval { approval_id } => format!("approval {approval_id}"),
            GrantSource::Policy { approval_id, .. } => format!("policy, request {approval_id}"),
        };
        let mut expires = view::relative(g.expires_at_ms, now);
        if let Some(nb) = g.not_before_ms.filter(|nb| *nb > now) {
            expires = format!("from {} to {expires}", view::relative(nb, now));
        }
        Self {
            uses: match g.max_uses {
                Some(max) => format!("{} of {max}", g.uses),
                None => format!("{} (no limit)", g.uses),
            },
            constraints: g.constraints.iter().map(view::constraint).collect(),
            revoked: g
                .revoked
                .as_ref()
                .map(|e| format!("by {} {}: {}", e.by, view::relative(e.at_ms, now), e.why)),
            live: v.state == "live",
            state: v.state,
            route: g.route.unwrap_or_else(|| "any".to_owned()),
            expires,
            source,
            id: g.id,
            tool: g.tool,
            exact: g.tool_exact,
            granted_by: g.granted_by,
            reason: g.reason,
        }
    }
}

/// An approval in the task's table.
#[derive(Debug)]
pub(crate) struct ApprovalRow {
    pub(crate) id: String,
    pub(crate) tool: String,
    pub(crate) state: &'static str,
    pub(crate) why: String,
    pub(crate) decided: String,
    pub(crate) created: String,
}

/// A recent call of the task.
#[derive(Debug)]
pub(crate) struct CallRow {
    pub(crate) tool: String,
    pub(crate) route: String,
    pub(crate) decision: String,
    pub(crate) at: String,
}

#[derive(Template)]
#[template(path = "console/task.html")]
struct TaskPage {
    chrome: Chrome,
    task: TaskRow,
    active: bool,
    grants: Vec<GrantRow>,
    approvals: Vec<ApprovalRow>,
    total: u64,
    denied: u64,
    per_tool: Vec<(String, u64)>,
    recent: Vec<CallRow>,
    may_issue: bool,
    may_revoke: bool,
    may_end: bool,
    here: String,
}

/// `GET /console/tasks/{id}`.
pub(crate) async fn show(ctx: &Ctx, session: &Session, id: &str) -> Result<Response<Body>, Error> {
    let answer = get(ctx, session, &format!("/v1/tasks/{id}")).await;
    let shown: Shown = api::read(answer)?;
    let now = now_ms();
    let op = &session.operator;
    let path = |suffix: &str| format!("/v1/tasks/{id}{suffix}");
    let task = TaskRow::new(shown.task, now);
    let approvals = shown
        .approvals
        .into_iter()
        .map(|a| ApprovalRow {
            state: a.state_at(now).as_str(),
            decided: a.decided.as_ref().map_or_else(String::new, |e| {
                format!("{} by {}: {}", view::relative(e.at_ms, now), e.by, e.why)
            }),
            created: view::relative(a.created_at_ms, now),
            id: a.id,
            tool: a.tool,
            why: a.why,
        })
        .collect();
    let recent = shown
        .activity
        .recent
        .into_iter()
        .rev()
        .map(|c| CallRow {
            at: view::relative(c.at_ms, now),
            tool: c.tool.clone(),
            route: c.route.clone(),
            decision: c.decision.clone(),
        })
        .collect();
    let page = TaskPage {
        chrome: Chrome::new(ctx, session, "tasks"),
        active: task.state == "active",
        here: format!("/console/tasks/{}", task.id),
        task,
        grants: shown
            .grants
            .into_iter()
            .map(|g| GrantRow::new(g, now))
            .collect(),
        approvals,
        total: shown.activity.counters.total,
        denied: shown.activity.counters.denied,
        per_tool: shown.activity.counters.per_tool.into_iter().collect(),
        recent,
        may_issue: ctx.api.allows(op, &Method::POST, "/v1/grants"),
        may_revoke: ctx.api.allows(op, &Method::POST, "/v1/grants/any/revoke"),
        may_end: ctx.api.allows(op, &Method::POST, &path("/complete")),
    };
    page::html(StatusCode::OK, &page)
}

async fn get(ctx: &Ctx, session: &Session, path: &str) -> api::Answer {
    ctx.api
        .call(&session.operator, Method::GET, path, Bytes::new())
        .await
}
