//! Decide stage, MCP tasks: `tasks/get`, `tasks/update` and `tasks/cancel`
//! (2026-07-28 tasks extension) and `tasks/get`, `tasks/result` and
//! `tasks/cancel` (2025-11-25) touch an MCP task a `tools/call` started.
//! Only the caller that started it, on the route it started on, may touch
//! it, whatever the era; each follow-up is then decided by policy like a
//! call of the task's tool (method `tasks/get`, …), in the toolgate task
//! the call ran in, keeping the grant the call spent.

use super::call::{Asked, Call};
use super::mcp_tasks::McpTasks;
use super::*;
use crate::decide::{Reason, Verdict};
use crate::mcp::Message;

/// The requests that touch one task, in either era.
pub(super) const METHODS: [&str; 4] = ["tasks/get", "tasks/result", "tasks/update", "tasks/cancel"];

/// What becomes of one follow-up: forwarded (`None`) or answered here.
pub(super) async fn follow_up(
    call: &Call<'_>,
    tasks: &McpTasks,
    message: &Message,
    method: &str,
) -> Result<Option<Value>, Problem> {
    let id = message.id.clone().unwrap_or(Value::Null);
    let params = message.params().unwrap_or(&Value::Null);
    let Some(task_id) = params.get("taskId").and_then(Value::as_str) else {
        return Ok(Some(answer::invalid_params(
            &id,
            "params.taskId must be a string",
        )));
    };
    let decider = &call.decider;
    let refusal = |decision: Decision| {
        let text = decision.refusal_text().unwrap_or_default();
        answer::request_refusal(&id, method, decision.reason().as_str(), &text)
    };
    let Some(started) = tasks.owned(&decider.route.name, task_id, &decider.owner()) else {
        let asked = Asked::Method { method, params };
        let decision = decider.refuse(
            asked,
            Decision::new(
                Verdict::Deny,
                Reason::TaskInvalid,
                format!("MCP task {task_id:?} was not started by this caller on this route"),
            ),
        );
        return match message.kind {
            MessageKind::Request => Ok(Some(refusal(decision))),
            MessageKind::Notification | MessageKind::Response => Err(Problem::Denied {
                route: decider.route.name.clone(),
                reason: decision.reason().as_str(),
                message: decision.refusal_text().unwrap_or_default(),
            }),
        };
    };
    let tool = started.tool.clone();
    let asked = Asked::Tool {
        name: &tool,
        arguments: params,
        method,
    };
    let decision = call.decide_follow_up(asked, Some(started)).await;
    if decision.refusal_text().is_none() {
        return Ok(None);
    }
    match message.kind {
        MessageKind::Request => Ok(Some(refusal(decision))),
        MessageKind::Notification | MessageKind::Response => Err(Problem::Denied {
            route: decider.route.name.clone(),
            reason: decision.reason().as_str(),
            message: decision.refusal_text().unwrap_or_default(),
        }),
    }
}
