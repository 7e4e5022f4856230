//! Forward stage, 2026-07-28 answers (and legacy answers about MCP tasks):
//! every message an upstream sends back to one caller — on a
//! `subscriptions/listen` stream or on the stream of one request (progress,
//! log messages) — passes this watch as it arrives. A notification about a
//! tool the caller may not see, or about an MCP task another caller
//! started, is dropped; a `tools/call` result that creates an MCP task is
//! remembered as this caller's; a `tasks/list` result keeps only the tasks
//! this caller started here.

use std::sync::Arc;

use serde_json::Value;

use super::call::{Decider, ListFilter};
use super::mcp_tasks::{self, McpTasks, Started};
use crate::forward::body::{MessageWatch, same_id};

/// `_meta` key of the task a message belongs to (2025-11-25 tasks).
const RELATED_TASK_META: &str = "io.modelcontextprotocol/related-task";

/// The watch over one request's answer.
pub(super) struct CallerWatch {
    decider: Arc<Decider>,
    tasks: Arc<McpTasks>,
    owner: String,
    /// The forwarded `tools/call`s whose results may create an MCP task:
    /// their ids, and what is remembered if one does.
    calls: Vec<(Value, Started)>,
    /// The ids of the forwarded `tasks/list` requests.
    task_lists: Vec<Value>,
}

impl CallerWatch {
    pub(super) fn new(
        decider: Arc<Decider>,
        tasks: Arc<McpTasks>,
        owner: String,
        calls: Vec<(Value, Started)>,
        task_lists: Vec<Value>,
    ) -> Self {
        Self {
            decider,
            tasks,
            owner,
            calls,
            task_lists,
        }
    }

    /// Leaves in a `tasks/list` result only the tasks this caller started
    /// on this route; true if any was taken out.
    fn keep_own_tasks(&self, message: &mut Value) -> bool {
        let Some(id) = message.get("id") else {
            return false;
        };
        if !self.task_lists.iter().any(|l| same_id(l, id)) {
            return false;
        }
        let Some(listed) = message
            .get_mut("result")
            .and_then(|r| r.get_mut("tasks"))
            .and_then(Value::as_array_mut)
        else {
            return false;
        };
        let route = &self.decider.route.name;
        let before = listed.len();
        listed.retain(|task| {
            task.get("taskId")
                .and_then(Value::as_str)
                .is_some_and(|id| self.tasks.owned(route, id, &self.owner).is_some())
        });
        listed.len() != before
    }

    /// Remembers the MCP task a `tools/call` result creates, if it does.
    fn note(&self, id: &Value, message: &Value) {
        let Some((_, started)) = self.calls.iter().find(|(call, _)| call == id) else {
            return;
        };
        let Some((task_id, ttl_ms)) = message.get("result").and_then(mcp_tasks::created) else {
            return;
        };
        self.tasks
            .started(&self.decider.route.name, task_id, ttl_ms, started.clone());
    }

    /// False for a notification naming an MCP task this caller did not
    /// start here, or a tool policy hides from it.
    fn may_see(&self, method: &str, params: &Value) -> bool {
        let route = &self.decider.route.name;
        if let Some(task_id) = task_named(method, params)
            && self.tasks.owned(route, task_id, &self.owner).is_none()
        {
            tracing::debug!(route = %route, method, "dropped a notification about another caller's MCP task");
            return false;
        }
        if let Some(tool) = tool_named(method, params) {
            let filter = ListFilter::new(Arc::clone(&self.decider));
            if !filter.shows_now(tool) {
                tracing::debug!(route = %route, method, "dropped a notification about a tool hidden from the caller");
                return false;
            }
        }
        true
    }
}

impl MessageWatch for CallerWatch {
    fn pass(&self, message: &Value) -> bool {
        let method = message.get("method").and_then(Value::as_str);
        match (method, message.get("id")) {
            (None, Some(id)) => {
                self.note(id, message);
                true
            }
            (Some(method), None) => {
                self.may_see(method, message.get("params").unwrap_or(&Value::Null))
            }
            // A request of the server's own, or no message at all: not a
            // notification, and not this watch's to judge.
            (Some(_), Some(_)) | (None, None) => true,
        }
    }

    fn edit(&self, message: &mut Value) -> bool {
        self.keep_own_tasks(message)
    }

    fn reads_json(&self) -> bool {
        !self.calls.is_empty() || !self.task_lists.is_empty()
    }
}

/// The MCP task a notification is about: the task of a task status
/// notification, or the related task its `_meta` names.
fn task_named<'a>(method: &str, params: &'a Value) -> Option<&'a str> {
    let status = match method {
        "notifications/tasks" | "notifications/tasks/status" => params.get("taskId"),
        _ => None,
    };
    status
        .or_else(|| {
            params
                .get("_meta")
                .and_then(|m| m.get(RELATED_TASK_META))
                .and_then(|t| t.get("taskId"))
        })
        .and_then(Value::as_str)
}

/// The tool a notification is about: its `toolName`, or the `name` of a
/// notification about one tool (`notifications/tools/…` other than the
/// list-changed signal, which names none).
fn tool_named<'a>(method: &str, params: &'a Value) -> Option<&'a str> {
    let named = match method {
        "notifications/tools/list_changed" => None,
        m if m.starts_with("notifications/tools/") => params.get("name"),
        _ => None,
    };
    named
        .or_else(|| params.get("toolName"))
        .and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn notifications_name_tasks_and_tools_where_they_say_so() {
        let p = json!({"taskId": "t1", "status": "working"});
        assert_eq!(task_named("notifications/tasks", &p), Some("t1"));
        assert_eq!(task_named("notifications/tasks/status", &p), Some("t1"));
        assert_eq!(task_named("notifications/progress", &p), None);
        let p = json!({"progressToken": 1, "_meta": {RELATED_TASK_META: {"taskId": "t2"}}});
        assert_eq!(task_named("notifications/progress", &p), Some("t2"));

        assert_eq!(
            tool_named("notifications/tools/list_changed", &json!({"name": "x"})),
            None
        );
        assert_eq!(
            tool_named("notifications/tools/updated", &json!({"name": "x"})),
            Some("x")
        );
        assert_eq!(
            tool_named("notifications/message", &json!({"toolName": "y"})),
            Some("y")
        );
        assert_eq!(
            tool_named("notifications/message", &json!({"name": "y"})),
            None
        );
        assert_eq!(
            tool_named(
                "notifications/resources/updated",
                &json!({"uri": "file:///a"})
            ),
            None
        );
    }
}
