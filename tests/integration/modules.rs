//! Every module in `policy-modules/`, built for wasm32 and run by the
//! gateway in front of the real Python MCP server, driven by real MCP
//! clients with real JWT-SVIDs: allowed calls pass, refused ones come back
//! as `isError` results with the module's reason, `tools/list` is filtered.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use toolgate::identify::mint::{DEV_ISSUER, DEV_KEY_PEM, Mint};

use crate::common::TestGateway;
use crate::common::modules::{build, vectors};
use crate::common::peers::{PyServer, py_client, ts_client};

const READER: &str = "spiffe://toolgate.dev/agent/reader";

/// The gateway with one authenticated route per module, all in front of `py`.
/// `modules` is (route/module name, wasm, vectors, TOML config table).
async fn gateway(py: &PyServer, modules: &[(&str, &Path, &Path, &str)]) -> TestGateway {
    let jwks = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev/jwks.json");
    let mut config = format!(
        "[server]\nbind = \"127.0.0.1:0\"\npublic_url = \"http://gateway.test\"\n[admin]\nbind = \"127.0.0.1:0\"\n\
         [policy_limits]\ndeadline = \"200ms\"\n\
         [[issuers]]\nname = \"dev\"\nissuer = \"{DEV_ISSUER}\"\nmode = \"spiffe\"\ntrust_domains = [\"toolgate.dev\"]\njwks_file = \"{}\"\n",
        jwks.display()
    );
    for (name, wasm, vectors, table) in modules {
        config.push_str(&format!(
            "\n[[routes]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\n[routes.auth]\nissuers = [\"dev\"]\n\
             \n[[policies]]\nname = \"{name}\"\nmodule = \"{}\"\nvectors = \"{}\"\nroutes = [\"{name}\"]\n{table}\n",
            py.url(),
            wasm.display(),
            vectors.display()
        ));
    }
    TestGateway::start(&config).await
}

fn bearer(route: &str) -> String {
    let token = Mint::dev(
        READER,
        &format!("http://gateway.test/{route}"),
        Duration::from_secs(600),
    )
    .sign(DEV_KEY_PEM.as_bytes())
    .unwrap();
    format!("Authorization: Bearer {token}")
}

async fn client(ts: bool, url: &str, auth: &str, era: &str, mode: &[&str]) -> Value {
    let mut args = vec!["--url", url, "--header", auth];
    if !ts {
        args.extend(["--era", era]);
    }
    args.extend_from_slice(mode);
    let out = if ts {
        ts_client(&args).await
    } else {
        py_client(&args).await
    };
    out.unwrap_or_else(|e| panic!("client failed on {url}: {e}"))
}

fn tools(out: &Value) -> Vec<&str> {
    out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect()
}

fn refused(out: &Value, needle: &str) {
    assert_eq!(out["isError"], true, "{out}");
    let text = out["text"].as_str().unwrap_or("");
    assert!(
        text.contains(needle),
        "refusal text {text:?} lacks {needle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_modules_decide_real_client_calls() {
    let wasm = build(&["allowlist", "arg-constraints", "task-budget", "jit-grants"]);
    let v = ["allowlist", "arg-constraints", "task-budget", "jit-grants"].map(vectors);
    let py = PyServer::start(&[]).await;
    let gw = gateway(
        &py,
        &[
            ("allowlist", &wasm[0], &v[0], "[policies.config]\nrules = [{ subjects = [\"spiffe://toolgate.dev/agent/reader\"], tools = [\"echo\"] }]"),
            ("arg-constraints", &wasm[1], &v[1], "[policies.config]\nrules = [{ tools = [\"echo\"], pointer = \"/text\", path_prefix = \"/workspace/\" }]"),
            ("task-budget", &wasm[2], &v[2], "[policies.config]\nrequire_task = true"),
            ("jit-grants", &wasm[3], &v[3], "[policies.config]\nmissing = \"needs_approval\""),
        ],
    )
    .await;
    let url = |r: &str| gw.url(&format!("/{r}"));

    // allowlist (Python client, 2026-07-28): echo allowed, add refused, list filtered.
    let auth = bearer("allowlist");
    let ok = client(
        false,
        &url("allowlist"),
        &auth,
        "modern",
        &["call", "--tool", "echo", "--args", r#"{"text":"hi"}"#],
    )
    .await;
    assert_eq!(ok["isError"], false, "{ok}");
    assert_eq!(ok["text"], "hi");
    let no = client(
        false,
        &url("allowlist"),
        &auth,
        "modern",
        &["call", "--tool", "add", "--args", r#"{"a":1,"b":2}"#],
    )
    .await;
    refused(&no, "policy_deny");
    refused(&no, READER);
    let list = client(false, &url("allowlist"), &auth, "modern", &["list"]).await;
    assert_eq!(tools(&list), ["echo"], "{list}");

    // arg-constraints (TypeScript client): a path under the prefix passes, traversal does not.
    let auth = bearer("arg-constraints");
    let ok = client(
        true,
        &url("arg-constraints"),
        &auth,
        "",
        &[
            "call",
            "--tool",
            "echo",
            "--args",
            r#"{"text":"/workspace/notes.md"}"#,
        ],
    )
    .await;
    assert_eq!(ok["text"], "/workspace/notes.md", "{ok}");
    let no = client(
        true,
        &url("arg-constraints"),
        &auth,
        "",
        &[
            "call",
            "--tool",
            "echo",
            "--args",
            r#"{"text":"/workspace/../etc/passwd"}"#,
        ],
    )
    .await;
    refused(&no, "policy_deny");
    let list = client(true, &url("arg-constraints"), &auth, "", &["list"]).await;
    assert!(
        tools(&list).contains(&"echo"),
        "argument rules do not hide tools: {list}"
    );

    // task-budget (Python, legacy): no task context, require_task ⇒ refused.
    let auth = bearer("task-budget");
    let no = client(
        false,
        &url("task-budget"),
        &auth,
        "legacy",
        &["call", "--tool", "echo", "--args", r#"{"text":"x"}"#],
    )
    .await;
    refused(&no, "policy_deny");

    // jit-grants (Python, legacy): no live grant ⇒ parked for approval, hidden from the list.
    let auth = bearer("jit-grants");
    let no = client(
        false,
        &url("jit-grants"),
        &auth,
        "legacy",
        &["call", "--tool", "echo", "--args", r#"{"text":"x"}"#],
    )
    .await;
    refused(&no, "needs a human approval");
    let list = client(false, &url("jit-grants"), &auth, "legacy", &["list"]).await;
    assert!(tools(&list).is_empty(), "{list}");

    // The server never saw a refused call.
    let calls: Vec<Value> = py
        .requests()
        .into_iter()
        .filter(|r| r["headers"]["mcp-method"] == "tools/call")
        .collect();
    assert_eq!(
        calls.len(),
        1,
        "only the allowed modern-era call carries Mcp-Method: {calls:?}"
    );
}

const REGO: &str = r#"[policies.config]
query = "data.toolgate.decision"
[policies.config.policies]
"toolgate.rego" = '''
package toolgate

import rego.v1

default decision := {"decision": "deny", "reason": "only echo is allowed by rego"}

decision := {"decision": "allow"} if input.tool.name == "echo"
'''
"#;

const CEDAR: &str = r#"[policies.config]
policies = '''
@id("echo-only")
permit (principal, action, resource)
when { resource.name == "echo" && principal.trust_domain == "toolgate.dev" };
'''
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rego_and_cedar_modules_decide_real_client_calls() {
    let wasm = build(&["rego", "cedar"]);
    let py = PyServer::start(&[]).await;
    let gw = gateway(
        &py,
        &[
            ("rego", &wasm[0], &vectors("rego"), REGO),
            ("cedar", &wasm[1], &vectors("cedar"), CEDAR),
        ],
    )
    .await;
    for (module, ts, era, why) in [
        ("rego", false, "modern", "only echo is allowed by rego"),
        ("cedar", true, "", "no Cedar policy permits"),
    ] {
        let url = gw.url(&format!("/{module}"));
        let auth = bearer(module);
        let ok = client(
            ts,
            &url,
            &auth,
            era,
            &["call", "--tool", "echo", "--args", r#"{"text":"hi"}"#],
        )
        .await;
        assert_eq!(ok["text"], "hi", "{module}: {ok}");
        let no = client(
            ts,
            &url,
            &auth,
            era,
            &["call", "--tool", "add", "--args", r#"{"a":1,"b":2}"#],
        )
        .await;
        refused(&no, "policy_deny");
        refused(&no, why);
        let list = client(ts, &url, &auth, era, &["list"]).await;
        assert_eq!(tools(&list), ["echo"], "{module}: {list}");
    }
}
