//! The exact decision-log line of an allowed, a denied, an approved and a
//! policy-error call, and of the events around them (task created, grant
//! issued, approval parked and approved, admin actions); masked arguments
//! appear in clear nowhere: not in the log, the metrics or the answers;
//! a forwarded call's line splits its latency (identify, decide, upstream).

use http::Method;
use serde_json::{Value, json};
use toolgate::identify::mint::DEV_ISSUER;

use super::*;
use crate::common::{TestGateway, send};
use crate::policy::fixture;
use crate::tasks::{AGENT, admin, config, create_task, issue_grant, raw_call, refusal, token};

const SECRET: &str = "hunter2-very-secret";
const CARD: &str = "4111-1111-1111-1111";
const KEY: &str = "audit-test-hmac-key";

fn hmac(value: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, KEY.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, serde_json::to_string(value).unwrap().as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("hmac-sha256:{hex}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_decision_and_event_has_its_exact_line() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let key = tmp.path().join("audit.key");
    std::fs::write(&key, KEY).unwrap();
    let extra = format!(
        "[audit]\ndir = \"{dir}\"\nhash_key = {{ file = \"{key}\" }}\n\
         mask = [{{ pointer = \"/password\" }}, {{ pointer = \"/card\", action = \"hash\" }}]\n\
         [[routes]]\nname = \"locked\"\npath = \"/locked\"\nupstream = \"{up}\"\n\
         [[routes]]\nname = \"broken\"\npath = \"/broken\"\nupstream = \"{up}\"\n\
         [[policies]]\nname = \"trap\"\nmodule = \"{trap}\"\nroutes = [\"broken\"]\n",
        dir = dir.display(),
        key = key.display(),
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
    let policies = admin(&gw, Method::GET, "/v1/policies", None).await.json();
    let jit = policies["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "jit")
        .unwrap()
        .clone();
    let jit_full = jit["sha256"].as_str().unwrap().to_owned();
    let (version, sha) = (
        jit["version"].as_str().unwrap().to_owned(),
        jit["sha256"].as_str().unwrap()[..12].to_owned(),
    );
    let trap_sha = policies["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "trap")
        .unwrap()["sha256"]
        .as_str()
        .unwrap()[..12]
        .to_owned();

    let task = create_task(&gw, AGENT).await;
    let grant = issue_grant(&gw, &task, "echo", None).await;
    let bearer = token(AGENT, "tools", None);
    let args = json!({"text": "hi", "password": SECRET, "card": CARD});

    // Allowed through the grant.
    let r = raw_call(&gw, "tools", &bearer, Some(&task), "echo", args.clone()).await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    // Needs approval: parked.
    let r = raw_call(&gw, "tools", &bearer, Some(&task), "delete", args.clone()).await;
    let text = refusal(&r).expect("parked");
    assert!(!text.contains(SECRET) && !text.contains(CARD), "{text}");
    let pending = admin(
        &gw,
        Method::GET,
        &format!("/v1/approvals?task={task}"),
        None,
    )
    .await;
    let approval = pending.json()["approvals"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The approver sees the arguments as the log shows them.
    assert_eq!(
        pending.json()["approvals"][0]["arguments"],
        json!({"text": "hi", "card": hmac(CARD)}),
        "{}",
        pending.text()
    );
    let approved = admin(
        &gw,
        Method::POST,
        &format!("/v1/approvals/{approval}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert!(
        !approved.text().contains(SECRET) && !approved.text().contains(CARD),
        "{}",
        approved.text()
    );
    let approval_grant = approved.json()["grant"]["id"].as_str().unwrap().to_owned();
    // The same call again: allowed by the approval.
    let r = raw_call(&gw, "tools", &bearer, Some(&task), "delete", args.clone()).await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    // Denied: no policy on the route.
    let r = raw_call(&gw, "locked", &bearer, None, "echo", args.clone()).await;
    assert!(refusal(&r).unwrap().contains("no_policy"));
    // A module that traps: policy_error.
    let r = raw_call(&gw, "broken", &bearer, None, "echo", args.clone()).await;
    assert!(refusal(&r).unwrap().contains("policy_error"));

    records(&dir, 14).await;
    let all = call_decisions(&dir, 5).await;
    let ids = [
        (task.as_str(), "<task>"),
        (grant.as_str(), "<grant>"),
        (approval_grant.as_str(), "<approval-grant>"),
        (approval.as_str(), "<approval>"),
    ];
    let lines: Vec<Value> = events(&all).iter().map(|r| normalized(r, &ids)).collect();
    let masked = json!({"text": "hi", "card": hmac(CARD)});
    let identity = json!({"subject": AGENT, "issuer": DEV_ISSUER});
    let task_line =
        json!({"id": "<task>", "purpose": "triage the inbox", "labels": {"env": "test"}});
    let jit = |verdict: &str, reason: Option<&str>| {
        let mut m = json!({"name": "jit", "version": version, "sha256": sha, "verdict": verdict});
        if let Some(r) = reason {
            m["reason"] = json!(r);
        }
        m
    };
    let expected = vec![
        json!({"v": 1, "kind": "task", "event": "task_created", "target": "<task>", "task": task_line, "actor": "ops"}),
        json!({"v": 1, "kind": "admin", "actor": "ops", "role": "operator", "action": "task.create", "target": "<task>", "outcome": "ok"}),
        json!({"v": 1, "kind": "grant", "event": "grant_issued", "target": "<grant>", "task": task_line, "actor": "ops",
               "grant": {"tool": "echo", "constraints": 0, "granted_by": "ops", "source": "operator", "reason": "test"}}),
        json!({"v": 1, "kind": "admin", "actor": "ops", "role": "operator", "action": "grant.issue", "target": "<grant>", "outcome": "ok"}),
        json!({"v": 1, "kind": "decision", "phase": "call", "route": "tools", "method": "tools/call", "tool": "echo",
               "arguments": masked, "identity": identity, "task": task_line, "grants": ["<grant>"],
               "modules": [jit("allow", None)], "decision": "allow", "reason": "policy_allow",
               "upstream": {"status": 200}}),
    ];
    let why = "no live grant covers tool \"delete\" with these arguments";
    let parked = json!({"kind": "call", "route": "tools", "tool": "delete", "agent": AGENT,
                        "arguments": masked, "why": why});
    let mut answered = parked.clone();
    answered["decided_by"] = json!("ops");
    answered["grant"] = json!("<approval-grant>");
    let call = |tool: &str| {
        json!({"v": 1, "kind": "decision", "phase": "call", "route": "tools", "method": "tools/call",
               "tool": tool, "arguments": masked, "identity": identity, "task": task_line})
    };
    let mut pending = call("delete");
    pending["approval"] = json!("<approval>");
    pending["modules"] = json!([jit("needs_approval", Some(why))]);
    pending["decision"] = json!("needs_approval");
    pending["reason"] = json!("approval_pending");
    pending["message"] = json!(format!(
        "{why} \u{2014} parked as approval <approval>; an operator can approve it \
         (toolgate approval approve <approval>); then retry this same call with the same arguments"
    ));
    let mut allowed = call("delete");
    allowed["grants"] = json!(["<approval-grant>"]);
    allowed["approval"] = json!("<approval>");
    allowed["approver"] = json!("ops");
    allowed["modules"] = json!([jit("allow", None)]);
    allowed["decision"] = json!("allow");
    allowed["reason"] = json!("policy_allow");
    allowed["upstream"] = json!({"status": 200});
    let anonymous = |route: &str| {
        json!({"v": 1, "kind": "decision", "phase": "call", "route": route, "method": "tools/call",
               "tool": "echo", "arguments": masked, "identity": {"subject": "anonymous"}, "decision": "deny"})
    };
    let mut denied = anonymous("locked");
    denied["reason"] = json!("no_policy");
    denied["message"] = json!("no policy allows tool \"echo\" on route \"locked\"");
    let mut faulted = anonymous("broken");
    faulted["reason"] = json!("policy_error");
    faulted["message"] = json!("policy trap failed");
    faulted["modules"] = json!([{"name": "trap", "version": "unversioned", "sha256": trap_sha,
                                 "verdict": "fault", "reason": "trap"}]);
    let expected: Vec<Value> = expected
        .into_iter()
        .chain([
            json!({"v": 1, "kind": "approval", "event": "approval_parked", "target": "<approval>",
                   "task": task_line, "actor": AGENT, "approval": parked}),
            pending,
            json!({"v": 1, "kind": "approval", "event": "approval_approved", "target": "<approval>",
                   "task": task_line, "actor": "ops", "approval": answered}),
            json!({"v": 1, "kind": "grant", "event": "grant_issued", "target": "<approval-grant>",
                   "task": task_line, "actor": "ops",
                   "grant": {"tool": "delete", "route": "tools", "constraints": 1, "max_uses": 1,
                             "granted_by": "ops", "source": "approval", "approval": "<approval>", "reason": why}}),
            json!({"v": 1, "kind": "admin", "actor": "ops", "role": "operator", "action": "approval.approve",
                   "target": "<approval>", "outcome": "ok"}),
            allowed,
            denied,
            faulted,
        ])
        .collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "{}",
        serde_json::to_string_pretty(&lines).unwrap()
    );
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(
            &lines[i],
            want,
            "line {i}:\n{}",
            serde_json::to_string_pretty(&lines[i]).unwrap()
        );
    }

    // Masked values, in clear, nowhere: the log's files, the metrics, the
    // answers, what the admin API (and so the console) shows operators.
    for path in [
        format!("/v1/tasks/{task}"),
        format!("/v1/grants?task={task}"),
        format!("/v1/grants/{approval_grant}"),
        format!("/v1/approvals/{approval}"),
        "/v1/approvals".to_owned(),
    ] {
        let shown = admin(&gw, Method::GET, &path, None).await;
        assert_eq!(shown.status, 200, "{path}: {}", shown.text());
        assert!(
            !shown.text().contains(SECRET) && !shown.text().contains(CARD),
            "{path}: {}",
            shown.text()
        );
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains(SECRET) && !text.contains(CARD));
    }
    let metrics = send(
        Method::GET,
        &gw.admin_url("/metrics"),
        &[],
        bytes::Bytes::new(),
    )
    .await
    .text();
    assert!(!metrics.contains(SECRET) && !metrics.contains(CARD));
    assert!(
        metrics.contains("toolgate_audit_records_total{kind=\"decision\"} 5"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "toolgate_policy_module_info{{policy=\"jit\",sha256=\"{}\"",
        jit_full
    )));
    assert!(metrics.contains("toolgate_tasks_active 1"));
    assert!(metrics.contains("toolgate_policy_faults_total{kind=\"trap\",policy=\"trap\"} 1"));

    gw.stop().await;
    let (ok, out) = verify_cli(std::slice::from_ref(&dir)).await;
    assert!(ok, "{out}");
    assert!(out.contains("matches HEAD"), "{out}");
}

/// The decision lines, as written, of the log's files in `dir`.
fn decision_lines(dir: &std::path::Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .filter(|v| v["kind"] == "decision")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_call_logs_its_latency_split_and_upstream_status() {
    // An upstream that takes at least 30 ms to answer.
    let up = crate::common::upstream::FakeUpstream::start(|seen| async move {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        let req: Value = serde_json::from_slice(&seen.body).unwrap_or(Value::Null);
        crate::common::upstream::json(
            200,
            &json!({"jsonrpc": "2.0", "id": req["id"], "result": {"content": [{"type": "text", "text": "ok"}]}}),
        )
    })
    .await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let extra = format!("[audit]\ndir = \"{}\"\n", dir.display());
    let gw = TestGateway::start(&config("tools", &up.url("/mcp"), "deny", "", &extra)).await;
    let task = create_task(&gw, AGENT).await;
    issue_grant(&gw, &task, "echo", None).await;
    let bearer = token(AGENT, "tools", None);
    let r = raw_call(&gw, "tools", &bearer, Some(&task), "echo", json!({})).await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    let r = raw_call(&gw, "tools", &bearer, Some(&task), "delete", json!({})).await;
    assert!(refusal(&r).unwrap().contains("policy_deny"), "{}", r.text());
    call_decisions(&dir, 2).await;
    let lines = decision_lines(&dir);
    assert_eq!(lines.len(), 2, "{lines:#?}");

    // Allowed and forwarded: every part of the split, and the status.
    let allowed = &lines[0];
    assert_eq!(allowed["decision"], "allow", "{allowed}");
    assert_eq!(allowed["upstream"], json!({"status": 200}), "{allowed}");
    let latency = allowed["latency_us"].as_object().unwrap();
    let mut keys: Vec<&str> = latency.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["decide", "identify", "total", "upstream"],
        "{allowed}"
    );
    let us = |k: &str| {
        latency[k]
            .as_u64()
            .unwrap_or_else(|| panic!("latency_us.{k} is a whole number: {allowed}"))
    };
    let (identify, decide, upstream, total) =
        (us("identify"), us("decide"), us("upstream"), us("total"));
    assert!(upstream >= 30_000, "the upstream took 30 ms: {allowed}");
    assert!(upstream < 10_000_000, "{allowed}");
    // The parts are consecutive stretches of the whole.
    assert!(identify + decide + upstream <= total, "{allowed}");

    // Refused: nothing forwarded, so no upstream part and no status.
    let denied = &lines[1];
    assert_eq!(denied["decision"], "deny", "{denied}");
    assert_eq!(denied.get("upstream"), None, "{denied}");
    let latency = denied["latency_us"].as_object().unwrap();
    let mut keys: Vec<&str> = latency.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["decide", "identify", "total"], "{denied}");
    let part = |k: &str| latency[k].as_u64().unwrap();
    assert!(
        part("identify") + part("decide") <= part("total"),
        "{denied}"
    );
}
