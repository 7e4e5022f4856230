//! Operator CLI: which admin API request each command makes — method, path
//! with query, JSON body — and what shape of answer to render. Pure
//! mapping, no I/O, so every command's request is unit-tested.

use http::Method;
use serde_json::{Map, Value, json};

use super::args::{ApprovalCommand, GrantCommand, OpsCommand, TaskCommand};

/// One admin API request.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub(crate) method: Method,
    /// Path and query, e.g. `/v1/tasks?agent=a`.
    pub(crate) path: String,
    pub(crate) body: Option<Value>,
}

/// What the answer holds, i.e. how to print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `{"tasks": [...]}`
    Tasks,
    /// `{"task", "grants", "approvals", "activity"}`
    TaskDetail,
    /// `{"task"}`
    Task,
    /// `{"grants": [...]}`
    Grants,
    /// `{"grant"}`
    Grant,
    /// `{"revoked": [ids]}`
    Revoked,
    /// `{"approvals": [...]}`
    Approvals,
    /// `{"approval"}` and, after approving, `"grant"`
    Approval,
}

impl OpsCommand {
    /// The request this command makes and the shape of its answer.
    pub(crate) fn call(&self) -> (Call, Shape) {
        match self {
            Self::Task { command, .. } => task(command),
            Self::Grant { command, .. } => grant(command),
            Self::Approval { command, .. } => approval(command),
        }
    }
}

fn task(command: &TaskCommand) -> (Call, Shape) {
    match command {
        TaskCommand::List { agent, state } => (
            get(&query("/v1/tasks", &[("agent", agent), ("state", state)])),
            Shape::Tasks,
        ),
        TaskCommand::Show { id } => (
            get(&format!("/v1/tasks/{}", segment(id))),
            Shape::TaskDetail,
        ),
        TaskCommand::Create {
            agent,
            purpose,
            on_behalf_of,
            issuer,
            labels,
            ttl,
        } => {
            let mut body = Map::new();
            body.insert("agent".into(), json!(agent));
            insert_opt(&mut body, "on_behalf_of", on_behalf_of);
            insert_opt(&mut body, "issuer", issuer);
            body.insert("purpose".into(), json!(purpose));
            if !labels.is_empty() {
                let labels: Map<String, Value> = labels
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                body.insert("labels".into(), Value::Object(labels));
            }
            insert_opt(&mut body, "ttl", ttl);
            (post("/v1/tasks".into(), Value::Object(body)), Shape::Task)
        }
        TaskCommand::Complete { id, reason } => (
            post(
                format!("/v1/tasks/{}/complete", segment(id)),
                reason_body(reason),
            ),
            Shape::Task,
        ),
        TaskCommand::Cancel { id, reason } => (
            post(
                format!("/v1/tasks/{}/cancel", segment(id)),
                reason_body(reason),
            ),
            Shape::Task,
        ),
    }
}

fn grant(command: &GrantCommand) -> (Call, Shape) {
    match command {
        GrantCommand::List { task, agent, live } => {
            let live = live.then(|| "true".to_owned());
            let path = query(
                "/v1/grants",
                &[("task", task), ("agent", agent), ("live", &live)],
            );
            (get(&path), Shape::Grants)
        }
        GrantCommand::Show { id } => (get(&format!("/v1/grants/{}", segment(id))), Shape::Grant),
        GrantCommand::Create {
            task,
            tool,
            route,
            constraints,
            ttl,
            expires_at,
            not_before,
            max_uses,
            reason,
        } => {
            let mut body = Map::new();
            body.insert("task_id".into(), json!(task));
            body.insert("tool".into(), json!(tool));
            insert_opt(&mut body, "route", route);
            if !constraints.is_empty() {
                body.insert("constraints".into(), json!(constraints));
            }
            insert_opt(&mut body, "not_before", not_before);
            insert_opt(&mut body, "expires_at", expires_at);
            insert_opt(&mut body, "ttl", ttl);
            insert_opt(&mut body, "max_uses", max_uses);
            body.insert("reason".into(), json!(reason));
            (post("/v1/grants".into(), Value::Object(body)), Shape::Grant)
        }
        GrantCommand::Revoke {
            id,
            task,
            agent,
            reason,
        } => revoke(id.as_deref(), task.as_deref(), agent.as_deref(), reason),
    }
}

/// clap's `which` group guarantees exactly one of id, task, agent.
fn revoke(
    id: Option<&str>,
    task: Option<&str>,
    agent: Option<&str>,
    reason: &Option<String>,
) -> (Call, Shape) {
    match (id, task, agent) {
        (Some(id), _, _) => (
            post(
                format!("/v1/grants/{}/revoke", segment(id)),
                reason_body(reason),
            ),
            Shape::Grant,
        ),
        (None, Some(task), _) => (
            post(
                format!("/v1/tasks/{}/grants/revoke", segment(task)),
                reason_body(reason),
            ),
            Shape::Revoked,
        ),
        (None, None, agent) => {
            let mut body = Map::new();
            body.insert("agent".into(), json!(agent.unwrap_or_default()));
            insert_opt(&mut body, "reason", reason);
            (
                post("/v1/agents/revoke-grants".into(), Value::Object(body)),
                Shape::Revoked,
            )
        }
    }
}

fn approval(command: &ApprovalCommand) -> (Call, Shape) {
    match command {
        ApprovalCommand::List { state, task, agent } => (
            get(&query(
                "/v1/approvals",
                &[("state", state), ("task", task), ("agent", agent)],
            )),
            Shape::Approvals,
        ),
        ApprovalCommand::Show { id } => (
            get(&format!("/v1/approvals/{}", segment(id))),
            Shape::Approval,
        ),
        ApprovalCommand::Approve {
            id,
            ttl,
            max_uses,
            reason,
        } => {
            let mut body = Map::new();
            insert_opt(&mut body, "ttl", ttl);
            insert_opt(&mut body, "max_uses", max_uses);
            insert_opt(&mut body, "reason", reason);
            (
                post(
                    format!("/v1/approvals/{}/approve", segment(id)),
                    Value::Object(body),
                ),
                Shape::Approval,
            )
        }
        ApprovalCommand::Deny { id, reason } => (
            post(
                format!("/v1/approvals/{}/deny", segment(id)),
                json!({ "reason": reason }),
            ),
            Shape::Approval,
        ),
    }
}

fn get(path: &str) -> Call {
    Call {
        method: Method::GET,
        path: path.to_owned(),
        body: None,
    }
}

fn post(path: String, body: Value) -> Call {
    Call {
        method: Method::POST,
        path,
        body: Some(body),
    }
}

/// `{"reason": ...}`, or `{}` without one.
fn reason_body(reason: &Option<String>) -> Value {
    let mut body = Map::new();
    insert_opt(&mut body, "reason", reason);
    Value::Object(body)
}

fn insert_opt<T: serde::Serialize>(body: &mut Map<String, Value>, key: &str, value: &Option<T>) {
    if let Some(v) = value {
        body.insert(key.to_owned(), json!(v));
    }
}

/// `path?k=v&…` with the given parameters (URL-encoded); unset ones left out.
fn query(path: &str, params: &[(&str, &Option<String>)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (key, value) in params {
        if let Some(v) = value {
            query.append_pair(key, v);
            any = true;
        }
    }
    if any {
        format!("{path}?{}", query.finish())
    } else {
        path.to_owned()
    }
}

/// What [`segment`] leaves as it is: letters, digits, `-`, `_`, `~`.
/// Dots are encoded too (no `..`), so an id can never change the path it
/// is put in.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'~');

/// An id as one path segment, percent-encoded.
pub(crate) fn segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}
