//! A slow policy module must not stall anybody else's calls (issue 15.4).
//!
//! A real `toolgate serve` with two routes: `slow`, decided by a module
//! that runs to its deadline on every call, and `good`, decided by a fast
//! one. Agents flood `slow` with 64-call batches; the good calls' latency
//! under that flood is compared with their latency measured idle, in the
//! same test. Slow modules run on their own bounded pool of threads, a
//! request may spend only `request_budget` of policy time, and a full
//! queue is refused at once — each refusal a normal `isError` result that
//! keeps its request id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{fixture, policy, route, tools_upstream};
use crate::common::post_mcp;
use crate::common::process::ServeDir;

/// Concurrent agents flooding the slow route.
const ATTACKERS: usize = 4;
/// Good calls timed in each phase.
const SAMPLES: usize = 200;
/// Added to 2× the idle figure before comparing: what a 2-core CI machine
/// running other tests beside this one adds on its own. Before the fix the
/// good calls waited seconds behind the slow module, far above it.
const P50_FLOOR: Duration = Duration::from_millis(10);
const P99_FLOOR: Duration = Duration::from_millis(50);

fn tools_call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"q": id}}})
}

/// Latency of `SAMPLES` good calls one after another: (p50, p99).
async fn good_calls(url: &str) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES as u64 {
        let started = Instant::now();
        let r = post_mcp(url, &[], &tools_call(i, "echo")).await;
        took.push(started.elapsed());
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["id"], i, "{v}");
        assert_eq!(
            v["result"]["content"][0]["text"], "ok",
            "good call refused: {v}"
        );
    }
    took.sort();
    (took[SAMPLES / 2], took[SAMPLES * 99 / 100])
}

/// What the flood got back, by reason code.
#[derive(Debug, Default)]
struct Refusals {
    budget: usize,
    busy: usize,
    deadline: usize,
    batches: usize,
}

async fn attack(url: String, stop: Arc<AtomicBool>, base: u64) -> Refusals {
    let mut seen = Refusals::default();
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let first = base + round * 1000;
        let batch: Vec<Value> = (first..first + 64)
            .map(|id| tools_call(id, "delete_all"))
            .collect();
        let r = post_mcp(&url, &[], &Value::Array(batch)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let answers = r.json();
        let answers = answers.as_array().expect("a batch answer");
        assert_eq!(answers.len(), 64, "every element answered");
        for (i, a) in answers.iter().enumerate() {
            assert_eq!(a["id"], first + i as u64, "ids kept in order: {a}");
            assert_eq!(a["result"]["isError"], true, "a slow call allowed: {a}");
            let text = a["result"]["content"][0]["text"].as_str().unwrap_or("");
            if text.contains("policy_budget") {
                seen.budget += 1;
            } else if text.contains("policy_busy") {
                seen.busy += 1;
            } else if text.contains("policy_error") {
                seen.deadline += 1;
            } else {
                panic!("unexpected refusal: {a}");
            }
        }
        seen.batches += 1;
        round += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_module_at_its_deadline_does_not_stall_other_routes() {
    let up = tools_upstream().await;
    let mut extra = String::from(
        "[policy_limits]\ndeadline = \"10ms\"\nrequest_budget = \"100ms\"\nmax_queued = 2\nworkers = 1\n",
    );
    extra.push_str(&route("slow", "/slow/mcp", &up.url("/mcp")));
    extra.push_str(&route("good", "/good/mcp", &up.url("/mcp")));
    extra.push_str(&policy("spin", &fixture("loop.wat"), "slow", ""));
    extra.push_str(&policy("fast", &fixture("allow.wat"), "good", ""));
    let dir = ServeDir::with(&extra);
    let server = dir.start();
    let base = format!("http://{}", server.addr);
    let good = format!("{base}/good/mcp");

    // Warm up both routes (the slow module shows it is slow on its first run).
    let _ = good_calls(&good).await;
    let (idle_p50, idle_p99) = good_calls(&good).await;

    let stop = Arc::new(AtomicBool::new(false));
    let attackers: Vec<_> = (0..ATTACKERS as u64)
        .map(|n| {
            tokio::spawn(attack(
                format!("{base}/slow/mcp"),
                Arc::clone(&stop),
                (n + 1) * 1_000_000,
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (busy_p50, busy_p99) = good_calls(&good).await;
    stop.store(true, Ordering::Relaxed);
    let mut total = Refusals::default();
    for a in attackers {
        let seen = a.await.expect("attacker");
        total.budget += seen.budget;
        total.busy += seen.busy;
        total.deadline += seen.deadline;
        total.batches += seen.batches;
    }

    eprintln!(
        "good calls idle p50 {idle_p50:?} p99 {idle_p99:?}; under the flood \
         p50 {busy_p50:?} p99 {busy_p99:?}; flood answers {total:?}"
    );
    assert!(
        total.batches >= ATTACKERS,
        "the flood ran: {total:?} (log: {})",
        server.log()
    );
    assert!(total.deadline > 0, "the slow module ran: {total:?}");
    assert!(
        total.budget > 0,
        "a batch past its policy time is refused: {total:?}"
    );
    assert!(total.busy > 0, "a full queue is refused at once: {total:?}");
    assert!(
        busy_p50 <= idle_p50 * 2 + P50_FLOOR,
        "good calls' median went from {idle_p50:?} idle to {busy_p50:?} under the flood ({total:?})"
    );
    assert!(
        busy_p99 <= idle_p99 * 2 + P99_FLOOR,
        "good calls' p99 went from {idle_p99:?} idle to {busy_p99:?} under the flood ({total:?})"
    );
    assert!(
        up.seen()
            .iter()
            .all(|s| !String::from_utf8_lossy(&s.body).contains("delete_all")),
        "no slow-route call reached the upstream"
    );
}
