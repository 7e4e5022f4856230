//! SIGKILL during a burst: the real binary is killed 20 times, each time
//! while operators issue grants and an agent's calls use them, then started
//! again on the same store. No acknowledged grant is ever lost; a counted
//! grant's uses never go back (never below the calls it answered, nor below
//! what the API showed before the crash) and never exceed the calls made;
//! an unlimited grant's count (flushed every sweep) never goes back from
//! one start to the next.
//! (`ops::restart::acknowledged_writes_survive_sigkill` covers revocations
//! and task endings across one crash.)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::{AGENT, Outcome, agent_token, call_tool, jit_route, tool_upstream};
use crate::common::process::{OPERATOR_TOKEN, ServeDir, ServerProcess, admin};

const ROUNDS: usize = 20;
/// Tools of the counted grants, one grant each (so a call names its grant).
const COUNTED: [&str; 3] = ["pay", "ship", "bill"];
const UNLIMITED: &str = "read";

/// What the test knows the gateway acknowledged, across every crash.
#[derive(Debug, Default)]
struct Known {
    /// Grant id → (task, tool), for every 201.
    grants: BTreeMap<String, (String, String)>,
    /// Counted grant's tool → calls the upstream ran (each a recorded use).
    ran: BTreeMap<String, u64>,
    /// Tool → calls made, answered or not.
    tried: BTreeMap<String, u64>,
    /// Counted grant's tool → the most uses the API ever showed.
    seen: BTreeMap<String, u64>,
}

type Shared = Arc<Mutex<Known>>;

async fn post(admin_url: &str, path: &str, body: &Value) -> Option<(StatusCode, Value)> {
    let auth = format!("Bearer {OPERATOR_TOKEN}");
    let req = http::Request::post(format!("{admin_url}{path}"))
        .header("authorization", auth)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .expect("request");
    let exchange = async {
        let resp = crate::common::client().request(req).await.ok()?;
        let status = resp.status();
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .ok()?
            .to_bytes();
        Some((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .expect("an admin request hung for 20 s")
}

async fn get(server: &ServerProcess, path: &str) -> Value {
    let (status, body) = admin(server, Method::GET, path, OPERATOR_TOKEN, None).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

fn grant_body(task: &str, tool: &str, max_uses: Option<u64>) -> Value {
    let mut body = json!({"task_id": task, "tool": tool, "ttl": "1h", "reason": "burst"});
    if let Some(n) = max_uses {
        body["max_uses"] = json!(n);
    }
    body
}

/// Every grant the store holds: id → its record.
async fn all_grants(server: &ServerProcess) -> BTreeMap<String, Value> {
    get(server, "/v1/grants").await["grants"]
        .as_array()
        .expect("grants")
        .iter()
        .map(|g| (g["id"].as_str().expect("id").to_owned(), g.clone()))
        .collect()
}

/// Checks the store after a restart against what was acknowledged; returns
/// the unlimited grant's use count.
fn check(round: usize, known: &Known, held: &BTreeMap<String, Value>, ids: &Ids) -> u64 {
    for (id, (task, tool)) in &known.grants {
        let g = held
            .get(id)
            .unwrap_or_else(|| panic!("round {round}: acknowledged grant {id} ({tool}) lost"));
        assert_eq!(g["task_id"], json!(task), "round {round}: {g}");
        assert_eq!(g["tool"], json!(tool), "round {round}: {g}");
    }
    for (tool, id) in &ids.counted {
        let uses = held[id]["uses"].as_u64().expect("uses");
        let ran = known.ran.get(*tool).copied().unwrap_or(0);
        let tried = known.tried.get(*tool).copied().unwrap_or(0);
        let seen = known.seen.get(*tool).copied().unwrap_or(0);
        assert!(
            uses >= ran && uses >= seen && uses <= tried,
            "round {round}: {tool} has {uses} uses; {ran} calls ran, the API showed {seen}, {tried} were made"
        );
    }
    held[&ids.unlimited]["uses"].as_u64().expect("uses")
}

#[derive(Debug)]
struct Ids {
    task: String,
    counted: Vec<(&'static str, String)>,
    unlimited: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_grant_or_use_is_lost_across_twenty_sigkills_or_more() {
    let started = Instant::now();
    let up = tool_upstream().await;
    let dir = ServeDir::with(&jit_route(&up.url("/mcp")));
    let token = agent_token();
    let known: Shared = Arc::default();

    let mut server = dir.start();
    let (status, task) = admin(
        &server,
        Method::POST,
        "/v1/tasks",
        OPERATOR_TOKEN,
        Some(json!({"agent": AGENT, "purpose": "crash burst", "ttl": "1h"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let task = task["task"]["id"].as_str().unwrap().to_owned();
    let mut counted = Vec::new();
    for tool in COUNTED {
        let (status, g) = post(
            &server.admin_url(),
            "/v1/grants",
            &grant_body(&task, tool, Some(100_000)),
        )
        .await
        .expect("answer");
        assert_eq!(status, StatusCode::CREATED, "{g}");
        counted.push((tool, g["grant"]["id"].as_str().unwrap().to_owned()));
    }
    let (status, g) = post(
        &server.admin_url(),
        "/v1/grants",
        &grant_body(&task, UNLIMITED, None),
    )
    .await
    .expect("answer");
    assert_eq!(status, StatusCode::CREATED, "{g}");
    let ids = Ids {
        task,
        counted,
        unlimited: g["grant"]["id"].as_str().unwrap().to_owned(),
    };
    {
        let mut k = known.lock().unwrap();
        for (tool, id) in &ids.counted {
            k.grants
                .insert(id.clone(), (ids.task.clone(), (*tool).to_owned()));
        }
        k.grants.insert(
            ids.unlimited.clone(),
            (ids.task.clone(), UNLIMITED.to_owned()),
        );
    }

    let mut unlimited_uses = 0;
    // `ROUNDS` crashes, and more (three times as many at most) until the
    // bursts issued and used `ROUNDS` grants: on a starved machine a short
    // burst may get nothing acknowledged before its kill.
    let mut round = 0;
    loop {
        {
            let k = known.lock().unwrap();
            let issued = k.grants.len() - COUNTED.len() - 1;
            let ran = k.ran.values().sum::<u64>();
            if round >= 3 * ROUNDS || (round >= ROUNDS && issued >= ROUNDS && ran >= ROUNDS as u64)
            {
                break;
            }
        }
        // The burst, killed at a point that moves from round to round.
        let kill_after = Duration::from_millis(150 + (round as u64 * 37) % 250);
        let stop = tokio_util::sync::CancellationToken::new();
        let mut burst = JoinSet::new();
        for writer in 0..2 {
            burst.spawn(issue_grants(
                server.admin_url(),
                ids.task.clone(),
                format!("r{round}w{writer}"),
                Arc::clone(&known),
                stop.clone(),
            ));
        }
        for (caller, tool) in COUNTED.iter().chain([&UNLIMITED]).enumerate() {
            burst.spawn(use_grant(
                server.addr,
                token.clone(),
                ids.task.clone(),
                tool,
                Arc::clone(&known),
                stop.clone(),
            ));
            if caller == 0 {
                burst.spawn(watch_uses(
                    server.admin_url(),
                    ids.counted.clone(),
                    Arc::clone(&known),
                    stop.clone(),
                ));
            }
        }
        tokio::time::sleep(kill_after).await;
        server.kill9();
        stop.cancel();
        while let Some(done) = burst.join_next().await {
            done.expect("burst task");
        }

        server = dir.start();
        let held = all_grants(&server).await;
        let k = known.lock().unwrap();
        let now = check(round, &k, &held, &ids);
        assert!(
            now >= unlimited_uses,
            "round {round}: the unlimited grant went back from {unlimited_uses} to {now} uses"
        );
        unlimited_uses = now;
        round += 1;
    }
    let k = known.lock().unwrap();
    let issued = k.grants.len() - COUNTED.len() - 1;
    assert!(
        issued >= ROUNDS,
        "grants were issued during {round} bursts: {issued}"
    );
    assert!(
        k.ran.values().sum::<u64>() >= ROUNDS as u64,
        "grants were used during {round} bursts: {:?}",
        k.ran
    );
    eprintln!(
        "{round} crashes in {:?}: {issued} grants issued, uses ran {:?} of {:?} tried",
        started.elapsed(),
        k.ran,
        k.tried
    );
}

/// Issues grants one after another until the gateway stops answering.
async fn issue_grants(
    admin_url: String,
    task: String,
    prefix: String,
    known: Shared,
    stop: tokio_util::sync::CancellationToken,
) {
    for i in 0.. {
        if stop.is_cancelled() {
            return;
        }
        let tool = format!("{prefix}_{i}");
        match post(&admin_url, "/v1/grants", &grant_body(&task, &tool, None)).await {
            Some((StatusCode::CREATED, g)) => {
                let id = g["grant"]["id"].as_str().expect("id").to_owned();
                known
                    .lock()
                    .unwrap()
                    .grants
                    .insert(id, (task.clone(), tool));
            }
            Some((status, body)) => panic!("grant refused ({status}): {body}"),
            None => return, // killed under it: not acknowledged
        }
    }
}

/// Calls `tool` one call after another until the gateway stops answering.
async fn use_grant(
    addr: SocketAddr,
    token: String,
    task: String,
    tool: &'static str,
    known: Shared,
    stop: tokio_util::sync::CancellationToken,
) {
    while !stop.is_cancelled() {
        *known
            .lock()
            .unwrap()
            .tried
            .entry(tool.to_owned())
            .or_default() += 1;
        match call_tool(addr, &token, &task, tool).await {
            Outcome::Ran => {
                *known
                    .lock()
                    .unwrap()
                    .ran
                    .entry(tool.to_owned())
                    .or_default() += 1
            }
            Outcome::Refused(why) => panic!("{tool} refused under a live grant: {why}"),
            Outcome::Unknown(_) => return,
        }
    }
}

/// Reads the counted grants' uses while the burst runs.
async fn watch_uses(
    admin_url: String,
    counted: Vec<(&'static str, String)>,
    known: Shared,
    stop: tokio_util::sync::CancellationToken,
) {
    let auth = format!("Bearer {OPERATOR_TOKEN}");
    while !stop.is_cancelled() {
        for (tool, id) in &counted {
            let req = http::Request::get(format!("{admin_url}/v1/grants/{id}"))
                .header("authorization", &auth)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .expect("request");
            let Ok(Ok(resp)) = tokio::time::timeout(
                Duration::from_secs(20),
                crate::common::client().request(req),
            )
            .await
            else {
                return;
            };
            let Ok(body) = http_body_util::BodyExt::collect(resp.into_body()).await else {
                return;
            };
            let v: Value = serde_json::from_slice(&body.to_bytes()).unwrap_or_default();
            if let Some(uses) = v["grant"]["uses"].as_u64() {
                let mut k = known.lock().unwrap();
                let seen = k.seen.entry((*tool).to_owned()).or_default();
                *seen = (*seen).max(uses);
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
