//! Fuzzing entry point for the admin API's JSON bodies (see [`crate::fuzz`]):
//! each body read by the API's own reader and handed to the same rules the
//! endpoint applies, on a fresh in-memory store holding one task and one
//! parked call. Whatever is accepted is within the configured caps, and
//! every free text it stores is bounded and free of control characters.

#![allow(clippy::expect_used)]

use std::sync::Arc;

use serde_json::json;

use super::approvals::DenyBody;
use super::grants::AgentRevoke;
use super::input;
use super::tasks::ReasonBody;
use crate::config;
use crate::store::memory::StoreLimits;
use crate::store::model::now_ms;
use crate::store::{Ending, MemoryStore, RevokeScope, TaskState};
use crate::tasks::{ApproveRequest, Caps, GrantRequest, NewGrant, NewTask, Tasks, requests};

const ACTOR: &str = "fuzz-operator";

/// The first byte picks the endpoint, the rest is its body. In a grant
/// body, the task id `"TASK"` names the store's task.
pub fn admin_body(data: &[u8]) {
    let [endpoint, body @ ..] = data else {
        return;
    };
    let registry = prometheus::Registry::new();
    let store = MemoryStore::in_memory(StoreLimits::default());
    let tasks = Tasks::new(Arc::new(store), &registry);
    let (task_caps, approval_caps) = (config::Tasks::default(), config::Approvals::default());
    let caps = Caps {
        tasks: &task_caps,
        approvals: &approval_caps,
    };
    let task = tasks
        .create_task(
            caps,
            NewTask {
                agent: "spiffe://example.org/agent".into(),
                issuer: None,
                on_behalf_of: None,
                purpose: "fuzz".into(),
                labels: Default::default(),
                ttl: None,
            },
            ACTOR,
        )
        .expect("a plain task");
    let (parked, _) = tasks
        .park_call(
            caps,
            &task,
            "tools",
            "deploy",
            &json!({"env": "prod"}),
            "risky",
        )
        .expect("a parked call");
    let now = now_ms();
    match endpoint % 8 {
        0 => {
            let Ok(req) = input::parse::<NewTask>(body) else {
                return;
            };
            if let Ok(t) = tasks.create_task(caps, req, ACTOR) {
                assert!(t.expires_at_ms > now);
                assert!(t.expires_at_ms - t.created_at_ms <= millis(task_caps.max_ttl));
                assert!(text_ok(&t.agent) && text_ok(&t.purpose));
            }
        }
        1 => {
            let Ok(mut req) = input::parse::<NewGrant>(body) else {
                return;
            };
            if req.task_id == "TASK" {
                req.task_id = task.id.clone();
            }
            if let Ok(g) = tasks.issue_grant(caps, req, ACTOR) {
                assert!(g.expires_at_ms > now);
                assert!(g.expires_at_ms - now <= millis(task_caps.max_grant_ttl));
                assert!(g.max_uses != Some(0));
                assert!(text_ok(&g.reason) && text_ok(&g.tool));
                assert!(requests::check_grant_scope(&g.tool, &g.constraints).is_ok());
            }
        }
        2 | 3 => {
            let Ok(req) = input::parse::<ReasonBody>(body) else {
                return;
            };
            let Ok(why) = input::reason(req.reason, false) else {
                return;
            };
            let ended = if endpoint % 8 == 2 {
                tasks
                    .end_task(&task.id, TaskState::Completed, ACTOR, &why)
                    .map(|t| t.ended)
                    .ok()
                    .flatten()
            } else {
                let revoked = tasks.revoke_grants(&RevokeScope::Task(task.id.clone()), ACTOR, &why);
                assert!(revoked.is_ok());
                None
            };
            assert!(ended.as_ref().is_none_or(ending_ok));
        }
        4 => {
            let Ok(req) = input::parse::<AgentRevoke>(body) else {
                return;
            };
            if req.agent.trim().is_empty() {
                return;
            }
            if let Ok(why) = input::reason(req.reason, false) {
                let scope = RevokeScope::Agent(req.agent);
                assert!(tasks.revoke_grants(&scope, ACTOR, &why).is_ok());
            }
        }
        5 => {
            let Ok(req) = input::parse::<ApproveRequest>(body) else {
                return;
            };
            if let Ok((approval, grant)) = tasks.approve(caps, &parked.id, req, ACTOR) {
                assert!(approval.decided.as_ref().is_some_and(ending_ok));
                assert!(grant.tool_exact && grant.max_uses.is_some_and(|n| n > 0));
                assert!(grant.expires_at_ms - now <= millis(task_caps.max_grant_ttl));
            }
        }
        6 => {
            let Ok(req) = input::parse::<DenyBody>(body) else {
                return;
            };
            if let Ok(why) = input::reason(Some(req.reason), true) {
                let approval = tasks.deny(&parked.id, ACTOR, &why).expect("pending");
                assert!(approval.decided.as_ref().is_some_and(ending_ok));
            }
        }
        _ => {
            // An agent's own grant request: its scope and reason.
            let Ok(req) = serde_json::from_slice::<GrantRequest>(body) else {
                return;
            };
            let _ = requests::check_grant_scope(&req.tool, &req.constraints);
            let _ = requests::check_text("reason", &req.reason, 4096);
            if let Some(ttl) = req.ttl.as_deref()
                && let Ok(ttl) = requests::duration("ttl", ttl)
            {
                let _ = requests::within("ttl", ttl, task_caps.max_grant_ttl, "cap", "grant");
            }
        }
    }
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Free text as the API stores it: bounded, no control characters.
fn text_ok(text: &str) -> bool {
    text.len() <= 4096 && !text.chars().any(char::is_control)
}

fn ending_ok(ending: &Ending) -> bool {
    text_ok(&ending.why) && ending.by == ACTOR
}
