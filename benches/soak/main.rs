//! The soak test (README "Performance", "Soak"): the real `toolgate serve`
//! in front of a fast MCP upstream, under a realistic mix for a long time —
//! allowed calls, denied calls, `tools/list`, SSE tool calls, calls parked
//! for approval that an operator loop approves or denies through the admin
//! API, grant churn (issue, use up, revoke, expire; tasks created and
//! completed), and a Prometheus scrape. Every answer is checked against
//! what that call must get; the gateway's RSS and open file descriptors are
//! sampled from `/proc` throughout.
//!
//! It passes when no answer was unexpected, the gateway logged no error,
//! and RSS and open fds at the end are within 10% of what they were just
//! after warm-up.
//!
//! Every run first saturates the gateway with the plain mix (closed loop,
//! twice the connections) to measure its capacity and fill its pools.
//! `cargo bench --bench soak -- --minutes 10 --rate auto` is the documented
//! long run: `--rate auto` soaks at 80% of the measured capacity. `cargo test --all-targets` runs
//! this target without `--bench`: 60 seconds at a moderate fixed rate
//! against the debug build. The same binary is the upstream (`soak
//! upstream`, the load benchmark's echo server).

#[path = "../load/procs.rs"]
#[allow(dead_code)] // shared with the load benchmark; the soak uses part of it
mod procs;
#[path = "../load/upstream.rs"]
#[allow(dead_code)]
mod upstream;

mod client;
mod flows;
mod gateway;
mod mix;
mod sample;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one run does.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) length: Duration,
    /// Mixed operations per second, or `None`: measure capacity, use 80%.
    pub(crate) rate: Option<u32>,
    /// Connections the mixed operations are spread over.
    pub(crate) conns: usize,
    /// Approval flows and grant-churn flows running side by side.
    pub(crate) approvers: usize,
    pub(crate) churners: usize,
    /// `policy_limits.deadline`, when not the default (10 ms); then
    /// `request_budget` is 5 s.
    pub(crate) policy_deadline: Option<String>,
    pub(crate) out: PathBuf,
}

impl Plan {
    /// The CI run: a minute at a rate two shared cores keep up with easily.
    fn ci() -> Self {
        Self {
            length: Duration::from_secs(60),
            rate: Some(40),
            conns: 4,
            approvers: 2,
            churners: 1,
            // A debug build on two shared cores: a thread descheduled for
            // 10 ms mid-decision would turn into `policy_error` denials
            // (and a 100-tool list past 100 ms into `policy_budget`).
            // The soak looks for errors and leaks, not for latency.
            policy_deadline: Some("250ms".into()),
            out: repo().join("target/soak/ci"),
        }
    }

    fn full() -> Self {
        Self {
            length: Duration::from_secs(600),
            rate: None,
            conns: 16,
            approvers: 4,
            churners: 4,
            policy_deadline: None,
            out: repo().join("target/soak"),
        }
    }
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const USAGE: &str = "usage: soak [--minutes M | --seconds S] [--rate RPS|auto] [--conns N] [--policy-deadline D] [--out DIR]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("upstream") {
        return upstream::serve();
    }
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |name: &str| {
        arg(name).map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} wants a number, got {v:?}\n{USAGE}"))
        })
    };
    // `cargo bench` passes --bench; `cargo test` passes nothing, or the
    // test-name filter it was given: then run only if it names this target.
    let bench = args.iter().any(|a| a == "--bench");
    let values = [
        "--minutes",
        "--seconds",
        "--rate",
        "--conns",
        "--policy-deadline",
        "--out",
    ];
    let filtered_out = args.iter().enumerate().any(|(i, a)| {
        !a.starts_with("--")
            && (i == 0 || !values.contains(&args[i - 1].as_str()))
            && !"soak".contains(a.as_str())
    });
    if !bench && filtered_out {
        println!("soak: skipped (filtered out)");
        return;
    }
    let mut plan = if bench { Plan::full() } else { Plan::ci() };
    if let Some(m) = number("--minutes") {
        plan.length = Duration::from_secs(m.max(1) * 60);
    }
    if let Some(s) = number("--seconds") {
        plan.length = Duration::from_secs(s.max(10));
    }
    match arg("--rate").as_deref() {
        Some("auto") => plan.rate = None,
        Some(_) => plan.rate = number("--rate").map(|r| u32::try_from(r.max(1)).expect("a rate")),
        None => {}
    }
    if let Some(c) = number("--conns") {
        plan.conns = c.max(1) as usize;
    }
    if let Some(deadline) = arg("--policy-deadline") {
        plan.policy_deadline = Some(deadline);
    }
    if let Some(out) = arg("--out") {
        plan.out = PathBuf::from(out);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let verdict = rt.block_on(run(plan));
    println!("{verdict}");
    assert!(verdict.passed(), "soak failed:\n{verdict}");
}

async fn run(mut plan: Plan) -> sample::Verdict {
    std::fs::create_dir_all(&plan.out).expect("output folder");
    let (upstream, upstream_port) = procs::spawn_listening("upstream", {
        let mut cmd = std::process::Command::new(std::env::current_exe().expect("own path"));
        cmd.arg("upstream");
        cmd
    });
    let gw = Arc::new(gateway::start(&plan, upstream_port).await);
    // Saturate first: the capacity of the mix, and every pool (upstream
    // connections, policy instances) filled to what the soak will use.
    let probe = if plan.rate.is_some() { 3 } else { 15 };
    let capacity = mix::capacity(&gw, plan.conns * 2, Duration::from_secs(probe)).await;
    println!("soak: capacity {capacity:.0} mixed ops/s ({probe} s closed loop)");
    let rate = match plan.rate {
        Some(rate) => rate,
        None => {
            let rate = (capacity * 0.8).max(1.0) as u32;
            println!("soak: soaking at {rate}/s (80% of capacity)");
            rate
        }
    };
    plan.rate = Some(rate);
    println!(
        "soak: {:?} at {rate} mixed ops/s over {} connections, {} approval and {} churn flows (gateway pid {})",
        plan.length,
        plan.conns,
        plan.approvers,
        plan.churners,
        gw.proc.pid()
    );
    let started = Instant::now();
    let until = started + plan.length;
    let tally = mix::Tally::shared();
    let sampler = tokio::spawn(sample::every(gw.proc.pid(), Duration::from_secs(1), until));
    let mut jobs = Vec::new();
    jobs.extend(mix::spawn(&gw, &plan, rate, until, &tally));
    for i in 0..plan.approvers {
        jobs.push(tokio::spawn(flows::approvals(
            Arc::clone(&gw),
            i,
            until,
            Arc::clone(&tally),
        )));
    }
    for i in 0..plan.churners {
        jobs.push(tokio::spawn(flows::churn(
            Arc::clone(&gw),
            i,
            until,
            Arc::clone(&tally),
        )));
    }
    jobs.push(tokio::spawn(flows::operator(
        Arc::clone(&gw),
        until,
        Arc::clone(&tally),
    )));
    for job in jobs {
        job.await.expect("a soak job panicked");
    }
    let samples = sampler.await.expect("the sampler");
    sample::write_csv(&plan.out.join("samples.csv"), &samples);
    let log_errors = gateway::logged_errors(&plan.out);
    let alive = Arc::try_unwrap(gw)
        .map(|mut gw| gw.proc.alive())
        .unwrap_or(true);
    drop(upstream);
    sample::Verdict::new(
        &plan,
        started.elapsed(),
        tally.snapshot(),
        samples,
        log_errors,
        alive,
    )
}
