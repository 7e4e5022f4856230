//! The decide stage's cost: one warm decision per policy module (input
//! encoding included), the host's own parts of one (encoding the whole
//! input and the values of the allowlist's declared fields, evaluating a
//! module that reads nothing), a fresh instance (instantiate + configure), and the `list`
//! phase over a 100-tool `tools/list` result. Modules are built from
//! `policy-modules/` first (cached by cargo).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};

use toolgate::config;
use toolgate::decide::{ContextWire, DecisionInput, Phase, RequestFacts};
use toolgate::identify::spiffe::SpiffeId;
use toolgate::identify::{Delegation, Identity, Workload};
use toolgate::snapshot::Snapshot;

const MODULES: [(&str, &str); 4] = [
    (
        "allowlist",
        "rules = [{ trust_domains = [\"example.org\"], tools = [\"search_*\", \"echo\"] }]",
    ),
    (
        "arg-constraints",
        "rules = [{ tools = [\"read_file\"], pointer = \"/path\", path_prefix = \"/workspace/\" }]",
    ),
    ("task-budget", "max_calls = 100"),
    ("jit-grants", "missing = \"deny\""),
];

fn build() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policy-modules");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&dir)
        .args(["build", "--release", "--target", "wasm32-unknown-unknown"])
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS");
    for (m, _) in MODULES {
        cmd.args(["-p", m]);
    }
    let status = cmd.status().expect("cargo runs");
    assert!(status.success(), "building policy modules failed");
    dir.join("target/wasm32-unknown-unknown/release")
}

fn snapshot(out: &Path) -> Snapshot {
    toolgate::install_crypto_provider();
    let mut text = String::from("[policy_limits]\nwatch = false\ndeadline = \"100ms\"\n");
    for (name, table) in MODULES {
        text.push_str(&format!(
            "[[routes]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"http://127.0.0.1:1\"\n\
             [[policies]]\nname = \"{name}\"\nmodule = \"{}\"\nroutes = [\"{name}\"]\n[policies.config]\n{table}\n",
            out.join(format!("{}.wasm", name.replace('-', "_"))).display()
        ));
    }
    // Baseline: a hand-written module that answers without reading its input,
    // i.e. the host's own cost per decision.
    text.push_str(&format!(
        "[[routes]]\nname = \"baseline\"\npath = \"/baseline\"\nupstream = \"http://127.0.0.1:1\"\n\
         [[policies]]\nname = \"baseline\"\nmodule = \"{}\"\nroutes = [\"baseline\"]\n",
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/policies/allow.wat")
            .display()
    ));
    let cfg = config::load_str(&text, "bench", Path::new(".")).expect("config");
    Snapshot::build(&cfg, None).expect("snapshot")
}

fn identity() -> Identity {
    let subject = "spiffe://example.org/agent/triage";
    Identity::Workload(Arc::new(Workload {
        subject: subject.into(),
        issuer: "https://spire.example.org".into(),
        spiffe: SpiffeId::parse(subject).ok(),
        audience: vec!["https://tools.example.com/mcp".into()],
        scopes: vec!["tools:call".into()],
        expires_at: 4_000_000_000,
        claims: serde_json::Map::new(),
        delegation: Delegation::default(),
        task_id: None,
        derived: Default::default(),
    }))
}

fn decisions(c: &mut Criterion) {
    let snap = snapshot(&build());
    let facts = RequestFacts::default();
    let who = identity();
    let args = json!({"path": "/workspace/src/main.rs", "query": "label:bug"});
    let mut g = c.benchmark_group("decide_warm");
    for name in std::iter::once("baseline").chain(MODULES.map(|(n, _)| n)) {
        let (route, _) = snap.route_for(&format!("/{name}")).expect("route");
        let input = DecisionInput {
            phase: Phase::Call,
            route,
            tool: "search_issues",
            arguments: &args,
            method: "tools/call",
            identity: &who,
            request: &facts,
            context: ContextWire::none(),
        };
        snap.policy
            .decide_now(&input, &toolgate::decide::Budget::unlimited());
        g.bench_function(name, |b| {
            b.iter(|| {
                black_box(
                    snap.policy
                        .decide_now(black_box(&input), &toolgate::decide::Budget::unlimited()),
                )
            })
        });
    }
    g.finish();

    // The host's own parts of one decision.
    let (route, _) = snap.route_for("/baseline").expect("route");
    let input = DecisionInput {
        phase: Phase::Call,
        route,
        tool: "search_issues",
        arguments: &args,
        method: "tools/call",
        identity: &who,
        request: &facts,
        context: ContextWire::none(),
    };
    let wire = toolgate::decide::input::encode(&input);
    wire.with(None, |doc| black_box(doc.len()));
    c.bench_function("host_encode_input", |b| {
        b.iter(|| toolgate::decide::input::encode(black_box(&input)).with(None, |d| d.len()))
    });
    // The same input as the allowlist declares it: its fields' values.
    let allowlist = snap
        .policy
        .modules()
        .iter()
        .find(|m| &*m.name == "allowlist")
        .expect("the allowlist module");
    let declared = allowlist.declared().cloned().map(Arc::new);
    assert!(
        declared.is_some(),
        "the allowlist declares its input fields"
    );
    c.bench_function("host_encode_input_allowlist_values", |b| {
        b.iter(|| {
            toolgate::decide::input::encode(black_box(&input)).with(declared.as_ref(), |d| d.len())
        })
    });
    let baseline = &snap.policy.modules()[MODULES.len()];
    c.bench_function("host_evaluate_baseline_module", |b| {
        b.iter(|| black_box(baseline.evaluate(black_box(&wire))).expect("answers"))
    });

    let mut g = c.benchmark_group("instantiate");
    for module in snap.policy.modules() {
        g.bench_function(&*module.name, |b| {
            b.iter(|| module.instantiate_once().expect("instantiates"))
        });
    }
    g.finish();

    // tools/list with 100 tools: the list phase decides once per tool.
    let (route, _) = snap.route_for("/allowlist").expect("route");
    let names: Vec<String> = (0..100).map(|i| format!("search_tool_{i}")).collect();
    c.bench_function("list_phase_100_tools_allowlist", |b| {
        b.iter(|| {
            names
                .iter()
                .filter(|tool| {
                    let input = DecisionInput {
                        phase: Phase::List,
                        route,
                        tool,
                        arguments: &Value::Null,
                        method: "tools/list",
                        identity: &who,
                        request: &facts,
                        context: ContextWire::none(),
                    };
                    snap.policy
                        .decide_now(&input, &toolgate::decide::Budget::unlimited())
                        .is_allow()
                })
                .count()
        })
    });
}

criterion_group!(benches, decisions);
criterion_main!(benches);
