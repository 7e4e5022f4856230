//! A slow policy module must not stall anybody else's calls (issue 15.4).
//!
//! A real `toolgate serve` with two routes: `slow`, decided by a module
//! that runs to its deadline on every call, and `good`, decided by a fast
//! one. Agents flood `slow` with 64-call batches; the good calls' latency
//! under that flood must stay far below what one slow batch holds a thread
//! for. Slow modules run on their own bounded pool of threads, a request
//! may spend only `request_budget` of policy time, and a full queue is
//! refused at once — each refusal a normal `isError` result that keeps its
//! request id.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{fixture, policy, route, tools_upstream};
use crate::common::post_mcp;
use crate::common::process::{ServeDir, ServerProcess};

/// Concurrent agents flooding the slow route.
const ATTACKERS: usize = 4;
/// Good calls timed in each phase.
const SAMPLES: usize = 200;
/// How long the slow module runs on each call (`policy_limits.deadline`,
/// the most it may be). The good module shares it, so a good call is never
/// refused because a loaded machine held its thread up for a moment.
const DEADLINE: Duration = Duration::from_secs(1);
/// `policy_limits.request_budget`: two slow decisions, so every batch that
/// gets its two turns on the pool ends in `policy_budget` refusals. Were
/// slow modules run on the async threads again, each batch would hold one
/// of them for these 2 s.
const BUDGET: Duration = Duration::from_secs(2);
/// Bounds on the good calls' latency under the flood, absolute so that a
/// slow moment of a loaded machine cannot fail them by comparison with a
/// quiet one. Run on the async threads, the slow module held the good
/// calls up for a good part of a batch's policy time (a median of 189 ms
/// when that was 640 ms; here it is 2 s), and a good call queued behind
/// slow ones waits a whole deadline (1 s) or more for each.
const P50_LIMIT: Duration = Duration::from_millis(250);
const P99_LIMIT: Duration = Duration::from_secs(1);

fn tools_call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": tool, "arguments": {"q": id}}})
}

/// Latency of `SAMPLES` good calls one after another: (p50, p99). With a
/// `p99_limit`, fails as soon as enough calls have taken that long that the
/// p99 cannot stay below it: a stalled route fails in seconds, not after
/// `SAMPLES` stalls.
async fn good_calls(
    url: &str,
    p99_limit: Option<Duration>,
    server: &ServerProcess,
) -> (Duration, Duration) {
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
        if let Some(limit) = p99_limit {
            let over = took.iter().filter(|t| **t >= limit).count();
            assert!(
                over < SAMPLES - SAMPLES * 99 / 100,
                "good calls' p99 under the flood is {limit:?} or more: \
                 {over} of the first {} took that long ({took:?}); where modules ran:\n{}",
                took.len(),
                moves(server)
            );
        }
    }
    took.sort();
    (took[SAMPLES / 2], took[SAMPLES * 99 / 100])
}

/// The gateway's log lines saying a module moved to the policy pool or
/// back.
fn moves(server: &ServerProcess) -> String {
    server
        .log()
        .lines()
        .filter(|l| l.contains("decided on the"))
        .collect::<Vec<_>>()
        .join("\n")
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
    let mut extra = format!(
        "[policy_limits]\ndeadline = \"{}ms\"\nrequest_budget = \"{}ms\"\nmax_queued = 2\nworkers = 1\n",
        DEADLINE.as_millis(),
        BUDGET.as_millis()
    );
    extra.push_str(&route("slow", "/slow/mcp", &up.url("/mcp")));
    extra.push_str(&route("good", "/good/mcp", &up.url("/mcp")));
    extra.push_str(&policy("spin", &fixture("loop.wat"), "slow", ""));
    extra.push_str(&policy("fast", &fixture("allow.wat"), "good", ""));
    let dir = ServeDir::with(&extra);
    // Two async threads, as on the 2-core machine the bounds were set on:
    // with more, slow modules run on the async threads (the old bug) would
    // leave enough of them free for the good calls to pass.
    let server = dir.start_with_threads(2);
    let base = format!("http://{}", server.addr);
    let good = format!("{base}/good/mcp");

    // Warm up both routes. The slow module shows it is slow in its first
    // two runs, which run where a quick module's would (the first, timed by
    // the wall clock, could be the machine's doing; the second is timed by
    // the thread's CPU clock): two calls, before the flood, so that no
    // flood call runs there.
    for id in 1..=2 {
        let r = post_mcp(
            &format!("{base}/slow/mcp"),
            &[],
            &tools_call(id, "delete_all"),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        let text = v["result"]["content"][0]["text"].as_str().unwrap_or("");
        assert!(
            text.contains("policy_error"),
            "the slow module ran to its deadline: {v}"
        );
    }
    let _ = good_calls(&good, None, &server).await;
    // Measured only to be shown next to the figures under the flood.
    let (idle_p50, idle_p99) = good_calls(&good, None, &server).await;

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
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (busy_p50, busy_p99) = good_calls(&good, Some(P99_LIMIT), &server).await;
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
    // The slow module went to the pool in its warm-up; the fast one never
    // left the calling thread, however busy the machine.
    let moved = moves(&server);
    assert!(
        moved.contains(r#""policy":"spin""#) && moved.contains("decided on the policy pool"),
        "{moved}"
    );
    assert!(!moved.contains(r#""policy":"fast""#), "{moved}");
    assert!(
        busy_p50 < P50_LIMIT,
        "good calls' median under the flood is {busy_p50:?} (idle {idle_p50:?}; {total:?})"
    );
    assert!(
        busy_p99 < P99_LIMIT,
        "good calls' p99 under the flood is {busy_p99:?} (idle {idle_p99:?}; {total:?})"
    );
    assert!(
        up.seen()
            .iter()
            .all(|s| !String::from_utf8_lossy(&s.body).contains("delete_all")),
        "no slow-route call reached the upstream"
    );
}
