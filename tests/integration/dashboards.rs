//! The Grafana dashboard (`config/grafana/toolgate.json`) and the Prometheus
//! alert rules (`config/prometheus/`): the real `promtool` checks the rules
//! and runs their unit tests, and every expression in both names only
//! metrics and labels a running gateway exports. The metrics the issue asks
//! for that need a cause (a grant running out, an approval waiting) are
//! proven by scraping `/metrics` after causing them.

mod metrics;
mod promql;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use crate::common::upstream::FakeUpstream;
use crate::common::{TestGateway, metric_in, post_mcp, send};
use crate::policy::{fixture, tools_upstream};
use crate::tasks::{AGENT, config, create_task, issue_grant, raw_call, refusal, token};

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// `promtool`, or a failure that says how to get it.
fn promtool(args: &[&str], dir: &Path) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install the Debian `prometheus` package \
                 (apt-get install prometheus; .ci/run does this in CI)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let dir = config_dir().join("prometheus");
    let checked = promtool(&["check", "rules", "toolgate-rules.yml"], &dir);
    assert!(checked.contains("SUCCESS"), "{checked}");
    let tested = promtool(&["test", "rules", "toolgate-rules.test.yml"], &dir);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// Metric name → the labels its samples carry, from a `/metrics` text.
fn exported(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let sample = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        let set = out.entry(sample.split('{').next().unwrap_or(sample).to_owned());
        let names = promql::names(sample).expect("a well-formed sample");
        set.or_default().extend(names.labels);
    }
    out
}

/// Every PromQL expression in the dashboard: panel targets and the
/// template variables' queries (`label_values(metric, label)`, in the form
/// `metric{label=""}` so the same check reads it).
fn dashboard_expressions(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    ("definition", Value::String(q)) => {
                        let inner = q
                            .strip_prefix("label_values(")
                            .and_then(|q| q.strip_suffix(')'))
                            .unwrap_or_else(|| panic!("unexpected variable query {q:?}"));
                        let (metric, label) = inner.split_once(',').expect("metric, label");
                        out.push(format!("{}{{{}=\"\"}}", metric.trim(), label.trim()));
                    }
                    _ => dashboard_expressions(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| dashboard_expressions(i, out)),
        _ => {}
    }
}

/// Every expression in the rules, and every series their unit tests feed.
fn rule_expressions() -> Vec<String> {
    let dir = config_dir().join("prometheus");
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let rules = read("toolgate-rules.yml");
    let mut out: Vec<String> = rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| r["expr"].as_str().expect("expr").to_owned())
        .collect();
    let tests = read("toolgate-rules.test.yml");
    for t in tests["tests"].as_array().expect("tests") {
        for s in t["input_series"].as_array().expect("input_series") {
            out.push(s["series"].as_str().expect("series").to_owned());
        }
    }
    out
}

/// Labels Prometheus adds to every series it scrapes.
const TARGET_LABELS: [&str; 2] = ["instance", "job"];

/// A gateway with a task store, a decision log, the real `jit-grants`
/// module and a module that traps, after a mix of calls: allowed through a
/// grant, parked for approval, faulted.
async fn busy_gateway(tmp: &Path) -> (TestGateway, FakeUpstream, String) {
    let up = tools_upstream().await;
    let extra = format!(
        "[audit]\ndir = \"{dir}\"\n\
         [[routes]]\nname = \"broken\"\npath = \"/broken\"\nupstream = \"{up}\"\n\
         [[policies]]\nname = \"trap\"\nmodule = \"{trap}\"\nroutes = [\"broken\"]\n",
        dir = tmp.join("audit").display(),
        up = up.url("/mcp"),
        trap = fixture("trap.wat").display(),
    );
    let gw = TestGateway::start(&config(
        "tools",
        &up.url("/mcp"),
        "needs_approval",
        "",
        &extra,
    ))
    .await;
    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "echo", None).await;
    let bearer = token(AGENT, "tools", None);
    // The upstream's tools/list makes its tool names labels; others are "other".
    let auth = format!("Bearer {bearer}");
    let headers = [
        ("authorization", auth.as_str()),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
        ("x-toolgate-task", task.as_str()),
    ];
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
    let r = post_mcp(&gw.url("/tools"), &headers, &list).await;
    assert!(r.text().contains("echo"), "{}", r.text());
    let r = raw_call(
        &gw,
        "tools",
        &bearer,
        Some(&task),
        "echo",
        json!({"text": "hi"}),
    )
    .await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    let r = raw_call(&gw, "tools", &bearer, Some(&task), "search", json!({})).await;
    assert!(refusal(&r).is_some(), "parked: {}", r.text());
    let r = raw_call(&gw, "broken", &bearer, None, "echo", json!({})).await;
    assert!(
        refusal(&r).unwrap().contains("policy_error"),
        "{}",
        r.text()
    );
    (gw, up, grant)
}

async fn scrape(gw: &TestGateway) -> String {
    send(Method::GET, &gw.admin_url("/metrics"), &[], Bytes::new())
        .await
        .text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_expression_names_metrics_and_labels_the_gateway_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let (gw, _up, _) = busy_gateway(tmp.path()).await;
    // The writer thread counts its lines once it has written them.
    let mut text = scrape(&gw).await;
    for _ in 0..100 {
        if metric_in(&text, "toolgate_audit_records_total{kind=\"decision\"}") >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        text = scrape(&gw).await;
    }
    let metrics = exported(&text);

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(config_dir().join("grafana/toolgate.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    dashboard_expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 20, "{exprs:?}");
    let from_dashboard = exprs.len();
    exprs.extend(rule_expressions());
    assert!(exprs.len() >= from_dashboard + 8, "{exprs:?}");

    let mut wrong = Vec::new();
    let mut used = BTreeSet::new();
    for expr in &exprs {
        let names = promql::names(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        assert!(!names.metrics.is_empty(), "names no metric: {expr}");
        let mut labels: BTreeSet<&str> = TARGET_LABELS.into_iter().collect();
        for m in &names.metrics {
            used.insert(m.clone());
            match metrics.get(m) {
                Some(l) => labels.extend(l.iter().map(String::as_str)),
                None => wrong.push(format!("metric {m} (in {expr})")),
            }
        }
        for l in &names.labels {
            if !labels.contains(l.as_str()) {
                wrong.push(format!("label {l} (in {expr})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "not exported by the gateway:\n{}\n--- /metrics:\n{text}",
        wrong.join("\n")
    );
    // The dashboard and the rules cover what the issue asks to watch.
    for m in [
        "toolgate_decisions_total",
        "toolgate_requests_total",
        "toolgate_identify_seconds_bucket",
        "toolgate_decide_seconds_bucket",
        "toolgate_upstream_first_byte_seconds_bucket",
        "toolgate_request_duration_seconds_bucket",
        "toolgate_approvals_pending",
        "toolgate_approvals_oldest_pending_age_seconds",
        "toolgate_task_events_total",
        "toolgate_audit_dropped_total",
        "toolgate_audit_healthy",
        "toolgate_policy_faults_total",
        "toolgate_policy_reloads_total",
    ] {
        assert!(used.contains(m), "nothing watches {m}");
    }
    gw.stop().await;
}
