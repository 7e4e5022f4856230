//! Expiry with real three-second TTLs: a grant stops being live on its own
//! terms, and the background sweeper marks a task expired (its `ended`
//! record says the gateway did it because the TTL elapsed).

use std::time::{Duration, Instant};

use super::{create_grant, create_task, get, ids, sleep_past};
use crate::common::process::ServeDir;

/// The short TTL: long enough that the writes and reads made before it
/// runs out (each write fsync'd by a real process on a loaded machine)
/// finish well inside it.
const SHORT: &str = "3s";

#[tokio::test]
async fn short_grants_and_tasks_expire() {
    let dir = ServeDir::new();
    let server = dir.start();
    let host = create_task(&server, "hosts a short grant", "1h").await;
    let host = host["id"].as_str().expect("task id").to_owned();
    let long = create_grant(&server, &host, "list_files", "1h").await;
    let long_id = long["id"].as_str().expect("grant id").to_owned();
    let short_task = create_task(&server, "lives three seconds", SHORT).await;
    let short_task_id = short_task["id"].as_str().expect("task id").to_owned();
    let grant = create_grant(&server, &host, "read_file", SHORT).await;
    let grant_id = grant["id"].as_str().expect("grant id").to_owned();

    let live_path = format!("/v1/grants?task={host}&live=true");
    let live = ids(&get(&server, &live_path).await, "grants");
    assert!(
        live.contains(&grant_id) && live.contains(&long_id),
        "{live:?}"
    );
    let t = get(&server, &format!("/v1/tasks/{short_task_id}")).await;
    assert_eq!(t["task"]["state"], "active", "{t}");

    // Past both expiries, plus two sweep intervals (100 ms each) of slack.
    let grant_expiry = grant["expires_at_ms"].as_u64().expect("expires_at_ms");
    let task_expiry = short_task["expires_at_ms"].as_u64().expect("expires_at_ms");
    sleep_past(grant_expiry.max(task_expiry), 250).await;

    let live = ids(&get(&server, &live_path).await, "grants");
    assert_eq!(live, vec![long_id], "only the hour-long grant is live");
    let g = get(&server, &format!("/v1/grants/{grant_id}")).await;
    assert!(g["grant"]["revoked"].is_null(), "expired, not revoked: {g}");
    assert_eq!(g["grant"]["state"], "expired", "{g}");

    // Written by the sweeper, not just computed when read: its `ended`
    // record comes within a few sweeps (every 100 ms; given up to 10 s
    // here, for a loaded machine).
    let path = format!("/v1/tasks/{short_task_id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let t = loop {
        let t = get(&server, &path).await;
        if !t["task"]["ended"].is_null() || Instant::now() >= deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(t["task"]["state"], "expired", "{t}");
    assert_eq!(t["task"]["ended"]["by"], "toolgate", "{t}");
    assert_eq!(t["task"]["ended"]["why"], "ttl elapsed", "{t}");
    let expired = ids(&get(&server, "/v1/tasks?state=expired").await, "tasks");
    assert_eq!(expired, vec![short_task_id]);
}
