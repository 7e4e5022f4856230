//! A grant approved by a grant-phase policy, traced through the whole
//! gateway to its module's evidence and its one use.

use http::Method;
use serde_json::json;

use super::reports::{s, task};
use super::*;
use crate::common::TestGateway;
use crate::common::modules::build;
use crate::tasks::{AGENT, admin, config, raw_call, refusal, token};

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
