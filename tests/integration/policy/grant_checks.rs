//! What a grant may say is checked against what the policy modules can
//! evaluate: constraint regexes in the one dialect host and modules share
//! (regex-lite), constraint shapes with readable refusals, and routes that
//! exist — on the admin API and on agents' own grant requests alike.

use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::upstream::{FakeUpstream, json as json_answer};
use crate::common::{Reply, TestGateway, send};
use crate::tasks::{AGENT, admin, config, create_task, raw_call, refusal, token};

async fn upstream() -> FakeUpstream {
    FakeUpstream::start(|_| async {
        json_answer(200, &json!({"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}))
    })
    .await
}

async fn issue(gw: &TestGateway, body: Value) -> Reply {
    admin(gw, Method::POST, "/v1/grants", Some(body)).await
}

async fn ask(gw: &TestGateway, bearer: &str, body: &Value) -> Reply {
    send(
        Method::POST,
        &gw.url("/_toolgate/grant-requests"),
        &[
            ("authorization", &format!("Bearer {bearer}")),
            ("content-type", "application/json"),
        ],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn message(r: &Reply) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_the_modules_cannot_evaluate_are_refused_at_creation() {
    let up = upstream().await;
    let gw = TestGateway::start(&config("tools", &up.url(""), "deny", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let grant = |constraints: Value| {
        json!({"task_id": task, "tool": "create_issue", "ttl": "5m", "reason": "r",
               "constraints": constraints})
    };

    // A Unicode class: the full `regex` crate took it, jit-grants cannot.
    let r = issue(
        &gw,
        grant(json!([{"pointer": "/title", "regex": "\\p{Lu}+"}])),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(message(&r).contains("regex-lite"), "{}", r.text());
    // A route that does not exist.
    let mut body = grant(json!([]));
    body["route"] = json!("nope");
    let r = issue(&gw, body).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let text = message(&r);
    assert!(
        text.starts_with("route: ") && text.contains("\"nope\"") && text.contains("tools"),
        "{text}"
    );

    // The same checks on an agent's own grant request.
    let me = token(AGENT, "tools", Some(&task));
    let r = ask(
        &gw,
        &me,
        &json!({"route": "tools", "tool": "create_issue", "reason": "r",
                "constraints": [{"pointer": "/title", "regex": "\\p{Lu}+"}]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(r.text().contains("regex-lite"), "{}", r.text());
    let r = ask(
        &gw,
        &me,
        &json!({"route": "nope", "tool": "create_issue", "reason": "r"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());

    // What is accepted is evaluated by the module as the host checked it.
    let mut body = grant(json!([{"pointer": "/title", "regex": "[A-Z]+-[0-9]+"}]));
    body["route"] = json!("tools");
    let r = issue(&gw, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let ok = raw_call(
        &gw,
        "tools",
        &me,
        None,
        "create_issue",
        json!({"title": "OPS-12"}),
    )
    .await;
    assert_eq!(refusal(&ok), None, "{}", ok.text());
    let no = raw_call(
        &gw,
        "tools",
        &me,
        None,
        "create_issue",
        json!({"title": "ops-12"}),
    )
    .await;
    let text = refusal(&no).expect("refused");
    assert!(text.contains("argument /title must"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_constraint_is_refused_in_words_naming_the_field() {
    let up = upstream().await;
    let gw = TestGateway::start(&config("tools", &up.url(""), "deny", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let grant = |constraints: Value| {
        json!({"task_id": task, "tool": "create_issue", "ttl": "5m", "reason": "r",
               "constraints": constraints})
    };
    // A regex the engine refuses: one line, naming the field and pointer.
    let r = issue(
        &gw,
        grant(json!([{"pointer": "/title", "regex": "(unclosed"}])),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let text = message(&r);
    assert!(text.starts_with("constraints: "), "{text}");
    assert!(
        text.contains("\"/title\"") && text.contains("regex-lite"),
        "{text}"
    );
    assert!(!text.contains('\n'), "one line: {text:?}");
    // An unknown operator names the field and what is accepted.
    let r = issue(&gw, grant(json!([{"pointer": "/title", "matches": "x"}]))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    let text = message(&r);
    assert!(
        text.contains("constraints") && text.contains("unknown operator \"matches\""),
        "{text}"
    );
    assert!(
        text.contains("equals, one_of, glob, regex, range, prefix"),
        "{text}"
    );
    assert!(!text.contains("variant"), "{text}");
}

/// What the `jit-grants` README says about dead grants: the gateway sends
/// only live ones, so the refusal says no live grant covers the call, and
/// the grant's own record says why it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_grant_reads_as_no_live_grant_and_its_record_says_expired() {
    let up = upstream().await;
    let gw = TestGateway::start(&config("tools", &up.url(""), "deny", "", "")).await;
    let task = create_task(&gw, AGENT).await;
    let r = issue(
        &gw,
        json!({"task_id": task, "tool": "create_issue", "ttl": "1s", "reason": "r"}),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let id = r.json()["grant"]["id"].as_str().unwrap().to_owned();
    let me = token(AGENT, "tools", Some(&task));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let no = raw_call(&gw, "tools", &me, None, "create_issue", json!({})).await;
    let text = refusal(&no).expect("refused");
    assert!(
        text.ends_with("no live grant covers tool \"create_issue\" with these arguments"),
        "{text}"
    );
    let shown = admin(&gw, Method::GET, &format!("/v1/grants/{id}"), None).await;
    assert_eq!(
        shown.json()["grant"]["state"],
        "expired",
        "{}",
        shown.text()
    );
}
