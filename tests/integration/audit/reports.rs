//! Reports from the decision log through the whole gateway: a scripted mix
//! of calls (two agents, two teams, tools on three routes; allowed, denied
//! by policy, no policy, parked for approval, approved) gives exactly the
//! right denial groups and shares, drift rows and grant trace, over the
//! admin API and the real `toolgate audit` CLI; masked arguments appear in
//! none of them, and a bad parameter is a 400 naming it.

use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::common::TestGateway;
use crate::common::modules::build;
use crate::tasks::{AGENT, OTHER_AGENT, admin, config, issue_grant, raw_call, refusal, token};

const SECRET: &str = "reports-secret-value-31337";

pub(super) async fn task(gw: &TestGateway, agent: &str, team: &str) -> String {
    let r = admin(
        gw,
        Method::POST,
        "/v1/tasks",
        Some(json!({"agent": agent, "purpose": "triage", "labels": {"team": team}, "ttl": "10m"})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["task"]["id"].as_str().unwrap().to_owned()
}

async fn audit_cli(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .arg("audit")
        .args(args)
        .output()
        .await
        .expect("toolgate runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn groups(report: &Value) -> Vec<(Vec<String>, u64, f64, u64, u64)> {
    let by: Vec<String> = serde_json::from_value(report["by"].clone()).unwrap();
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                by.iter()
                    .map(|k| g["key"][k].as_str().unwrap().to_owned())
                    .collect(),
                g["denied"].as_u64().unwrap(),
                g["share"].as_f64().unwrap(),
                g["approval"].as_u64().unwrap(),
                g["policy"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn ids(rows: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[key].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_calls_give_exact_denials_drift_and_trace() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let wasm = build(&["jit-grants"]);
    let extra = format!(
        "[audit]\ndir = \"{dir}\"\nmask = [{{ pointer = \"/password\" }}]\n\
         [[routes]]\nname = \"locked\"\npath = \"/locked\"\nupstream = \"{up}\"\n\
         [[routes]]\nname = \"strict\"\npath = \"/strict\"\nupstream = \"{up}\"\n\
         [routes.auth]\nissuers = [\"dev\"]\ntask_header = \"x-toolgate-task\"\n\
         [[policies]]\nname = \"jit-strict\"\nmodule = \"{wasm}\"\nroutes = [\"strict\"]\n\
         [policies.config]\nmissing = \"deny\"\n",
        dir = dir.display(),
        up = up.url("/mcp"),
        wasm = wasm[0].display(),
    );
    let gw = TestGateway::start(&config(
        "tools",
        &up.url("/mcp"),
        "needs_approval",
        "",
        &extra,
    ))
    .await;
    let red = task(&gw, AGENT, "red").await;
    let blue = task(&gw, OTHER_AGENT, "blue").await;
    let done = task(&gw, AGENT, "red").await;
    let r = admin(
        &gw,
        Method::POST,
        &format!("/v1/tasks/{done}/complete"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let used = issue_grant(&gw, &red, "echo", Some(10)).await;
    let unused = issue_grant(&gw, &blue, "search", None).await;
    let a = token(AGENT, "tools", None);
    let b = token(OTHER_AGENT, "strict", None);
    let args = json!({"text": "hi", "password": SECRET});

    // 1. allowed under a grant.
    let r = raw_call(&gw, "tools", &a, Some(&red), "echo", args.clone()).await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    // 2. no grant: parked for approval.
    let r = raw_call(&gw, "tools", &a, Some(&red), "delete", args.clone()).await;
    assert!(refusal(&r).is_some());
    let pending = admin(&gw, Method::GET, &format!("/v1/approvals?task={red}"), None).await;
    let approval = pending.json()["approvals"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let approved = admin(
        &gw,
        Method::POST,
        &format!("/v1/approvals/{approval}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    let granted = approved.json()["grant"]["id"].as_str().unwrap().to_owned();
    // A second answer fails (it is answered): logged, not an approver twice.
    let again = admin(
        &gw,
        Method::POST,
        &format!("/v1/approvals/{approval}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.text());
    // 3. allowed by the approval.
    let r = raw_call(&gw, "tools", &a, Some(&red), "delete", args.clone()).await;
    assert_eq!(refusal(&r), None, "{}", r.text());
    // 4. policy said no (no grant covers it, missing = deny).
    let r = raw_call(&gw, "strict", &b, Some(&blue), "echo", args.clone()).await;
    assert!(refusal(&r).unwrap().contains("policy_deny"), "{}", r.text());
    // 5. no policy on the route.
    let r = raw_call(&gw, "locked", &b, None, "echo", args.clone()).await;
    assert!(refusal(&r).unwrap().contains("no_policy"));
    records(&dir, 20).await;
    call_decisions(&dir, 5).await;
    let mut seen = String::new();

    // Denials by tool and reason class, then by team label.
    let d = admin(
        &gw,
        Method::GET,
        "/v1/reports/denials?since=1h&by=tool,class",
        None,
    )
    .await;
    assert_eq!(d.status, 200, "{}", d.text());
    let d = d.json();
    seen.push_str(&d.to_string());
    assert_eq!(d["calls"], 5);
    assert_eq!(d["total"]["denied"], 3);
    assert_eq!(
        (
            d["total"]["approval"].as_u64(),
            d["total"]["policy"].as_u64()
        ),
        (Some(1), Some(2))
    );
    let s = |x: &str| x.to_owned();
    assert_eq!(
        groups(&d),
        vec![
            (vec![s("echo"), s("policy")], 2, 0.4, 0, 2),
            (vec![s("delete"), s("approval")], 1, 0.2, 1, 0),
        ]
    );
    let d = admin(
        &gw,
        Method::GET,
        "/v1/reports/denials?by=label:team,reason",
        None,
    )
    .await
    .json();
    seen.push_str(&d.to_string());
    assert_eq!(
        groups(&d),
        vec![
            (vec![s("-"), s("no_policy")], 1, 0.2, 0, 1),
            (vec![s("blue"), s("policy_deny")], 1, 0.2, 0, 1),
            (vec![s("red"), s("approval_pending")], 1, 0.2, 1, 0),
        ]
    );

    // Drift.
    let drift = admin(&gw, Method::GET, "/v1/reports/drift?long=1m", None).await;
    assert_eq!(drift.status, 200, "{}", drift.text());
    let drift = drift.json();
    seen.push_str(&drift.to_string());
    assert_eq!(ids(&drift["unused_grants"], "grant"), vec![unused.clone()]);
    assert_eq!(ids(&drift["underused_grants"], "grant"), vec![used.clone()]);
    let mut long = vec![used.clone(), unused.clone(), granted.clone()];
    long.sort();
    assert_eq!(ids(&drift["long_lived_grants"], "grant"), long);
    let mut open = vec![red.clone(), blue.clone()];
    open.sort();
    assert_eq!(ids(&drift["overdue_tasks"], "task"), open);
    assert_eq!(
        drift["unused_tools"],
        json!([{"subject": OTHER_AGENT, "tool": "search", "allowed_by": "granted"}])
    );
    let none = admin(&gw, Method::GET, "/v1/reports/drift", None)
        .await
        .json();
    assert_eq!(
        none["long_lived_grants"],
        json!([]),
        "5m grants are not long by default"
    );

    // The trace of the approval's grant.
    let t = admin(
        &gw,
        Method::GET,
        &format!("/v1/reports/grants/{granted}"),
        None,
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.text());
    let t = t.json();
    seen.push_str(&t.to_string());
    assert_eq!(t["created"]["source"], "approval");
    assert_eq!(t["approval"], approval.as_str());
    assert_eq!(t["approvers"], json!(["ops"]), "{t}");
    let kinds = |k: &str| -> Vec<(String, String)> {
        t[k].as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["kind"].as_str().unwrap().to_owned(),
                    r["event"]
                        .as_str()
                        .or(r["reason"].as_str())
                        .or(r["action"].as_str())
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect()
    };
    assert_eq!(
        kinds("parked_calls"),
        vec![(s("decision"), s("approval_pending"))]
    );
    assert_eq!(
        kinds("approval_events"),
        vec![
            (s("approval"), s("approval_parked")),
            (s("approval"), s("approval_approved"))
        ]
    );
    assert_eq!(kinds("grant_events")[0], (s("grant"), s("grant_issued")));
    assert_eq!(
        kinds("admin_actions"),
        vec![
            (s("admin"), s("approval.approve")),
            (s("admin"), s("approval.approve"))
        ]
    );
    assert_eq!(t["admin_actions"][1]["outcome"], "not_pending", "{t}");
    assert_eq!(kinds("uses"), vec![(s("decision"), s("policy_allow"))]);
    assert_eq!(t["uses"][0]["tool"], "delete");

    // Search: newest first, paged.
    let page = admin(&gw, Method::GET, "/v1/decisions?limit=2", None)
        .await
        .json();
    seen.push_str(&page.to_string());
    let reasons: Vec<&str> = page["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, vec!["no_policy", "policy_deny"]);
    let before = page["next_before"].as_u64().unwrap();
    let next = admin(
        &gw,
        Method::GET,
        &format!("/v1/decisions?limit=2&before={before}"),
        None,
    )
    .await
    .json();
    let reasons: Vec<&str> = next["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, vec!["policy_allow", "approval_pending"]);
    let found = admin(
        &gw,
        Method::GET,
        &format!("/v1/decisions?subject={OTHER_AGENT}&decision=deny&task={blue}"),
        None,
    )
    .await
    .json();
    assert_eq!(found["decisions"].as_array().unwrap().len(), 1);
    assert_eq!(found["decisions"][0]["route"], "strict");

    // Bad parameters: 400 naming the parameter and what it takes.
    for (path, needle) in [
        ("/v1/decisions?since=yesterday", "since:"),
        ("/v1/decisions?colour=red", "since, until, route"),
        (
            "/v1/decisions?decision=maybe",
            "allow, deny, needs_approval",
        ),
        ("/v1/reports/denials?by=colour", "label:NAME"),
        ("/v1/reports/drift?underuse=0", "underuse:"),
    ] {
        let r = admin(&gw, Method::GET, path, None).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().contains(needle), "{path}: {}", r.text());
    }
    let r = admin(&gw, Method::GET, "/v1/reports/grants/grant_nope", None).await;
    assert_eq!(r.status, 404, "{}", r.text());

    // The CLI: tables and --json.
    let d = dir.to_str().unwrap();
    let (ok, text) = audit_cli(&["denials", d, "--by", "tool,class"]).await;
    assert!(ok, "{text}");
    assert!(
        text.contains("TOOL") && text.contains("40.0%") && text.contains("3 of 5 calls refused"),
        "{text}"
    );
    seen.push_str(&text);
    let (ok, text) = audit_cli(&["denials", d, "--by", "tool,class", "--json"]).await;
    assert!(ok, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(groups(&v)[0], (vec![s("echo"), s("policy")], 2, 0.4, 0, 2));
    let (ok, text) = audit_cli(&["drift", d, "--long", "1m"]).await;
    assert!(
        ok && text.contains("Unused grants") && text.contains(&unused),
        "{text}"
    );
    seen.push_str(&text);
    let (ok, text) = audit_cli(&["drift", d, "--json"]).await;
    assert!(ok, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ids(&v["unused_grants"], "grant"), vec![unused.clone()]);
    let (ok, text) = audit_cli(&["trace", d, "--grant", &granted]).await;
    assert!(
        ok && text.contains("approval_approved") && text.contains("delete"),
        "{text}"
    );
    seen.push_str(&text);
    let (ok, text) = audit_cli(&["trace", d, "--grant", &granted, "--json"]).await;
    assert!(ok, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["uses"].as_array().unwrap().len(), 1);
    let (ok, text) = audit_cli(&["search", d, "--reason", "policy_deny"]).await;
    assert!(
        ok && text.contains("strict") && text.lines().count() == 2,
        "{text}"
    );
    seen.push_str(&text);
    let (ok, text) = audit_cli(&["search", d, "--json", "--tool", "delete"]).await;
    assert!(ok, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["decisions"].as_array().unwrap().len(), 2);
    seen.push_str(&text);
    let (ok, text) = audit_cli(&["tail", d, "-n", "1"]).await;
    assert!(
        ok && text.contains("no_policy") && text.lines().count() == 2,
        "{text}"
    );
    let (ok, text) = audit_cli(&["search", d, "--since", "yesterday"]).await;
    assert!(!ok && text.contains("since:"), "{text}");

    assert!(!seen.contains(SECRET), "a masked value is in a report");
    assert!(
        seen.contains("\"text\":\"hi\""),
        "arguments are shown, masked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_decision_log_every_query_is_a_409_even_a_bad_one() {
    let up = upstream().await;
    let gw = TestGateway::start(&config("tools", &up.url("/mcp"), "deny", "", "")).await;
    for path in [
        "/v1/decisions",
        "/v1/decisions?colour=red",
        "/v1/decisions?since=yesterday",
        "/v1/reports/denials",
        "/v1/reports/denials?by=colour",
        "/v1/reports/drift",
        "/v1/reports/grants/grant_nope",
    ] {
        let r = admin(&gw, Method::GET, path, None).await;
        assert_eq!(r.status, 409, "{path}: {}", r.text());
        assert_eq!(
            r.json()["error"]["code"],
            "no_decision_log",
            "{path}: {}",
            r.text()
        );
    }
}

pub(super) fn s(x: &str) -> String {
    x.to_owned()
}
