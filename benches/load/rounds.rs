//! One load run: start the processes, then the rounds — each saturates
//! every row in turn (requests/s, CPU per call) and drives it at the fixed
//! rate (latency), rows in a rotating order — then the SSE rows, the scale
//! rows and the hot swap; then the report.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::gateway;
use super::generate::{self, Expect, Latencies, Tally, Target};
use super::procs;
use super::report::{Report, RowResult, ScaleResult, Swap};
use super::{Plan, repo};

/// The CPU the process under test runs on, and the one the load (and
/// the upstream behind a proxy) runs on, when pinning.
const UNDER_TEST: usize = 0;
const LOAD: usize = 1;

/// A progress line on stderr, with the seconds since the run started.
macro_rules! step {
    ($($arg:tt)*) => {
        eprintln!("load [{:6.1}s] {}", started().elapsed().as_secs_f64(), format!($($arg)*))
    };
}

fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

/// One measured row: what to send, and which process pays for it.
struct Row {
    key: &'static str,
    what: &'static str,
    target: Arc<Target>,
    pid: u32,
    /// The upstream that answers it (for (a), the process under test).
    upstream: u32,
    result: RowResult,
}

pub(crate) fn run(plan: &Plan) {
    let _ = started();
    let raw = plan.out.join("raw");
    std::fs::create_dir_all(&raw).expect("results folder");
    let pin = plan.pin && procs::have("taskset") && cores() >= 2;
    let use_wrk = plan.wrk && procs::have("wrk");
    if plan.wrk && !use_wrk {
        step!(
            "wrk not found; saturating with the built-in generator (benches/load.sh installs wrk)"
        );
    }
    if pin {
        // This process is the load generator: everything it starts inherits CPU 1.
        let _ = std::process::Command::new("taskset")
            .args([
                "-a",
                "-cp",
                &LOAD.to_string(),
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .status();
    }
    let cpu = |c: usize| pin.then_some(c);
    step!("building the policy modules");
    let wasm = gateway::build_modules(&repo());
    let me = std::env::current_exe().expect("own path");

    // (a) is the upstream alone on the CPU under test; (b)-(f) share a
    // second copy on the load CPU.
    let (upstream_direct, direct_port) = procs::spawn_listening(
        "upstream (a)",
        with_args(procs::command(&me, cpu(UNDER_TEST)), &["upstream"]),
    );
    let (upstream, upstream_port) = procs::spawn_listening(
        "upstream",
        with_args(procs::command(&me, cpu(LOAD)), &["upstream"]),
    );
    let mut proxy_cmd = procs::command(&me, cpu(UNDER_TEST));
    proxy_cmd
        .args(["proxy", "--upstream", &upstream_port.to_string()])
        .env("TOKIO_WORKER_THREADS", "1");
    let (proxy, proxy_port) = procs::spawn_listening("bare proxy", proxy_cmd);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    step!("starting toolgate");
    // `LOAD_C_BIN` (with `LOAD_C_AUDIT`): row (c) is another build,
    // writing the log too — two builds' costs side by side.
    let base_bin = std::env::var_os("LOAD_C_BIN").map(PathBuf::from);
    let base_audit = std::env::var_os("LOAD_C_AUDIT").map(|_| plan.out.join("audit-c"));
    if let Some(dir) = &base_audit {
        let _ = std::fs::remove_dir_all(dir);
    }
    // Row (c)'s gateway loads its modules from copies that the hot swap
    // rewrites: each reload swaps in a module whose bytes differ.
    let swapped = Swapped::new(&wasm, &plan.out.join("modules"));
    let gw = rt.block_on(gateway::start(
        &repo(),
        &swapped.dir,
        upstream_port,
        &plan.out,
        cpu(UNDER_TEST),
        true,
        &[],
        base_audit.as_deref(),
        base_bin.as_deref(),
    ));
    // (g): the same gateway writing the decision log, on the same CPU (one
    // of the two is under load at a time).
    let audit_dir = plan.out.join("audit");
    let _ = std::fs::remove_dir_all(&audit_dir);
    let gw_log = rt.block_on(gateway::start(
        &repo(),
        &wasm,
        upstream_port,
        &plan.out,
        cpu(UNDER_TEST),
        true,
        &[],
        Some(&audit_dir),
        None,
    ));

    let headers_of = |gw: &gateway::Gateway, auth: bool| {
        let mut h = vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (
                "accept".to_owned(),
                "application/json, text/event-stream".to_owned(),
            ),
            ("mcp-protocol-version".to_owned(), "2025-11-25".to_owned()),
            ("mcp-session-id".to_owned(), gw.session.clone()),
        ];
        if auth {
            h.push(("authorization".to_owned(), format!("Bearer {}", gw.token)));
        }
        h
    };
    let call = |tool: &str| {
        Bytes::from(
            json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                   "params": {"name": tool, "arguments": {"text": "hello"}}})
            .to_string(),
        )
    };
    let list = Bytes::from(r#"{"jsonrpc":"2.0","id":8,"method":"tools/list","params":{}}"#);
    let echoed = Expect {
        status: 200,
        contains: r#""text":"hello""#,
        lacks: Some(r#""isError":true"#),
    };
    let headers = |auth: bool| headers_of(&gw, auth);
    let target = |port, auth, body: &Bytes, expect| {
        Arc::new(Target {
            port,
            path: "/mcp".into(),
            headers: headers(auth),
            body: body.clone(),
            expect,
        })
    };
    let mut rows = vec![
        Row {
            key: "a",
            what: "upstream directly",
            target: target(direct_port, true, &call("echo"), echoed),
            pid: upstream_direct.pid(),
            upstream: upstream_direct.pid(),
            result: RowResult::default(),
        },
        Row {
            key: "b",
            what: "bare hyper proxy (baseline)",
            target: target(proxy_port, true, &call("echo"), echoed),
            pid: proxy.pid(),
            upstream: upstream.pid(),
            result: RowResult::default(),
        },
        Row {
            key: "c",
            what: "toolgate: JWT + allowlist + jit-grants, allowed",
            target: target(gw.port, true, &call("echo"), echoed),
            pid: gw.proc.pid(),
            upstream: upstream.pid(),
            result: RowResult::default(),
        },
        Row {
            key: "g",
            what: "toolgate: row (c) writing the decision log",
            target: Arc::new(Target {
                port: gw_log.port,
                path: "/mcp".into(),
                headers: headers_of(&gw_log, true),
                body: call("echo"),
                expect: echoed,
            }),
            pid: gw_log.proc.pid(),
            upstream: upstream.pid(),
            result: RowResult::default(),
        },
        Row {
            key: "d",
            what: "toolgate: the same, denied (isError)",
            target: target(
                gw.port,
                true,
                &call("forbidden"),
                Expect {
                    status: 200,
                    contains: r#""isError":true"#,
                    lacks: None,
                },
            ),
            pid: gw.proc.pid(),
            upstream: upstream.pid(),
            result: RowResult::default(),
        },
        Row {
            key: "e",
            what: "toolgate: tools/list, 100 tools filtered",
            target: target(
                gw.port,
                true,
                &list,
                Expect {
                    status: 200,
                    contains: r#""name":"tool_011""#,
                    lacks: Some(r#""name":"forbidden""#),
                },
            ),
            pid: gw.proc.pid(),
            upstream: upstream.pid(),
            result: RowResult::default(),
        },
    ];
    // The hot swap loads row (c)'s call.
    let swap_target = Arc::clone(&rows[2].target);
    rows.retain(|r| plan.runs(r.key));
    let streamed = Expect {
        status: 200,
        contains: "event: message",
        lacks: Some(r#""isError":true"#),
    };
    let sse_direct = target(direct_port, true, &call("stream"), streamed);
    let sse_gateway = target(gw.port, true, &call("stream"), streamed);
    let mut ttfe_direct = Latencies::default();
    let mut ttfe_gateway = Latencies::default();

    let mut log_pairs: Vec<f64> = Vec::new();
    let mut log_together: Vec<f64> = Vec::new();
    for round in 0..plan.rounds {
        let order: Vec<usize> = (0..rows.len()).map(|i| (i + round) % rows.len()).collect();
        for &i in &order {
            let row = &mut rows[i];
            step!("round {} row ({}) saturated", round + 1, row.key);
            let file = raw.join(format!("round{}-{}-rps.txt", round + 1, row.key));
            saturate(plan, use_wrk, pin, &rt, row, &file);
        }
        let c = rows.iter().position(|r| r.key == "c");
        let g = rows.iter().position(|r| r.key == "g");
        if let (Some(c), Some(g)) = (c, g) {
            step!(
                "round {} rows (c) and (g), {} paired runs",
                round + 1,
                plan.log_pairs
            );
            for pair in 0..plan.log_pairs {
                let file =
                    |key: &str| raw.join(format!("round{}-pair{}-{key}.txt", round + 1, pair + 1));
                // Each pair runs the two rows back to back, in alternating
                // order, so that drift of the machine between them cancels.
                let first_c = (round * plan.log_pairs + pair).is_multiple_of(2);
                let mut rps = [0.0; 2];
                for (slot, i) in if first_c {
                    [(0, c), (1, g)]
                } else {
                    [(1, g), (0, c)]
                } {
                    let f = file(rows[i].key);
                    rps[slot] = burst(plan, use_wrk, pin, &rt, &mut rows[i], &f);
                }
                log_pairs.push(rps[1] / rps[0].max(f64::MIN_POSITIVE));
            }
            step!(
                "round {} rows (c) and (g) side by side, {} runs",
                round + 1,
                plan.log_pairs
            );
            for run in 0..plan.log_pairs {
                let file = |key: &str| {
                    raw.join(format!("round{}-together{}-{key}.txt", round + 1, run + 1))
                };
                let files = [file("c"), file("g")];
                if let Some(ratio) = together(plan, use_wrk, pin, &rt, &mut rows, [c, g], &files) {
                    log_together.push(ratio);
                }
            }
        }
        for &i in &order {
            let row = &mut rows[i];
            let rate = row.result.fixed_rate(plan.rate);
            step!("round {} row ({}) at {} req/s", round + 1, row.key, rate);
            let lat = rt.block_on(generate::open(
                &row.target,
                rate,
                plan.latency_for,
                16,
                false,
            ));
            row.result.add_latencies(lat);
        }
        if !plan.runs("f") {
            continue;
        }
        step!("round {} SSE first event", round + 1);
        for (target, into) in [
            (&sse_direct, &mut ttfe_direct),
            (&sse_gateway, &mut ttfe_gateway),
        ] {
            let lat = rt.block_on(generate::open(
                target,
                plan.sse_rate,
                plan.latency_for,
                16,
                true,
            ));
            into.tally.merge(lat.tally);
            into.us.extend(lat.us);
        }
    }
    for row in &mut rows {
        row.result.peak_rss_kib = procs::status_kib(row.pid, "VmHWM");
    }
    let gateway_log = plan.out.join("gateway.stderr.log");
    let log_bytes = std::fs::metadata(&gateway_log).map_or(0, |m| m.len());

    let swap = plan.runs("swap").then(|| {
        step!("policy hot swap under load");
        rt.block_on(hot_swap(&gw, &swap_target, plan.swap_for, &swapped))
    });

    // Each size runs up to 3 times, in alternating order, and the median
    // (by decision CPU) is kept: a shared machine's speed drifts by tens of
    // per cent over the seconds between one size's process and the next.
    let repeats = plan.rounds.clamp(1, 3);
    let mut runs: Vec<Vec<ScaleResult>> = vec![Vec::new(); plan.scale.len()];
    for r in 0..repeats {
        let mut order: Vec<usize> = (0..plan.scale.len()).collect();
        if r % 2 == 1 {
            order.reverse();
        }
        for i in order.into_iter().filter(|_| plan.runs("scale")) {
            let n = plan.scale[i];
            step!("scale row, {n} live grants ({}/{repeats})", r + 1);
            runs[i].push(scale_row(
                &me,
                &wasm,
                n,
                plan.scale_calls,
                cpu(UNDER_TEST),
                &raw,
                r,
            ));
        }
    }
    let scale: Vec<ScaleResult> = runs
        .into_iter()
        .filter_map(|mut of_size| {
            of_size.sort_by(|a, b| a.decision_cpu_us.total_cmp(&b.decision_cpu_us));
            let middle = of_size.len() / 2;
            (!of_size.is_empty()).then(|| of_size.swap_remove(middle))
        })
        .collect();

    let report = Report::new(
        plan,
        rows.iter()
            .map(|r| (r.key, r.what, r.result.clone()))
            .collect(),
        plan.runs("f").then_some((ttfe_direct, ttfe_gateway)),
        scale,
        swap,
        log_bytes,
        use_wrk,
        pin,
    )
    .with_log_pairs(log_pairs, log_together);
    report.write(&plan.out);
    println!("{}", report.table());
    // Keep the tail of the gateway's log, not gigabytes of decision lines.
    trim_log(&gateway_log, 2000);
    drop((gw, proxy, upstream, upstream_direct));
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "rows answered wrongly:\n{}",
        failures.join("\n")
    );
}

fn with_args(mut cmd: std::process::Command, args: &[&str]) -> std::process::Command {
    cmd.args(args);
    cmd
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The decision log's writer thread (`audit::writer`), whose CPU a row
/// reports apart: the log's cost, read off directly rather than as a
/// difference of two rows' noisy throughputs.
const WRITER_THREAD: &str = "toolgate-audit";

/// Saturates a row: requests/s and the CPU its process (and, of it, the
/// decision log's writer thread) spent per call.
fn saturate(
    plan: &Plan,
    use_wrk: bool,
    pin: bool,
    rt: &tokio::runtime::Runtime,
    row: &mut Row,
    file: &Path,
) {
    let (cpu0, upstream0) = (procs::cpu_us(row.pid), procs::cpu_us(row.upstream));
    let writer0 = procs::thread_cpu_us(row.pid, WRITER_THREAD);
    let (requests, rps, tally) = run_saturated(plan, use_wrk, pin, rt, row, file, plan.rps_for);
    let per_call = |us: u64| us as f64 / requests.max(1) as f64;
    let cpu = per_call(procs::cpu_us(row.pid).saturating_sub(cpu0));
    let upstream = per_call(procs::cpu_us(row.upstream).saturating_sub(upstream0));
    let writer = per_call(procs::thread_cpu_us(row.pid, WRITER_THREAD).saturating_sub(writer0));
    row.result
        .add_saturated(rps, (cpu, upstream, writer), tally);
}

/// One short saturated run of a (c)/(g) pair: its requests/s. Its answers
/// are checked with the row's; its speed is kept out of the row's medians.
fn burst(
    plan: &Plan,
    use_wrk: bool,
    pin: bool,
    rt: &tokio::runtime::Runtime,
    row: &mut Row,
    file: &Path,
) -> f64 {
    let (_, rps, tally) = run_saturated(plan, use_wrk, pin, rt, row, file, plan.log_pair_for);
    row.result.add_tally(tally);
    rps
}

/// Rows (c) and (g) loaded at once, each by its own generator, for twice a
/// pair's length: the two gateways share the CPU under test at every
/// moment, so whatever the machine does hits both alike. Returns (c)'s
/// CPU per call over (g)'s (the writer thread counted in (g)'s): the
/// throughput (g) keeps, each on a CPU of its own. `None` if either
/// answered nothing.
fn together(
    plan: &Plan,
    use_wrk: bool,
    pin: bool,
    rt: &tokio::runtime::Runtime,
    rows: &mut [Row],
    [c, g]: [usize; 2],
    files: &[std::path::PathBuf; 2],
) -> Option<f64> {
    let length = plan.log_pair_for * 2;
    let targets = [Arc::clone(&rows[c].target), Arc::clone(&rows[g].target)];
    let pids = [rows[c].pid, rows[g].pid];
    let cpu0 = pids.map(procs::cpu_us);
    let runs: [(u64, Tally); 2] = if use_wrk {
        std::thread::scope(|s| {
            let go = |i: usize| {
                let (target, file) = (&targets[i], &files[i]);
                s.spawn(move || {
                    let run = generate::wrk(target, plan.conns, length, pin.then_some(LOAD), file);
                    (run.requests, wrk_tally(&run, file))
                })
            };
            let (hc, hg) = (go(0), go(1));
            [hc.join().expect("wrk (c)"), hg.join().expect("wrk (g)")]
        })
    } else {
        let ((tc, _), (tg, _)) = rt.block_on(async {
            tokio::join!(
                generate::closed(&targets[0], plan.conns, length),
                generate::closed(&targets[1], plan.conns, length)
            )
        });
        [(tc.ok + tc.bad, tc), (tg.ok + tg.bad, tg)]
    };
    let cpu = [0, 1].map(|i| procs::cpu_us(pids[i]).saturating_sub(cpu0[i]));
    let [(nc, tc), (ng, tg)] = runs;
    for (i, line) in [
        (0, format!("{nc} requests, {} CPU-µs\n", cpu[0])),
        (1, format!("{ng} requests, {} CPU-µs\n", cpu[1])),
    ] {
        let _ = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&files[i])
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
    }
    rows[c].result.add_tally(tc);
    rows[g].result.add_tally(tg);
    if nc == 0 || ng == 0 || cpu.contains(&0) {
        return None;
    }
    Some((cpu[0] as f64 / nc as f64) / (cpu[1] as f64 / ng as f64))
}

/// Saturates `row` for `length`: requests sent, requests/s, the answers.
fn run_saturated(
    plan: &Plan,
    use_wrk: bool,
    pin: bool,
    rt: &tokio::runtime::Runtime,
    row: &Row,
    file: &Path,
    length: Duration,
) -> (u64, f64, Tally) {
    if use_wrk {
        let run = generate::wrk(&row.target, plan.conns, length, pin.then_some(LOAD), file);
        (run.requests, run.rps, wrk_tally(&run, file))
    } else {
        let (tally, rps) = rt.block_on(generate::closed(&row.target, plan.conns, length));
        let _ = std::fs::write(
            file,
            format!("built-in closed loop: {rps:.0} req/s, {tally:?}\n"),
        );
        (tally.ok + tally.bad, rps, tally)
    }
}

/// A `wrk` run's answers: its non-2xx/3xx responses and socket errors are the bad ones.
fn wrk_tally(run: &generate::WrkRun, file: &Path) -> Tally {
    Tally {
        ok: run.requests.saturating_sub(run.errors),
        bad: run.errors,
        first_bad: (run.errors > 0)
            .then(|| format!("wrk: {} errors, see {}", run.errors, file.display())),
    }
}

/// Closed-loop load on row (c) while the policy set is reloaded (and
/// swapped) every 250 ms through the admin API; every answer is checked.
async fn hot_swap(
    gw: &gateway::Gateway,
    target: &Arc<Target>,
    length: Duration,
    swapped: &Swapped,
) -> Swap {
    let admin = gw.admin;
    let variants = swapped.variants.clone();
    let path = swapped.dir.join("allowlist.wasm");
    let reloads = tokio::spawn(async move {
        let (mut ok, mut total, mut seen) = (0u64, 0u64, std::collections::BTreeSet::new());
        let end = tokio::time::Instant::now() + length;
        while tokio::time::Instant::now() < end {
            // The other variant, written aside and renamed into place.
            let (bytes, sha) = &variants[usize::try_from(total % 2).unwrap_or(0)];
            let aside = path.with_extension("next");
            std::fs::write(&aside, bytes).expect("module variant");
            std::fs::rename(&aside, &path).expect("module variant in place");
            let (status, _) = gateway::admin_call(admin, "/v1/policies/reload", None).await;
            total += 1;
            ok += u64::from(status == 200);
            // The gateway now runs that variant.
            let (_, listed) = gateway::admin_get(admin, "/v1/policies").await;
            let loaded = listed.to_string();
            if status == 200 && loaded.contains(sha.as_str()) {
                seen.insert(sha.clone());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        (ok, total, seen.len())
    });
    let (tally, _) = generate::closed(target, 8, length).await;
    let (reloads_ok, reloads, variants) = reloads.await.unwrap_or((0, 0, 0));
    Swap {
        requests: tally.ok + tally.bad,
        failed: tally.bad,
        first_failure: tally.first_bad,
        reloads,
        reloads_ok,
        variants,
    }
}

/// The modules of row (c)'s gateway, copied to `dir`, and two variants of
/// `allowlist.wasm` (its bytes, and the same with a custom section added:
/// the same rules, another SHA-256) with their digests, for the hot swap.
struct Swapped {
    dir: PathBuf,
    variants: Vec<(Vec<u8>, String)>,
}

impl Swapped {
    fn new(wasm: &Path, dir: &Path) -> Self {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("modules folder");
        for name in ["allowlist.wasm", "jit_grants.wasm"] {
            std::fs::copy(wasm.join(name), dir.join(name)).expect("module copy");
        }
        let original = std::fs::read(wasm.join("allowlist.wasm")).expect("allowlist module");
        // A custom section (id 0): its size, then its name, then its data.
        let name = b"toolgate-bench-swap";
        let mut other = original.clone();
        other.push(0);
        other.push(u8::try_from(1 + name.len()).expect("short section"));
        other.push(u8::try_from(name.len()).expect("short name"));
        other.extend_from_slice(name);
        let variants = [original, other]
            .into_iter()
            .map(|bytes| {
                let sha = hex::encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    &bytes,
                ));
                (bytes, sha)
            })
            .collect();
        Self {
            dir: dir.to_path_buf(),
            variants,
        }
    }
}

fn scale_row(
    me: &Path,
    wasm: &Path,
    grants: usize,
    calls: usize,
    cpu: Option<usize>,
    raw: &Path,
    repeat: usize,
) -> ScaleResult {
    let mut cmd = procs::command(me, cpu);
    cmd.arg("scale").arg("--wasm").arg(wasm).args([
        "--grants",
        &grants.to_string(),
        "--calls",
        &calls.to_string(),
    ]);
    let out = cmd.output().expect("scale row runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let _ = std::fs::write(raw.join(format!("scale-{grants}-{repeat}.txt")), &text);
    assert!(
        out.status.success(),
        "scale row with {grants} grants failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("SCALE "))
        .expect("the scale row prints its result");
    serde_json::from_str(line).expect("scale result JSON")
}

/// Keeps only the last `lines` lines of a log file.
fn trim_log(path: &Path, lines: usize) {
    let Ok(tail) = std::process::Command::new("tail")
        .arg("-n")
        .arg(lines.to_string())
        .arg(path)
        .output()
    else {
        return;
    };
    let _ = std::fs::write(path, tail.stdout);
}
