//! Reports from the decision log through the whole gateway: a scripted mix
//! of calls (two agents, two teams, tools on three routes; allowed, denied
//! by policy, no policy, parked for approval, approved) gives exactly the
//! right denial groups and shares, drift rows and grant trace, over the
//! admin API and the real `toolgate audit` CLI; masked arguments appear in
//! none of them, and a bad parameter is a 400 naming it. A second mix
//! (three subjects of two issuers, two routes, a trapping module) gives
//! exact denial groups by issuer, route, subject and hour, windows that
//! cut it, and exact searches by route, id and until; a grant approved by
//! a grant-phase policy is traced to its module's evidence and its use.

use http::Method;
use serde_json::{Value, json};

use super::*;
use crate::common::TestGateway;
use crate::common::modules::build;
use crate::tasks::{AGENT, OTHER_AGENT, admin, config, issue_grant, raw_call, refusal, token};

const SECRET: &str = "reports-secret-value-31337";

async fn task(gw: &TestGateway, agent: &str, team: &str) -> String {
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

/// `iss` of the second issuer in the scripted mix (SPIFFE, `example.org`).
const SPIRE: &str = "https://spire.test";
/// A workload of the second issuer.
const BUILDER: &str = "spiffe://example.org/agent/builder";

/// A gateway after a scripted mix of twelve calls from three subjects of
/// two issuers on two routes, each call's record in the log before the
/// next call is made (so the log's order is the script's):
///
/// | # | subject (issuer) | route | tool | reason |
/// |---|---|---|---|---|
/// | 1 | AGENT (dev) | tools | echo | policy_allow (a grant) |
/// | 2 | AGENT (dev) | tools | delete | approval_pending |
/// | 3 | AGENT (dev) | tools | echo | task_invalid (unknown task) |
/// | 4 | BUILDER (spire) | mixed | delete | policy_deny |
/// | 5 | BUILDER (spire) | mixed | explode | policy_error (a trap) |
/// | 6 | OTHER_AGENT (dev) | mixed | search | no_policy |
/// | 7 | OTHER_AGENT (dev) | mixed | echo | policy_allow |
/// | 8 | BUILDER (spire) | mixed | delete | policy_deny |
/// | 9 | BUILDER (spire) | mixed | explode | policy_error |
/// |   | *`mark` is taken here* | | | |
/// | 10 | BUILDER (spire) | mixed | explode | policy_error |
/// | 11 | OTHER_AGENT (dev) | mixed | search | no_policy |
/// | 12 | BUILDER (spire) | mixed | echo | policy_allow |
struct Mix {
    gw: TestGateway,
    _tmp: tempfile::TempDir,
    /// RFC 3339, between call 9's record and call 10.
    mark: String,
    /// The UTC hour ("00"–"23") before the first call and after the last.
    hours: (String, String),
}

fn utc_hour_now() -> String {
    let ms = jiff::Timestamp::now().as_millisecond();
    format!("{:02}", ms.rem_euclid(86_400_000) / 3_600_000)
}

async fn scripted_mix() -> Mix {
    let up = upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let spire = crate::common::tokens::Key::es256("spire-ec");
    let jwks = tmp.path().join("spire.json");
    let set = crate::common::tokens::jwks(&[(&spire, Some("jwt-svid"))]);
    std::fs::write(&jwks, serde_json::to_vec(&set).unwrap()).unwrap();
    let policy = |name: &str, file: &str, tool: &str| {
        format!(
            "[[policies]]\nname = \"{name}\"\nmodule = \"{}\"\nroutes = [\"mixed\"]\ntools = [\"{tool}\"]\n",
            crate::policy::fixture(file).display()
        )
    };
    let extra = format!(
        "[audit]\ndir = \"{dir}\"\n\
         [[issuers]]\nname = \"spire\"\nissuer = \"{SPIRE}\"\nmode = \"spiffe\"\n\
         trust_domains = [\"example.org\"]\njwks_file = \"{jwks}\"\n\
         [[routes]]\nname = \"mixed\"\npath = \"/mixed\"\nupstream = \"{up}\"\n\
         [routes.auth]\nissuers = [\"dev\", \"spire\"]\n{open}{shut}{trap}",
        dir = dir.display(),
        jwks = jwks.display(),
        up = up.url("/mcp"),
        open = policy("open", "allow.wat", "echo"),
        shut = policy("shut", "deny.wat", "delete"),
        trap = policy("trap", "trap.wat", "explode"),
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
    issue_grant(&gw, &red, "echo", None).await;
    let a = token(AGENT, "tools", None);
    let o = token(OTHER_AGENT, "mixed", None);
    let b = spire.sign(&crate::common::tokens::claims(
        SPIRE,
        BUILDER,
        "http://gateway.test/mixed",
    ));
    let in_red = Some(red.as_str());
    let script: [(&str, &str, Option<&str>, &str, &str); 12] = [
        (&a, "tools", in_red, "echo", "policy_allow"),
        (&a, "tools", in_red, "delete", "approval_pending"),
        (&a, "tools", Some("task_nope"), "echo", "task_invalid"),
        (&b, "mixed", None, "delete", "policy_deny"),
        (&b, "mixed", None, "explode", "policy_error"),
        (&o, "mixed", None, "search", "no_policy"),
        (&o, "mixed", None, "echo", "policy_allow"),
        (&b, "mixed", None, "delete", "policy_deny"),
        (&b, "mixed", None, "explode", "policy_error"),
        (&b, "mixed", None, "explode", "policy_error"),
        (&o, "mixed", None, "search", "no_policy"),
        (&b, "mixed", None, "echo", "policy_allow"),
    ];
    let before = utc_hour_now();
    let mut mark = String::new();
    for (n, (bearer, route, task, tool, reason)) in script.into_iter().enumerate() {
        let r = raw_call(&gw, route, bearer, task, tool, json!({"n": n + 1})).await;
        match refusal(&r) {
            None => assert_eq!(reason, "policy_allow", "call {}: {}", n + 1, r.text()),
            Some(text) => assert!(text.contains(reason), "call {}: {text}", n + 1),
        }
        call_decisions(&dir, n + 1).await;
        if n + 1 == 9 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            mark = jiff::Timestamp::now().to_string();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let after = utc_hour_now();
    Mix {
        gw,
        _tmp: tmp,
        mark,
        hours: (before, after),
    }
}

/// A denial report's groups: key, denied, share, approval, policy, fault.
type Group = (Vec<String>, u64, f64, u64, u64, u64);

async fn denial_groups(gw: &TestGateway, query: &str) -> (u64, Vec<Group>) {
    let r = admin(
        gw,
        Method::GET,
        &format!("/v1/reports/denials?{query}"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    let report = r.json();
    let by: Vec<String> = serde_json::from_value(report["by"].clone()).unwrap();
    let groups = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let n = |k: &str| g[k].as_u64().unwrap();
            (
                by.iter()
                    .map(|k| g["key"][k].as_str().unwrap().to_owned())
                    .collect(),
                n("denied"),
                g["share"].as_f64().unwrap(),
                n("approval"),
                n("policy"),
                n("fault"),
            )
        })
        .collect();
    (report["calls"].as_u64().unwrap(), groups)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_group_by_issuer_route_subject_and_hour_within_a_window() {
    let mix = scripted_mix().await;
    let gw = &mix.gw;
    let k = |s: &str| vec![s.to_owned()];
    let dev = toolgate::identify::mint::DEV_ISSUER;

    // Twelve calls, nine refused: 1 approval, 5 policy, 3 fault.
    assert_eq!(
        denial_groups(gw, "by=issuer").await,
        (
            12,
            vec![(k(SPIRE), 5, 0.4167, 0, 2, 3), (k(dev), 4, 0.3333, 1, 3, 0)]
        )
    );
    assert_eq!(
        denial_groups(gw, "by=route").await,
        (
            12,
            vec![
                (k("mixed"), 7, 0.5833, 0, 4, 3),
                (k("tools"), 2, 0.1667, 1, 1, 0),
            ]
        )
    );
    // Equal counts: by key, ascending ("…/other" before "…/reader").
    assert_eq!(
        denial_groups(gw, "by=subject").await,
        (
            12,
            vec![
                (k(BUILDER), 5, 0.4167, 0, 2, 3),
                (k(OTHER_AGENT), 2, 0.1667, 0, 2, 0),
                (k(AGENT), 2, 0.1667, 1, 1, 0),
            ]
        )
    );
    let (calls, hours) = denial_groups(gw, "by=hour").await;
    assert_eq!(calls, 12);
    let (before, after) = &mix.hours;
    if before == after {
        assert_eq!(hours, vec![(k(before), 9, 0.75, 1, 5, 3)]);
    } else {
        // The run straddled an hour: the calls fall in the two hours.
        assert!(
            hours.iter().all(|g| g.0 == k(before) || g.0 == k(after)),
            "{hours:?}"
        );
        assert_eq!(hours.iter().map(|g| g.1).sum::<u64>(), 9, "{hours:?}");
    }

    // The window: since the mark, calls 10–12; until it, calls 1–9.
    let mark = &mix.mark;
    assert_eq!(
        denial_groups(gw, &format!("since={mark}&by=route,class")).await,
        (
            3,
            vec![
                (vec![s("mixed"), s("fault")], 1, 0.3333, 0, 0, 1),
                (vec![s("mixed"), s("policy")], 1, 0.3333, 0, 1, 0),
            ]
        )
    );
    assert_eq!(
        denial_groups(gw, &format!("until={mark}&by=issuer")).await,
        (
            9,
            vec![(k(SPIRE), 4, 0.4444, 0, 2, 2), (k(dev), 3, 0.3333, 1, 2, 0)]
        )
    );
}

fn s(x: &str) -> String {
    x.to_owned()
}

/// (route, tool, reason, subject) of each decision of a search, in order.
async fn search(gw: &TestGateway, query: &str) -> (Vec<(String, String, String, String)>, Value) {
    let r = admin(gw, Method::GET, &format!("/v1/decisions?{query}"), None).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text());
    let v = r.json();
    let rows = v["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let f = |k: &str| d[k].as_str().unwrap().to_owned();
            (
                f("route"),
                f("tool"),
                f("reason"),
                s(d["identity"]["subject"].as_str().unwrap()),
            )
        })
        .collect();
    (rows, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_search_by_route_id_and_until_is_exact() {
    let mix = scripted_mix().await;
    let gw = &mix.gw;
    let row = |route: &str, tool: &str, reason: &str, subject: &str| {
        (s(route), s(tool), s(reason), s(subject))
    };

    // By route: that route's calls only, newest first.
    let (rows, tools) = search(gw, "route=tools").await;
    assert_eq!(
        rows,
        vec![
            row("tools", "echo", "task_invalid", AGENT),
            row("tools", "delete", "approval_pending", AGENT),
            row("tools", "echo", "policy_allow", AGENT),
        ]
    );
    assert_eq!(tools["next_before"], Value::Null);
    let (rows, _) = search(gw, "route=mixed").await;
    assert_eq!(
        rows,
        vec![
            row("mixed", "echo", "policy_allow", BUILDER),
            row("mixed", "search", "no_policy", OTHER_AGENT),
            row("mixed", "explode", "policy_error", BUILDER),
            row("mixed", "explode", "policy_error", BUILDER),
            row("mixed", "delete", "policy_deny", BUILDER),
            row("mixed", "echo", "policy_allow", OTHER_AGENT),
            row("mixed", "search", "no_policy", OTHER_AGENT),
            row("mixed", "explode", "policy_error", BUILDER),
            row("mixed", "delete", "policy_deny", BUILDER),
        ]
    );

    // By id, taken from the answer above: that one record, whole.
    let first = &tools["decisions"][1];
    let id = first["id"].as_str().unwrap();
    let (rows, found) = search(gw, &format!("id={id}")).await;
    assert_eq!(
        rows,
        vec![row("tools", "delete", "approval_pending", AGENT)]
    );
    assert_eq!(&found["decisions"][0], first);
    // Every filter must hold: the id with another route finds nothing.
    let (rows, _) = search(gw, &format!("id={id}&route=mixed")).await;
    assert_eq!(rows, vec![]);

    // Until the mark: calls 9 back to 1; since it: 12 back to 10.
    let mark = &mix.mark;
    let (rows, _) = search(gw, &format!("until={mark}")).await;
    let reasons: Vec<&str> = rows.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(
        reasons,
        vec![
            "policy_error",
            "policy_deny",
            "policy_allow",
            "no_policy",
            "policy_error",
            "policy_deny",
            "task_invalid",
            "approval_pending",
            "policy_allow",
        ]
    );
    assert_eq!(rows[0], row("mixed", "explode", "policy_error", BUILDER));
    assert_eq!(rows[8], row("tools", "echo", "policy_allow", AGENT));
    let (rows, _) = search(gw, &format!("until={mark}&route=tools&limit=2")).await;
    assert_eq!(
        rows,
        vec![
            row("tools", "echo", "task_invalid", AGENT),
            row("tools", "delete", "approval_pending", AGENT),
        ]
    );
    let (rows, _) = search(gw, &format!("since={mark}")).await;
    assert_eq!(
        rows,
        vec![
            row("mixed", "echo", "policy_allow", BUILDER),
            row("mixed", "search", "no_policy", OTHER_AGENT),
            row("mixed", "explode", "policy_error", BUILDER),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_policy_approved_is_traced_to_its_module_and_its_use() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let allowlist = build(&["allowlist"]);
    // An allowlist in the grant phase only: read_* is granted at once.
    let extra = format!(
        "[audit]\ndir = \"{dir}\"\n\
         [[policies]]\nname = \"low-risk\"\nmodule = \"{wasm}\"\nphases = [\"grant\"]\n\
         [policies.config]\nrules = [{{ subjects = [\"{AGENT}\"], tools = [\"read_*\"] }}]\n",
        dir = dir.display(),
        wasm = allowlist[0].display(),
    );
    let gw = TestGateway::start(&config("tools", &up.url("/mcp"), "deny", "", &extra)).await;
    let policies = admin(&gw, Method::GET, "/v1/policies", None).await.json();
    let module = policies["policies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "low-risk")
        .unwrap()
        .clone();
    let evidence = format!(
        "low-risk@{}#{}",
        module["version"].as_str().unwrap(),
        &module["sha256"].as_str().unwrap()[..12]
    );
    let red = task(&gw, AGENT, "red").await;
    let me = token(AGENT, "tools", Some(&red));
    let body = json!({"route": "tools", "tool": "read_file", "ttl": "2m",
                      "reason": "need to read the config"});
    let r = crate::common::send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[
            ("authorization", &format!("Bearer {me}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(&body).unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let grant = r.json()["grant"]["id"].as_str().unwrap().to_owned();
    let approval = r.json()["approval"]["id"].as_str().unwrap().to_owned();
    let ok = raw_call(&gw, "tools", &me, None, "read_file", json!({"path": "a"})).await;
    assert_eq!(refusal(&ok), None, "{}", ok.text());
    // The grant request's record is queued before its answer, so before
    // the call's.
    call_decisions(&dir, 1).await;

    let t = admin(
        &gw,
        Method::GET,
        &format!("/v1/reports/grants/{grant}"),
        None,
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.text());
    let t = t.json();
    let by = format!("policy:{evidence}");
    let created = &t["created"];
    assert_eq!(created["source"], "policy", "{t}");
    assert_eq!(created["evidence"], json!([evidence]), "{t}");
    assert_eq!(created["granted_by"], by.as_str(), "{t}");
    assert_eq!(created["approval"], approval.as_str(), "{t}");
    assert_eq!(created["tool"], "read_file", "{t}");
    assert_eq!(created["route"], "tools", "{t}");
    assert_eq!(created["task"], red.as_str(), "{t}");
    assert_eq!(t["approval"], approval.as_str(), "{t}");
    assert_eq!(t["approvers"], json!([by]), "{t}");
    assert_eq!(t["parked_calls"], json!([]), "{t}");
    assert_eq!(t["admin_actions"], json!([]), "no operator acted: {t}");
    let events = |k: &str| -> Vec<String> {
        t[k].as_array()
            .unwrap()
            .iter()
            .map(|r| r["event"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        events("approval_events"),
        vec![s("approval_parked"), s("approval_approved")],
        "{t}"
    );
    assert_eq!(events("grant_events"), vec![s("grant_issued")], "{t}");
    // Its one use: the call, not the grant request that made the grant.
    // (The grant request's own line names the grant it made; it is not a
    // use.)
    let uses: Vec<(String, String, String)> = t["uses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let f = |k: &str| r[k].as_str().unwrap().to_owned();
            (f("phase"), f("tool"), f("decision"))
        })
        .collect();
    assert_eq!(uses, vec![(s("call"), s("read_file"), s("allow"))], "{t}");
}
