//! Task-context stage: the live context in its policy-input form
//! (policy-modules/ABI.md: `task`, `grants`, `counters`, `recent_calls`).

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::decide::LazyJson;
use crate::store::{Activity, Constraint, Grant, Millis, Task};

#[derive(Serialize)]
struct WireTask<'a> {
    id: &'a str,
    purpose: &'a str,
    labels: &'a std::collections::BTreeMap<String, String>,
    agent: &'a str,
    on_behalf_of: Option<&'a str>,
    age_secs: u64,
    remaining_secs: u64,
}

#[derive(Serialize)]
struct WireGrant<'a> {
    id: &'a str,
    tool: &'a str,
    route: Option<&'a str>,
    constraints: &'a [Constraint],
    /// Unix seconds.
    expires_at: u64,
    uses_left: Option<u64>,
    reason: &'a str,
    granted_by: &'a str,
}

/// Any serializable value as a shared raw JSON fragment. Serialized
/// straight into the fragment: `RawValue::from_string` would parse the
/// text serde_json just wrote again, a good part of a call's context cost.
pub(super) fn json<T: Serialize + ?Sized>(value: &T) -> Option<Arc<RawValue>> {
    serde_json::value::to_raw_value(value).ok().map(Arc::from)
}

/// A task's counters and recent calls, each serialized only if a module
/// reads it.
pub(super) fn activity(activity: Activity) -> (LazyJson, LazyJson) {
    let activity = Arc::new(activity);
    let recent = Arc::clone(&activity);
    (
        LazyJson::new(move || json(&activity.counters)),
        LazyJson::new(move || json(&recent.recent)),
    )
}

pub(super) fn task(task: &Task, now: Millis) -> Option<Arc<RawValue>> {
    json(&WireTask {
        id: &task.id,
        purpose: &task.purpose,
        labels: &task.labels,
        agent: &task.agent,
        on_behalf_of: task.on_behalf_of.as_deref(),
        age_secs: now.saturating_sub(task.created_at_ms) / 1000,
        remaining_secs: task.expires_at_ms.saturating_sub(now) / 1000,
    })
}

pub(super) fn grants(grants: &[Grant]) -> Option<Arc<RawValue>> {
    if grants.is_empty() {
        return None;
    }
    let wire: Vec<WireGrant<'_>> = grants
        .iter()
        .map(|g| WireGrant {
            id: &g.id,
            tool: &g.tool,
            route: g.route.as_deref(),
            constraints: &g.constraints,
            // Rounded up: the host already passes only live grants and
            // re-checks on use; policy must not see one end early.
            expires_at: g.expires_at_ms.div_ceil(1000),
            uses_left: g.uses_left(),
            reason: &g.reason,
            granted_by: &g.granted_by,
        })
        .collect();
    json(&wire)
}
