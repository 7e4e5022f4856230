//! Operating tasks and grants against the real binary: the operator CLI
//! end to end, acknowledged admin writes surviving SIGKILL, and expiry with
//! short real TTLs (grants on their own terms, tasks by the sweeper).

mod cli;
mod expiry;
mod restart;
mod tls;

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::process::{OPERATOR_TOKEN, ServerProcess, admin};

const AGENT: &str = "spiffe://toolgate.dev/agent/ops-test";

/// Creates a task through the admin API; its record.
async fn create_task(server: &ServerProcess, purpose: &str, ttl: &str) -> Value {
    let (status, body) = admin(
        server,
        Method::POST,
        "/v1/tasks",
        OPERATOR_TOKEN,
        Some(json!({"agent": AGENT, "purpose": purpose, "ttl": ttl})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["task"].clone()
}

/// Issues a grant through the admin API; its record.
async fn create_grant(server: &ServerProcess, task_id: &str, tool: &str, ttl: &str) -> Value {
    let (status, body) = admin(
        server,
        Method::POST,
        "/v1/grants",
        OPERATOR_TOKEN,
        Some(json!({"task_id": task_id, "tool": tool, "ttl": ttl, "reason": "test"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["grant"].clone()
}

/// GET as the operator; asserts 200.
async fn get(server: &ServerProcess, path: &str) -> Value {
    let (status, body) = admin(server, Method::GET, path, OPERATOR_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

/// The ids in `{"grants": [...]}` (or tasks, approvals).
fn ids(list: &Value, key: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key:?} list in {list}"))
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Sleeps until the wall clock is past `at_ms` (Unix ms) plus `margin_ms`.
async fn sleep_past(at_ms: u64, margin_ms: u64) {
    let now = toolgate::store::model::now_ms();
    let target = at_ms + margin_ms;
    if target > now {
        tokio::time::sleep(std::time::Duration::from_millis(target - now)).await;
    }
}
