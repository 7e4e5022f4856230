//! Durability: every write the admin API acknowledged — tasks, 100 grants,
//! revocations, a completion, a cancellation — is there after `kill -9` and
//! a restart on the same store, and a grant whose TTL elapsed while the
//! gateway was down is not live.

use std::collections::{BTreeMap, BTreeSet};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{create_grant, create_task, get, ids, sleep_past};
use crate::common::process::{OPERATOR_TOKEN, ServeDir, ServerProcess, toolgate};

/// Acknowledged outcomes of the write burst.
#[derive(Default)]
struct Acked {
    /// grant id → task id.
    grants: BTreeMap<String, String>,
    /// grant id → revocation reason.
    revoked: BTreeMap<String, String>,
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = ServeDir::new();
    let server = dir.start();
    let keep = create_task(&server, "keeps running", "1h").await;
    let finish = create_task(&server, "gets completed", "1h").await;
    let drop_it = create_task(&server, "gets cancelled", "1h").await;
    let (keep, finish, drop_it) = (id(&keep), id(&finish), id(&drop_it));

    let mut acked = burst_of_grants(&server, &[&keep, &finish]).await;
    assert_eq!(acked.grants.len(), 100);

    // Concurrently: revoke 20 of the kept task's grants, complete one task,
    // cancel another. Only 200 answers count as acknowledged.
    let mut writes = JoinSet::new();
    let to_revoke: Vec<String> = acked
        .grants
        .iter()
        .filter(|(_, t)| **t == keep)
        .map(|(g, _)| g.clone())
        .take(20)
        .collect();
    let base = server.admin_url();
    for grant in &to_revoke {
        let reason = format!("revoked {grant}");
        let path = format!("/v1/grants/{grant}/revoke");
        writes.spawn(post(
            base.clone(),
            path,
            json!({"reason": reason}),
            Some(grant.clone()),
        ));
    }
    writes.spawn(post(
        base.clone(),
        format!("/v1/tasks/{finish}/complete"),
        json!({"reason": "done"}),
        None,
    ));
    writes.spawn(post(
        base.clone(),
        format!("/v1/tasks/{drop_it}/cancel"),
        json!({"reason": "not needed"}),
        None,
    ));
    while let Some(done) = writes.join_next().await {
        let (status, body, grant) = done.expect("request task");
        assert_eq!(status, StatusCode::OK, "{body}");
        if let Some(grant) = grant {
            acked
                .revoked
                .insert(grant.clone(), format!("revoked {grant}"));
        }
    }
    assert_eq!(acked.revoked.len(), 20);

    // The last write before the crash: a grant that expires while the
    // gateway is down (three seconds: it must still be live at the read
    // below, a fsync'd write and a request later on a loaded machine).
    let short = create_grant(&server, &keep, "short_lived", "3s").await;
    let short_expiry = short["expires_at_ms"].as_u64().expect("expires_at_ms");
    let short = id(&short);
    acked.grants.insert(short.clone(), keep.clone());
    let live_before = ids(
        &get(&server, &format!("/v1/grants?task={keep}&live=true")).await,
        "grants",
    );
    assert!(
        live_before.contains(&short),
        "the short grant is live before the crash"
    );

    server.kill9();
    sleep_past(short_expiry, 100).await;
    let server = dir.start();

    // Tasks and their endings.
    let t = get(&server, &format!("/v1/tasks/{keep}")).await;
    assert_eq!(t["task"]["state"], "active", "{t}");
    let t = get(&server, &format!("/v1/tasks/{finish}")).await;
    assert_eq!(t["task"]["state"], "completed", "{t}");
    assert_eq!(t["task"]["ended"]["why"], "done", "{t}");
    let t = get(&server, &format!("/v1/tasks/{drop_it}")).await;
    assert_eq!(t["task"]["state"], "cancelled", "{t}");

    // Every acknowledged grant, with its revocation if it had one.
    for (grant, task) in &acked.grants {
        let g = get(&server, &format!("/v1/grants/{grant}")).await;
        assert_eq!(g["grant"]["task_id"], json!(task), "{g}");
        match acked.revoked.get(grant) {
            Some(reason) => assert_eq!(g["grant"]["revoked"]["why"], json!(reason), "{g}"),
            None if task == &keep => assert!(g["grant"]["revoked"].is_null(), "{g}"),
            None => {}
        }
    }

    // Live now: exactly the kept task's grants that were neither revoked nor expired.
    let live: BTreeSet<String> = ids(&get(&server, "/v1/grants?live=true").await, "grants")
        .into_iter()
        .collect();
    let expected: BTreeSet<String> = acked
        .grants
        .iter()
        .filter(|(g, t)| **t == keep && !acked.revoked.contains_key(*g) && **g != short)
        .map(|(g, _)| g.clone())
        .collect();
    assert_eq!(live, expected);
    assert_eq!(live.len(), 50 - 20);

    // The expired grant reads as expired, in the API and in the CLI.
    let g = get(&server, &format!("/v1/grants/{short}")).await;
    assert_eq!(g["grant"]["state"], "expired", "{g}");
    assert!(g["grant"]["revoked"].is_null(), "expired, not revoked: {g}");
    let url = server.admin_url();
    let shown = toolgate(
        &["grant", "show", &short],
        &[
            ("TOOLGATE_ADMIN_URL", &url),
            ("TOOLGATE_ADMIN_TOKEN", OPERATOR_TOKEN),
        ],
    )
    .await;
    assert!(
        shown.ok().contains("\nstate:       expired\n"),
        "{}",
        shown.stdout
    );
}

/// 100 grant creations at once, split over `tasks`; every 201 recorded.
async fn burst_of_grants(server: &ServerProcess, tasks: &[&str]) -> Acked {
    let mut set = JoinSet::new();
    let base = server.admin_url();
    for i in 0..100 {
        let task = tasks[i % tasks.len()].to_owned();
        let body =
            json!({"task_id": task, "tool": format!("tool_{i}"), "ttl": "1h", "reason": "burst"});
        set.spawn(post(
            base.clone(),
            "/v1/grants".to_owned(),
            body,
            Some(task),
        ));
    }
    let mut acked = Acked::default();
    while let Some(done) = set.join_next().await {
        let (status, body, task) = done.expect("request task");
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let grant = id(&body["grant"]);
        assert_eq!(body["grant"]["task_id"], json!(task));
        acked.grants.insert(grant, task.expect("task"));
    }
    acked
}

/// POST as the operator against the admin base URL; `tag` comes back as-is.
async fn post(
    base: String,
    path: String,
    body: Value,
    tag: Option<String>,
) -> (StatusCode, Value, Option<String>) {
    let url = format!("{base}{path}");
    let auth = format!("Bearer {OPERATOR_TOKEN}");
    let reply = crate::common::send(
        Method::POST,
        &url,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string(),
    )
    .await;
    (reply.status, reply.json(), tag)
}

fn id(record: &Value) -> String {
    record["id"].as_str().expect("record id").to_owned()
}
