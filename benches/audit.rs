//! What the decision log costs per decision: on the request path (a place
//! reserved, a compact record built and its facts copied into the outbox,
//! against the same decision recorded without a log), and on the writer
//! thread (masked, serialized, hash-chained and written, `fsync =
//! "never"`), per record: the writer thread's own time on a CPU (from
//! `/proc/self/task/TID/schedstat` on Linux; wall time elsewhere), so that
//! the time it sleeps between batches is not counted as its cost.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

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
}

criterion_group!(benches, decisions);
criterion_main!(benches);
