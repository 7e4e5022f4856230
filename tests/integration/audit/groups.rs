//! A second scripted mix (three subjects of two issuers, two routes, a
//! trapping module) through the whole gateway: exact denial groups by
//! issuer, route, subject and hour, windows that cut it, and exact
//! searches by route, id and until.

use http::Method;
use serde_json::{Value, json};

use super::reports::{s, task};
use super::*;
use crate::common::TestGateway;
use crate::tasks::{AGENT, OTHER_AGENT, admin, config, issue_grant, raw_call, refusal, token};

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
