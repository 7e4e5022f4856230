//! The load benchmark (README "Performance"; `benches/load.sh` runs it).
//!
//! One run measures, on loopback, interleaved over several rounds: (a) a
//! fast MCP echo upstream directly, (b) a bare hyper pass-through proxy in
//! front of it, (c) toolgate's full pipeline (ES256 JWT, `allowlist`,
//! `jit-grants` with a live grant, decision logging as in production), (d)
//! the same with a denied call, (e) a 100-tool `tools/list` filtered by
//! policy, (f) an SSE call's time to first event direct vs through toolgate;
//! then the scale rows (1k / 100k / 1M live grants) and a policy hot swap
//! under load. It prints a table and writes it as JSON with the raw outputs.
//!
//! `cargo bench --bench load` (what `load.sh` runs) is the full run.
//! `cargo test --all-targets` runs this target without `--bench`: a short
//! smoke run against the debug build — every row must answer as expected;
//! no speed is asserted. The same binary is also each helper process:
//! `load upstream`, `load proxy --upstream PORT`, `load scale ...`; and
//! `load profile [--seconds S] [--row b|c|e|g] [--audit]` counts a row's
//! instructions per request under callgrind (`benches/load.sh profile`):
//! row (c) by default; `--audit` is `--row g`, the same with the decision
//! log on; `--row e` the filtered 100-tool `tools/list`; `--row b` the
//! bare proxy relaying row (c)'s request, the baseline's count.

mod gateway;
mod generate;
mod procs;
mod profile;
mod proxy;
mod report;
mod rounds;
mod scale;
mod upstream;

use std::path::PathBuf;
use std::time::Duration;

/// The gateway's allocator (src/main.rs) for every process this binary
/// is — the bare proxy, the upstream and the scale rows' store — so that
/// the baseline and the scale figures are measured on the same footing.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// What one run does.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) smoke: bool,
    pub(crate) rounds: usize,
    /// Length of each saturated (requests/s) run.
    pub(crate) rps_for: Duration,
    /// Length of each fixed-rate (latency) run.
    pub(crate) latency_for: Duration,
    pub(crate) rate: u32,
    pub(crate) sse_rate: u32,
    /// Connections of the saturated runs.
    pub(crate) conns: usize,
    /// Back-to-back short saturated runs of (c) and (g) per round, and
    /// their length: the decision log's cost, paired (`rounds::log_pairs`).
    pub(crate) log_pairs: usize,
    pub(crate) log_pair_for: Duration,
    pub(crate) scale: Vec<usize>,
    pub(crate) scale_calls: usize,
    pub(crate) swap_for: Duration,
    pub(crate) wrk: bool,
    /// Pin the process under test to CPU 0 and the load to CPU 1.
    pub(crate) pin: bool,
    pub(crate) out: PathBuf,
    /// `--rows`: only these rows (keys `a`–`g`, and `swap`, `scale`); an
    /// empty list is every row.
    pub(crate) only: Vec<String>,
}

impl Plan {
    /// Whether `part` (a row key, `f`, `swap` or `scale`) runs.
    pub(crate) fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

impl Plan {
    fn full() -> Self {
        Self {
            smoke: false,
            rounds: 5,
            rps_for: Duration::from_secs(10),
            latency_for: Duration::from_secs(10),
            rate: 2_000,
            sse_rate: 500,
            conns: 32,
            log_pairs: 4,
            log_pair_for: Duration::from_secs(2),
            scale: vec![1_000, 100_000, 1_000_000],
            // CPU time is read in clock ticks (10 ms): 200k calls of ≈ 8 µs
            // are ≈ 160 ticks, a reading to within 1 %.
            scale_calls: 200_000,
            swap_for: Duration::from_secs(10),
            wrk: true,
            pin: true,
            out: repo().join("target/load"),
            only: Vec::new(),
        }
    }

    /// About ten seconds of load, against whatever build ran it.
    fn smoke() -> Self {
        Self {
            smoke: true,
            rounds: 1,
            // About 10 s of load in all: 0.5 s a row saturated and 0.5 s
            // at the fixed rate, (f) both ways, (c)/(g) paired and side by
            // side, 2 s of hot swaps.
            rps_for: Duration::from_millis(500),
            latency_for: Duration::from_millis(500),
            rate: 50,
            sse_rate: 50,
            conns: 4,
            log_pairs: 1,
            log_pair_for: Duration::from_millis(500),
            scale: vec![1_000, 10_000],
            scale_calls: 300,
            swap_for: Duration::from_secs(2),
            wrk: false,
            pin: false,
            out: repo().join("target/load/smoke"),
            only: Vec::new(),
        }
    }
}

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const USAGE: &str = "usage: load [--rounds N] [--seconds S] [--rate RPS] [--out DIR] [--rows a,b,c,d,e,f,g,swap,scale] [--no-wrk] [--no-pin] [--smoke]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
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
    match args.first().map(String::as_str) {
        Some("upstream") => return upstream::serve(),
        Some("proxy") => {
            let port = number("--upstream").expect("proxy --upstream PORT");
            return proxy::serve(u16::try_from(port).expect("a port"));
        }
        Some("profile") => {
            let row = match arg("--row") {
                Some(key) => profile::Row::parse(&key)
                    .unwrap_or_else(|| panic!("profile --row wants b, c, e or g, got {key:?}")),
                None if args.iter().any(|a| a == "--audit") => profile::Row::G,
                None => profile::Row::C,
            };
            return profile::run(number("--seconds").unwrap_or(20), row);
        }
        Some("scale") => {
            let wasm = PathBuf::from(arg("--wasm").expect("scale --wasm DIR"));
            let grants = number("--grants").expect("scale --grants N");
            let calls = number("--calls").unwrap_or(10_000);
            return scale::run(&wasm, grants as usize, calls as usize);
        }
        _ => {}
    }
    // `cargo bench` passes --bench; `cargo test` passes nothing, or the
    // test-name filter it was given: then run only if it names this target.
    let bench = args.iter().any(|a| a == "--bench");
    let values = ["--rounds", "--seconds", "--rate", "--out", "--rows"];
    let filters: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--") && (*i == 0 || !values.contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a)
        .collect();
    if !bench && filters.iter().any(|f| !"load".contains(f.as_str())) {
        println!("load: skipped (filtered out)");
        return;
    }
    let mut plan = if bench && !args.iter().any(|a| a == "--smoke") {
        Plan::full()
    } else {
        Plan::smoke()
    };
    if let Some(n) = number("--rounds") {
        plan.rounds = n.max(1) as usize;
    }
    if let Some(s) = number("--seconds") {
        plan.rps_for = Duration::from_secs(s.max(1));
        plan.latency_for = Duration::from_secs(s.max(1));
    }
    if let Some(r) = number("--rate") {
        plan.rate = u32::try_from(r.max(1)).expect("a rate");
    }
    if let Some(out) = arg("--out") {
        // Absolute: the gateways' configs (and their decision logs) are
        // written there and resolve relative paths against it.
        plan.out = std::path::absolute(&out).unwrap_or_else(|_| PathBuf::from(out));
    }
    if let Some(rows) = arg("--rows") {
        plan.only = rows.split(',').map(|r| r.trim().to_owned()).collect();
    }
    if args.iter().any(|a| a == "--no-wrk") {
        plan.wrk = false;
    }
    if args.iter().any(|a| a == "--no-pin") {
        plan.pin = false;
    }
    rounds::run(&plan);
}
