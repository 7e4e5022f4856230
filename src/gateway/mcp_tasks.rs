//! Task-context stage, for MCP tasks (the 2026-07-28 tasks extension and
//! the experimental tasks of 2025-11-25): which caller started which MCP
//! task (a `tools/call` the upstream answered with a task), in which
//! toolgate task and with which grant, so that only that caller may get,
//! update, cancel, list or read the result of it, and so that its
//! follow-ups are decided in the context the call started in.

use dashmap::DashMap;
use serde_json::Value;

use crate::store::Millis;
use crate::store::model::now_ms;

/// Most MCP tasks remembered at once; past it, the ones nearest expiry go.
const MAX_TASKS: usize = 65_536;
/// How long a task without a `ttlMs` (or with `null`, unlimited) is kept.
const DEFAULT_KEEP_MS: u64 = 24 * 60 * 60 * 1000;
/// The longest any task is kept, whatever its `ttlMs` says.
const MAX_KEEP_MS: u64 = 7 * DEFAULT_KEEP_MS;

/// One MCP task as the gateway saw it start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Started {
    /// The caller that started it ([`crate::identify::Identity::principal`],
    /// `""` for anonymous callers, who all count as one).
    pub(crate) owner: String,
    /// The tool whose call became the task.
    pub(crate) tool: String,
    /// The toolgate task the call ran in.
    pub(crate) task: Option<String>,
    /// The grant whose use allowed the call: its follow-ups keep it.
    pub(crate) grant: Option<String>,
    until_ms: Millis,
}

/// The MCP tasks started through this gateway, per route.
#[derive(Debug, Default)]
pub(crate) struct McpTasks {
    started: DashMap<(String, String), Started>,
}

impl McpTasks {
    /// Remembers that `owner` started MCP task `task_id` on `route` with
    /// the call described; `ttl_ms` is the task's own (`None`: unlimited).
    pub(crate) fn started(
        &self,
        route: &str,
        task_id: &str,
        ttl_ms: Option<u64>,
        mut started: Started,
    ) {
        let keep = ttl_ms.unwrap_or(DEFAULT_KEEP_MS).min(MAX_KEEP_MS);
        let now = now_ms();
        started.until_ms = now.saturating_add(keep);
        if self.started.len() >= MAX_TASKS {
            self.make_room(now);
        }
        self.started
            .insert((route.to_owned(), task_id.to_owned()), started);
    }

    /// The task `task_id` on `route` if `owner` started it and it is kept.
    pub(crate) fn owned(&self, route: &str, task_id: &str, owner: &str) -> Option<Started> {
        let key = (route.to_owned(), task_id.to_owned());
        let started = self.started.get(&key).map(|s| s.clone())?;
        if started.until_ms <= now_ms() {
            self.started.remove(&key);
            return None;
        }
        (started.owner == owner).then_some(started)
    }

    fn make_room(&self, now: Millis) {
        self.started.retain(|_, s| s.until_ms > now);
        while self.started.len() >= MAX_TASKS {
            let nearest = self
                .started
                .iter()
                .min_by_key(|e| e.value().until_ms)
                .map(|e| e.key().clone());
            match nearest {
                Some(key) => {
                    self.started.remove(&key);
                }
                None => break,
            }
        }
    }
}

impl Started {
    pub(crate) fn new(
        owner: String,
        tool: String,
        task: Option<String>,
        grant: Option<String>,
    ) -> Self {
        Self {
            owner,
            tool,
            task,
            grant,
            until_ms: 0,
        }
    }
}

/// The task a `CreateTaskResult` creates: `(taskId, ttl in ms)`, if
/// `result` is one: 2026-07-28 `{resultType: "task", taskId, ttlMs}`, or
/// 2025-11-25 `{task: {taskId, ttl}}`.
pub(crate) fn created(result: &Value) -> Option<(&str, Option<u64>)> {
    let (task, ttl_key) = match (result.get("resultType"), result.get("task")) {
        (Some(kind), _) if kind.as_str() == Some("task") => (result, "ttlMs"),
        (Some(_), _) | (None, None) => return None,
        (None, Some(task)) => (task, "ttl"),
    };
    let id = task.get("taskId").and_then(Value::as_str)?;
    Some((id, task.get(ttl_key).and_then(Value::as_u64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn started(owner: &str) -> Started {
        Started::new(owner.into(), "build".into(), Some("t-1".into()), None)
    }

    #[test]
    fn only_the_starting_caller_on_the_same_route_owns_a_task() {
        let tasks = McpTasks::default();
        tasks.started("r", "mcp-1", Some(60_000), started("alice"));
        assert_eq!(tasks.owned("r", "mcp-1", "alice"), {
            let mut s = started("alice");
            s.until_ms = tasks.owned("r", "mcp-1", "alice").unwrap().until_ms;
            Some(s)
        });
        assert_eq!(tasks.owned("r", "mcp-1", "bob"), None);
        assert_eq!(tasks.owned("other", "mcp-1", "alice"), None);
        assert_eq!(tasks.owned("r", "mcp-2", "alice"), None);
        // An expired task is forgotten.
        tasks.started("r", "gone", Some(0), started("alice"));
        assert_eq!(tasks.owned("r", "gone", "alice"), None);
    }

    #[test]
    fn create_task_results_are_recognised() {
        let r = json!({"resultType": "task", "taskId": "x", "status": "working", "ttlMs": 5});
        assert_eq!(created(&r), Some(("x", Some(5))));
        let r = json!({"resultType": "task", "taskId": "x", "ttlMs": null});
        assert_eq!(created(&r), Some(("x", None)));
        // 2025-11-25: the task inside, its `ttl` in ms.
        let r = json!({"task": {"taskId": "y", "status": "working", "ttl": 9}});
        assert_eq!(created(&r), Some(("y", Some(9))));
        let r = json!({"task": {"taskId": "y", "ttl": null}});
        assert_eq!(created(&r), Some(("y", None)));
        for r in [
            json!({"resultType": "complete", "taskId": "x"}),
            json!({"resultType": "complete", "task": {"taskId": "x"}}),
            json!({"resultType": "task", "taskId": 7}),
            json!({"task": {"taskId": 7}}),
            json!({"task": "x"}),
            json!({"content": []}),
        ] {
            assert_eq!(created(&r), None, "{r}");
        }
    }
}
