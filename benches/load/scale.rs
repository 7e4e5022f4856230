//! Scale rows, in a process of their own: the store holds N live grants
//! spread over 10k tasks (made through the store API directly), and one
//! call's task context + decision + settlement — the per-call work that
//! could grow with the store — is timed with the real policy modules. The
//! grants' memory is the resident-set growth they caused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde_json::{Value, json};

use toolgate::context::{Live, Settle, settle};
use toolgate::decide::{DecisionInput, Phase, RequestFacts, Verdict};
use toolgate::identify::spiffe::SpiffeId;
use toolgate::identify::{Delegation, Identity, Workload};
use toolgate::snapshot::Snapshot;
use toolgate::store::memory::StoreLimits;
use toolgate::store::model::{Grant, GrantSource, Task, TaskState, new_id, now_ms};
use toolgate::store::{MemoryStore, Store};
use toolgate::tasks::Tasks;

use super::gateway::{AGENT, policy_toml};
use super::procs;

pub(crate) const TASKS: usize = 10_000;

/// Fills a store with `grants` live grants over [`TASKS`] tasks, times
/// `calls` decisions, prints one JSON line.
pub(crate) fn run(wasm: &Path, grants: usize, calls: usize) {
    toolgate::install_crypto_provider();
    let text = format!(
        "{}\n[[routes]]\nname = \"tools\"\npath = \"/mcp\"\nupstream = \"http://127.0.0.1:9/mcp\"\n",
        policy_toml(wasm)
    );
    let cfg = toolgate::config::load_str(&text, "scale.toml", Path::new("."))
        .unwrap_or_else(|d| panic!("scale config: {d}"));
    let snap = Snapshot::build(&cfg, None).expect("snapshot");
    let limits = StoreLimits {
        max_tasks: TASKS * 2,
        ..StoreLimits::default()
    };
    let pid = std::process::id();
    let store = Arc::new(MemoryStore::in_memory(limits));
    let rss_empty = procs::status_kib(pid, "VmRSS");
    let now = now_ms();
    let tasks: Vec<String> = (0..TASKS)
        .map(|_| {
            let task = store.create_task(task(now)).expect("task");
            task.id
        })
        .collect();
    let caller = tasks[0].clone();
    store
        .issue_grant(grant(&caller, "echo", now))
        .expect("the caller's grant");
    let rss_tasks = procs::status_kib(pid, "VmRSS");
    for i in 0..grants {
        // Grant i goes to task i mod 10k; a task's grants name distinct tools.
        let tool = format!("tool_{:03}", (i / TASKS) % 1000);
        store
            .issue_grant(grant(&tasks[i % TASKS], &tool, now))
            .expect("grant");
    }
    let rss_grants = procs::status_kib(pid, "VmRSS");

    let tasks = Tasks::new(
        Arc::clone(&store) as Arc<dyn Store>,
        &prometheus::Registry::new(),
    );
    let who = identity(&caller);
    let facts = RequestFacts {
        era: Some("legacy"),
        protocol_version: Some("2025-11-25".into()),
        ..RequestFacts::default()
    };
    let (route, _) = snap.route_for("/mcp").expect("route");
    let args = json!({"text": "hello"});
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let one = || async {
        let store = tasks.store().as_ref();
        let live = Live::build(store, &who, &facts);
        let (context, grants) = live.for_call(store, &route.name, "echo");
        let input = DecisionInput {
            phase: Phase::Call,
            route,
            tool: "echo",
            arguments: &args,
            method: "tools/call",
            identity: &who,
            request: &facts,
            context: &context,
        };
        let decision = snap
            .policy
            .decide_now(&input, &toolgate::decide::Budget::unlimited());
        let held = AtomicBool::new(false);
        let caller_left = tokio_util::sync::CancellationToken::new();
        let call = Settle {
            tasks: &tasks,
            snapshot: &snap,
            route,
            live: &live,
            tool: "echo",
            arguments: &args,
            grants,
            kept: None,
            held: &held,
            caller_left: &caller_left,
        };
        settle(call, decision).await
    };
    rt.block_on(async {
        // Warm the module instances and caches first.
        for _ in 0..calls.min(1000) {
            let d = one().await;
            assert_eq!(d.verdict, Verdict::Allow, "the grant allows: {d:?}");
        }
        let (cpu0, wall0) = (procs::cpu_us(pid), Instant::now());
        for _ in 0..calls {
            std::hint::black_box(one().await);
        }
        let wall = wall0.elapsed().as_secs_f64() * 1e6 / calls as f64;
        let cpu = (procs::cpu_us(pid) - cpu0) as f64 / calls as f64;
        let per_grant = (rss_grants.saturating_sub(rss_tasks) * 1024) as f64 / grants.max(1) as f64;
        let out: Value = json!({
            "grants": grants,
            "tasks": TASKS,
            "decision_cpu_us": cpu,
            "decision_wall_us": wall,
            "rss_empty_kib": rss_empty,
            "rss_tasks_kib": rss_tasks,
            "rss_grants_kib": rss_grants,
            "bytes_per_grant": per_grant,
            "peak_rss_kib": procs::status_kib(pid, "VmHWM"),
        });
        println!("SCALE {out}");
    });
}

fn task(now: u64) -> Task {
    Task {
        id: new_id("task"),
        agent: AGENT.to_owned(),
        issuer: None,
        on_behalf_of: None,
        purpose: "load benchmark".into(),
        labels: BTreeMap::new(),
        created_at_ms: now,
        expires_at_ms: now + 6 * 3_600_000,
        created_by: "bench".into(),
        state: TaskState::Active,
        ended: None,
    }
}

fn grant(task_id: &str, tool: &str, now: u64) -> Grant {
    Grant {
        id: new_id("grant"),
        task_id: task_id.to_owned(),
        agent: AGENT.to_owned(),
        tool: tool.to_owned(),
        tool_exact: false,
        route: None,
        constraints: Vec::new(),
        not_before_ms: None,
        expires_at_ms: now + 6 * 3_600_000,
        max_uses: None,
        uses: 0,
        reason: "load benchmark".into(),
        granted_by: "bench".into(),
        created_at_ms: now,
        source: GrantSource::Operator,
        argument_digest: None,
        revoked: None,
    }
}

fn identity(task: &str) -> Identity {
    Identity::Workload(Arc::new(Workload {
        subject: AGENT.into(),
        issuer: toolgate::identify::mint::DEV_ISSUER.into(),
        spiffe: SpiffeId::parse(AGENT).ok(),
        audience: vec![super::gateway::AUDIENCE.into()],
        scopes: Vec::new(),
        expires_at: 4_000_000_000,
        claims: serde_json::Map::new(),
        delegation: Delegation::default(),
        task_id: Some(task.to_owned()),
        derived: Default::default(),
    }))
}
