//! A module's reason may quote the arguments it judged. A masked value
//! quoted so is scrubbed out before the reason is kept anywhere: the
//! agent's refusal, the parked call's approval (API and log), the grant
//! its approval makes, and every line of the decision log. The module is
//! the real `rego` module, with a policy that quotes the password.

use http::Method;
use serde_json::json;

use super::*;
use crate::common::TestGateway;
use crate::common::modules::build;
use crate::tasks::{AGENT, admin, config, create_task, raw_call, refusal, token};

const SECRET: &str = "correct-horse-battery-staple";

const QUOTING: &str = r#"[policies.config]
query = "data.toolgate.decision"
[policies.config.policies]
"quoting.rego" = '''
package toolgate

import rego.v1

decision := {"decision": "needs_approval", "reason": sprintf("log in as %v with password %v?", [input.tool.arguments.user, input.tool.arguments.password])}
'''
"#;

/// An agent's grant request (`POST /_toolgate/grant-requests`).
async fn grant_request(
    gw: &TestGateway,
    bearer: &str,
    ask: &serde_json::Value,
) -> crate::common::Reply {
    crate::common::send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[
            ("authorization", &format!("Bearer {bearer}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(ask).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reason_that_quotes_a_masked_argument_is_scrubbed_before_it_is_kept() {
    let wasm = build(&["rego", "allowlist"]);
    let up = upstream().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("audit");
    let extra = format!(
        "[audit]\ndir = \"{dir}\"\nmask = [{{ pointer = \"/password\" }}]\n\
         [[routes]]\nname = \"quoting\"\npath = \"/quoting\"\nupstream = \"{up}\"\n\
         [routes.auth]\nissuers = [\"dev\"]\ntask_header = \"x-toolgate-task\"\n\
         [[policies]]\nname = \"low-risk\"\nmodule = \"{allowlist}\"\nphases = [\"grant\"]\nroutes = [\"tools\"]\n\
         [policies.config]\nrules = [{{ subjects = [\"{AGENT}\"], tools = [\"fetch\"] }}]\n\
         [[policies]]\nname = \"quoting\"\nmodule = \"{module}\"\nroutes = [\"quoting\"]\n{QUOTING}",
        dir = dir.display(),
        up = up.url("/mcp"),
        module = wasm[0].display(),
        allowlist = wasm[1].display(),
    );
    let gw = TestGateway::start(&config("tools", &up.url("/mcp"), "deny", "", &extra)).await;
    let task = create_task(&gw, AGENT).await;
    let bearer = token(AGENT, "quoting", None);
    let args = json!({"user": "ann", "password": SECRET});
    let why = "log in as ann with password [masked]?";

    // Parked: the agent reads the reason, scrubbed.
    let r = raw_call(&gw, "quoting", &bearer, Some(&task), "login", args.clone()).await;
    let text = refusal(&r).expect("parked");
    assert!(text.contains(why), "{text}");
    assert!(!r.text().contains(SECRET), "{}", r.text());

    // The approval keeps the scrubbed reason, not the module's.
    let pending = admin(
        &gw,
        Method::GET,
        &format!("/v1/approvals?task={task}"),
        None,
    )
    .await;
    assert_eq!(pending.status, 200, "{}", pending.text());
    let approval = &pending.json()["approvals"][0];
    assert_eq!(approval["why"], why, "{}", pending.text());
    assert_eq!(
        approval["arguments"],
        json!({"user": "ann"}),
        "{}",
        pending.text()
    );
    assert!(!pending.text().contains(SECRET), "{}", pending.text());
    let id = approval["id"].as_str().unwrap().to_owned();

    // Approved: the grant it makes carries the reason, scrubbed.
    let approved = admin(
        &gw,
        Method::POST,
        &format!("/v1/approvals/{id}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text());
    assert!(!approved.text().contains(SECRET), "{}", approved.text());
    let grants = admin(&gw, Method::GET, &format!("/v1/grants?task={task}"), None).await;
    assert_eq!(grants.status, 200, "{}", grants.text());
    assert!(grants.text().contains(why), "{}", grants.text());
    assert!(!grants.text().contains(SECRET), "{}", grants.text());

    // The same call again is allowed by the approval.
    let r = raw_call(&gw, "quoting", &bearer, Some(&task), "login", args).await;
    assert_eq!(refusal(&r), None, "{}", r.text());

    // An agent's grant request whose own reason quotes the argument it
    // would cover: a human decides it (no module decides grant requests
    // here), and sees the reason scrubbed.
    let me = token(AGENT, "quoting", Some(&task));
    let ask = json!({"route": "quoting", "tool": "login", "ttl": "2m",
                     "arguments": {"user": "ann", "password": SECRET},
                     "reason": format!("I must log in as ann with {SECRET}")});
    let r = grant_request(&gw, &me, &ask).await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        r.json()["approval"]["why"],
        "I must log in as ann with [masked]",
        "{}",
        r.text()
    );
    // The answer repeats the arguments as the log shows them.
    assert_eq!(r.json()["approval"]["arguments"], json!({"user": "ann"}));
    assert!(!r.text().contains(SECRET), "{}", r.text());
    let pending = admin(&gw, Method::GET, "/v1/approvals", None).await;
    assert!(!pending.text().contains(SECRET), "{}", pending.text());

    // A grant request policy approves at once: the grant it makes pins the
    // arguments asked for, and the answer shows them masked.
    let me = token(AGENT, "tools", Some(&task));
    let ask = json!({"route": "tools", "tool": "fetch", "ttl": "2m",
                     "arguments": {"user": "ann", "password": SECRET},
                     "reason": "fetch the mail"});
    let r = grant_request(&gw, &me, &ask).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["status"], "granted", "{}", r.text());
    assert!(!r.text().contains(SECRET), "{}", r.text());
    let grant = &r.json()["grant"];
    assert_eq!(
        grant["constraints"][0]["equals"],
        json!({"user": "ann"}),
        "{}",
        r.text()
    );

    // The log: the parked and the allowed call, the approval's lines.
    let all = call_decisions(&dir, 2).await;
    let parked = all
        .iter()
        .filter(|r| matches!(&r.body, toolgate::audit::line::Body::Approval(_)))
        .map(|r| normalized(r, &[]))
        .collect::<Vec<_>>();
    assert!(!parked.is_empty(), "no approval line: {all:#?}");
    for line in &parked {
        let said = match (
            line["approval"]["kind"].as_str(),
            line["approval"]["tool"].as_str(),
        ) {
            (Some("call"), _) => why,
            (_, Some("fetch")) => "fetch the mail",
            _ => "I must log in as ann with [masked]",
        };
        assert_eq!(line["approval"]["why"], said, "{line}");
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains(SECRET),
            "{} holds the masked value in clear:\n{text}",
            path.display()
        );
    }
    let metrics = crate::common::send(
        Method::GET,
        &gw.admin_url("/metrics"),
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert!(!metrics.text().contains(SECRET));
}
