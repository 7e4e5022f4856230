//! Task-context stage, counting: a call is counted in its task before it is
//! decided (policy sees the counters without it, and two concurrent calls
//! never see the same count), and its outcome recorded after.

use super::{MAX_TOOLS_COUNTED, MemoryStore};
use crate::store::model::{Activity, RecentCall};

/// Longest tool name kept in counters and recent calls, in characters (the
/// MCP limit): a caller cannot grow a task's activity with huge names.
const MAX_TOOL_NAME_CHARS: usize = 128;

impl MemoryStore {
    /// Counts a call of `tool` under the task's activity entry; returns the
    /// activity as it was before.
    pub(super) fn count_call(&self, task_id: &str, tool: &str) -> Activity {
        let tool = clip(tool);
        let mut entry = self.activity.entry(task_id.to_owned()).or_default();
        let before = entry.clone();
        let counters = &mut entry.counters;
        counters.total += 1;
        if let Some(n) = counters.per_tool.get_mut(tool) {
            *n += 1;
        } else if counters.per_tool.len() < MAX_TOOLS_COUNTED {
            counters.per_tool.insert(tool.to_owned(), 1);
        }
        drop(entry);
        self.dirty_activity.insert(task_id.to_owned(), ());
        before
    }

    /// Records how a counted call ended, among the task's recent calls.
    pub(super) fn record_outcome(&self, task_id: &str, mut call: RecentCall, denied: bool) {
        call.tool.truncate(clip(&call.tool).len());
        let mut entry = self.activity.entry(task_id.to_owned()).or_default();
        if denied {
            entry.counters.denied += 1;
        }
        entry.recent.push(std::sync::Arc::new(call));
        let excess = entry.recent.len().saturating_sub(self.limits.recent_calls);
        entry.recent.drain(..excess);
        drop(entry);
        self.dirty_activity.insert(task_id.to_owned(), ());
    }
}

/// `tool` cut to [`MAX_TOOL_NAME_CHARS`], on a character boundary.
fn clip(tool: &str) -> &str {
    match tool.char_indices().nth(MAX_TOOL_NAME_CHARS) {
        Some((end, _)) => &tool[..end],
        None => tool,
    }
}
