//! The real `toolgate serve`: decision lines on separate allow/deny
//! targets with no empty fields, no colour codes when stderr is not a
//! terminal, and a decision log that verifies after a `kill -9` and a
//! restart (the chain continues from the killed run's last line).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use super::*;
use crate::common::post_mcp;
use crate::common::process::{BIN, ServeDir};

const OPEN_ROUTE: &str = "[[routes]]\nname = \"open\"\npath = \"/open\"\n\
                          upstream = \"http://127.0.0.1:9/mcp\"\ndefault_decision = \"allow\"\n";

fn serve_dir(audit: &Path) -> ServeDir {
    ServeDir::with(&format!(
        "[audit]\ndir = \"{}\"\nfsync = \"never\"\n\n{OPEN_ROUTE}",
        audit.display()
    ))
}

async fn call(addr: std::net::SocketAddr, path: &str) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {}}});
    post_mcp(&format!("http://{addr}{path}"), &[], &body).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_log_on_allow_and_deny_targets_and_the_log_survives_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit");
    let dir = serve_dir(&audit);
    let server = dir.start();
    call(server.addr, "/open").await; // allowed (then the upstream is down)
    call(server.addr, "/mcp").await; // denied: no policy
    let _ = records(&audit, 3).await;
    // Decision lines reach stderr up to `record::stderr::FLUSH_EVERY` late.
    let log = server
        .log_until(|log| log.contains("toolgate::decision::deny"))
        .await;
    let decision = |target: &str| -> Value {
        log.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["target"] == target)
            .unwrap_or_else(|| panic!("no line on {target}:\n{log}"))
    };
    let allowed = decision("toolgate::decision::allow");
    assert_eq!(allowed["decision"], "allow");
    // Empty fields are left out, not written as "".
    assert!(
        allowed.get("message").is_none() && allowed.get("modules").is_none(),
        "{allowed}"
    );
    let denied = decision("toolgate::decision::deny");
    assert_eq!(denied["reason"], "no_policy");
    let listening = log
        .lines()
        .find(|l| l.contains("toolgate listening"))
        .unwrap();
    assert!(!listening.contains("Some("), "{listening}");
    server.kill9();

    // Restarted after kill -9: a new file continues the chain.
    let server = dir.start();
    call(server.addr, "/mcp").await;
    let all = records(&audit, 5).await;
    assert!(all.iter().any(|r| matches!(&r.body, Body::Log(l)
        if l.event == "opened" && l.previous.as_ref().is_some_and(|p| p.seq >= 3))));
    drop(server);
    let (ok, out) = verify_cli(std::slice::from_ref(&audit)).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn the_text_log_has_no_colour_codes_when_stderr_is_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = serve_dir(&tmp.path().join("audit"));
    let mut child = Command::new(BIN)
        .args(["serve", "--log-format", "text", "--log", "info", "--config"])
        .arg(dir.config())
        .env_remove("TOOLGATE_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("toolgate listening") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen.contains("toolgate listening"), "{seen}");
    assert!(
        !seen.contains('\u{1b}'),
        "colour codes in a piped log:\n{seen:?}"
    );
}
