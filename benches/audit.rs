//! What the decision log costs per decision: on the request path (a place
//! reserved, a compact record built and its facts copied into the outbox,
//! against the same decision recorded without a log), and on the writer
//! thread (masked, serialized, hash-chained and written, `fsync =
//! "never"`), per record: the writer thread's own time on a CPU (from
//! `/proc/self/task/TID/schedstat` on Linux; wall time elsewhere), so that
//! the time it sleeps between batches is not counted as its cost.
//!
//! And what a query of the log costs (`audit_scan`): a search, the denial
//! report and the drift report over a log of [`SCANNED`] decisions that
//! the writer wrote, each one streaming scan that verifies the chain —
//! criterion's throughput is lines read a second.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

use toolgate::audit::report::{Denials, Drift, Params, Search};
use toolgate::config;
use toolgate::decide::{
    ContextWire, Decision, DecisionInput, Phase, Reason, RequestFacts, Verdict,
};
use toolgate::identify::{Delegation, Identity, Workload};
use toolgate::record::{Recorder, RequestLog};
use toolgate::snapshot::Snapshot;

/// The decision-log writer thread's time on a CPU so far, where the OS
/// tells it (Linux: `schedstat`, nanoseconds).
fn writer_cpu() -> Option<Duration> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end() == "toolgate-audit" {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            let ns: u64 = stat.split_whitespace().next()?.parse().ok()?;
            return Some(Duration::from_nanos(ns));
        }
    }
    None
}

fn written(recorder: &Recorder) -> u64 {
    recorder
        .registry()
        .gather()
        .iter()
        .filter(|f| f.name() == "toolgate_audit_records_total")
        .flat_map(|f| {
            f.get_metric()
                .iter()
                .map(|m| m.get_counter().get_value() as u64)
        })
        .sum()
}

fn decisions(c: &mut Criterion) {
    toolgate::install_crypto_provider();
    let cfg = config::load_str(
        "[[routes]]\nname = \"github\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:1/mcp\"\n",
        "bench",
        Path::new("."),
    )
    .expect("valid config");
    let snapshot = Snapshot::build(&cfg, None).expect("snapshot");
    let route = Arc::clone(&snapshot.routes()[0]);
    let identity = Identity::Workload(Arc::new(Workload {
        subject: "spiffe://example.org/agent/triage".into(),
        issuer: "https://issuer.example.org".into(),
        spiffe: None,
        audience: vec!["toolgate".into()],
        scopes: Vec::new(),
        expires_at: 0,
        claims: serde_json::Map::new(),
        delegation: Delegation::default(),
        task_id: None,
        derived: Default::default(),
    }));
    let arguments = json!({"repo": "acme/app", "query": "label:bug state:open", "limit": 20, "token": "s3cr3t-value"});
    let facts = RequestFacts::default();
    let input = DecisionInput {
        phase: Phase::Call,
        route: &route,
        tool: "search_issues",
        arguments: &arguments,
        method: "tools/call",
        identity: &identity,
        request: &facts,
        context: ContextWire::none(),
    };
    let decision = Decision::new(Verdict::Allow, Reason::PolicyAllow, String::new());
    let tmp = tempfile::tempdir().expect("temp dir");
    let audit_cfg: config::Audit = toml::from_str(&format!(
        "dir = {:?}\nfsync = \"never\"\nmask = [{{ pointer = \"/token\" }}]\n",
        tmp.path().display().to_string()
    ))
    .expect("audit config");
    let plain = std::sync::Arc::new(Recorder::new());
    let recorder = Recorder::new();
    let audit =
        toolgate::audit::AuditLog::start(&audit_cfg, None, recorder.registry()).expect("log");
    // Shared as the gateway shares it: one count a request.
    let recorder = std::sync::Arc::new(recorder.with_audit(audit));

    let mut g = c.benchmark_group("audit");
    let record = |r: &std::sync::Arc<Recorder>| {
        let log = RequestLog::new(
            std::sync::Arc::clone(r),
            "github",
            Instant::now(),
            Duration::from_micros(3),
        );
        let d = log.decision(
            &input,
            decision.clone(),
            Duration::from_micros(2),
            "4bf92f3577b34da6a3ce929d0e0e4736",
        );
        black_box(d.is_allow());
    };
    g.bench_function("request_path_without_log", |b| b.iter(|| record(&plain)));
    g.bench_function("request_path_with_log", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                // Never measure a full queue: wait for the writer if it
                // lags, outside the timed part (the writer is measured
                // below).
                while recorder.audit().is_some_and(|a| !a.ready()) {
                    std::thread::yield_now();
                }
                let started = Instant::now();
                record(&recorder);
                spent += started.elapsed();
            }
            spent
        })
    });
    g.bench_function("writer_per_record", |b| {
        b.iter_custom(|iters| {
            let start_count = written(&recorder);
            let started = Instant::now();
            let cpu = writer_cpu();
            for _ in 0..iters {
                while recorder.audit().is_some_and(|a| !a.ready()) {
                    std::thread::yield_now();
                }
                record(&recorder);
            }
            while written(&recorder) < start_count + iters {
                std::thread::sleep(Duration::from_micros(200));
            }
            match (cpu, writer_cpu()) {
                (Some(before), Some(after)) => after.saturating_sub(before),
                _ => started.elapsed(),
            }
        })
    });
    g.finish();

    // A log of its own for the queries: SCANNED decisions over 20 tools,
    // one in four denied, written by the writer.
    let tmp = tempfile::tempdir().expect("temp dir");
    let scan_cfg: config::Audit = toml::from_str(&format!(
        "dir = {:?}\nfsync = \"never\"\nmask = [{{ pointer = \"/token\" }}]\n",
        tmp.path().display().to_string()
    ))
    .expect("audit config");
    let registry = Recorder::new();
    let scan_log =
        toolgate::audit::AuditLog::start(&scan_cfg, None, registry.registry()).expect("log");
    let recorder = std::sync::Arc::new(registry.with_audit(scan_log));
    let tools: Vec<String> = (0..20).map(|i| format!("tool_{i:02}")).collect();
    let before = written(&recorder);
    for i in 0..SCANNED {
        while recorder.audit().is_some_and(|a| !a.ready()) {
            std::thread::yield_now();
        }
        let log = RequestLog::new(
            std::sync::Arc::clone(&recorder),
            "github",
            Instant::now(),
            Duration::from_micros(3),
        );
        let input = DecisionInput {
            tool: &tools[i as usize % tools.len()],
            ..input
        };
        let decided = if i % 4 == 3 {
            Decision::new(Verdict::Deny, Reason::PolicyDeny, "no rule".into())
        } else {
            decision.clone()
        };
        log.decision(
            &input,
            decided,
            Duration::from_micros(2),
            "4bf92f3577b34da6a3ce929d0e0e4736",
        );
    }
    while written(&recorder) < before + SCANNED {
        std::thread::sleep(Duration::from_millis(1));
    }
    let dirs = [tmp.path().to_path_buf()];
    let lines = toolgate::audit::read::verify(&[tmp.path().to_path_buf()])
        .map(|s| s.lines)
        .expect("the log verifies");
    let params = |pairs: &[(&str, &str)], allowed: &[&str]| {
        Params::new(pairs.iter().copied(), allowed).expect("params")
    };
    let now = i64::try_from(toolgate::audit::now_ms()).unwrap_or(i64::MAX);
    let search = Search::parse(
        &params(&[("tool", "tool_07"), ("since", "1h")], &Search::PARAMS),
        now,
    )
    .expect("search");
    let denials = Denials::parse(
        &params(
            &[("by", "tool,reason,hour"), ("since", "1h")],
            &Denials::PARAMS,
        ),
        now,
    )
    .expect("denials");
    let drift = Drift::parse(&params(&[("since", "1h")], &Drift::PARAMS), now).expect("drift");
    let mut g = c.benchmark_group("audit_scan");
    g.throughput(Throughput::Elements(lines));
    g.sample_size(10);
    g.bench_function("search", |b| {
        b.iter(|| black_box(search.run(&dirs).expect("search runs").len()))
    });
    g.bench_function("denials", |b| {
        b.iter(|| black_box(denials.run(&dirs).expect("report runs").calls))
    });
    g.bench_function("drift", |b| {
        b.iter(|| black_box(drift.run(&dirs).expect("report runs")))
    });
    g.finish();
}

/// Decisions in the log the query benchmarks read.
const SCANNED: u64 = 50_000;

criterion_group!(benches, decisions);
criterion_main!(benches);
