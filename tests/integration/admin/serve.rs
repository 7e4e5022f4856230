//! The binary's side of the admin API: `toolgate admin-token` makes tokens
//! the config admits, `POST /v1/config/reload` makes `toolgate serve`
//! re-read its file, changes leave audit lines without secrets, `check`
//! loads the admin TLS files, and the demo prints a working admin token.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::json;

use crate::common::admin::{ADMIN_TOKEN, assert_error, call, token_table};
use crate::common::demo::Demo;
use crate::common::post_mcp;
use crate::common::process::listening;

const BIN: &str = env!("CARGO_BIN_EXE_toolgate");

/// A child process whose stdout and stderr lines are collected; killed on drop.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// The threads reading its stdout and stderr, until they close.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Proc {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(args)
            .env_remove("TOOLGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().unwrap());
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().unwrap());
        let readers = [out, err]
            .into_iter()
            .map(|stream| {
                let lines = Arc::clone(&lines);
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        lines.lock().unwrap().push(line);
                    }
                })
            })
            .collect();
        Self {
            child,
            lines,
            readers,
        }
    }

    fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    async fn wait_for(&self, what: &str) {
        let start = Instant::now();
        while !self.text().contains(what) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no {what:?} within 30s in:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits (up to 30 s, or fails saying so) for the
    /// process to exit and for its last lines to be read.
    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let asked = Instant::now();
        while self.child.try_wait().expect("try_wait").is_none() {
            assert!(
                asked.elapsed() < Duration::from_secs(30),
                "still running 30 s after SIGTERM:\n{}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_token_output_is_admitted_and_config_reloads_through_the_api() {
    let (ok, out, err) = run(
        &["admin-token", "--name", "ci-bot", "--role", "operator"],
        "",
    );
    assert!(ok, "{err}");
    let token = out.lines().next().unwrap().to_owned();
    assert!(
        token.starts_with("tgadm_") && token.len() == 6 + 43,
        "{out}"
    );
    let block = &out[out.find("[[admin.tokens]]").unwrap()..];
    let (ok, hash, _) = run(&["admin-token", "--hash"], &format!("{token}\n"));
    assert!(ok);
    assert!(
        block.contains(&format!("sha256 = \"{}\"", hash.trim())),
        "{block}"
    );

    let upstream = crate::common::upstream::FakeUpstream::start(|_| async {
        crate::common::upstream::json(200, &json!({"jsonrpc": "2.0", "id": 1, "result": {}}))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toolgate.toml");
    // Ports the OS picks, read back from the log: a reload keeps them.
    let config = |routes: &[&str]| {
        let mut text = format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\n\
             [admin]\nbind = \"127.0.0.1:0\"\n{block}{}",
            token_table("root", "admin", ADMIN_TOKEN)
        );
        for name in routes {
            text.push_str(&format!(
                "[[routes]]\nname = \"{name}\"\npath = \"/{name}\"\nupstream = \"{}\"\ndefault_decision = \"allow\"\n",
                upstream.url("/mcp")
            ));
        }
        text
    };
    std::fs::write(&path, config(&["one"])).unwrap();
    let path_arg = path.display().to_string();
    let mut serve = Proc::spawn(&["serve", "--log-format", "json", "--config", &path_arg]);
    serve.wait_for("toolgate listening").await;
    let (addr, admin) = serve
        .text()
        .lines()
        .find_map(listening)
        .expect("the log says where it listens");
    let url = |p: &str| format!("http://{admin}{p}");

    let me = call(&url("/v1/whoami"), Method::GET, Some(&token), None).await;
    assert_eq!(me.json(), json!({"actor": "ci-bot", "role": "operator"}));

    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
    let two = format!("http://{addr}/two");
    assert_eq!(post_mcp(&two, &[], &ping).await.status, 404);
    std::fs::write(&path, config(&["one", "two"])).unwrap();
    let r = call(&url("/v1/config/reload"), Method::POST, Some(&token), None).await;
    assert_error(&r, 403, "forbidden");
    let r = call(
        &url("/v1/config/reload"),
        Method::POST,
        Some(ADMIN_TOKEN),
        None,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json(), json!({"reload": "requested"}));
    let start = Instant::now();
    while post_mcp(&two, &[], &ping).await.status != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the reload did not add the route:\n{}",
            serve.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    serve.terminate();
    let log = serve.text();
    let audit: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("toolgate::audit") && l.contains("admin action"))
        .collect();
    assert!(
        audit.iter().any(|l| l.contains("\"actor\":\"root\"")
            && l.contains("\"action\":\"config.reload\"")
            && l.contains("\"outcome\":\"ok\"")),
        "{log}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("\"actor\":\"ci-bot\"") && l.contains("\"outcome\":\"forbidden\"")),
        "{log}"
    );
    assert!(
        !log.contains(&token) && !log.contains(ADMIN_TOKEN),
        "no token in the log"
    );
}

#[test]
fn check_loads_the_admin_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toolgate.toml");
    std::fs::write(
        &path,
        "[admin]\nbind = \"127.0.0.1:9901\"\n\
         [admin.tls]\ncert_file = \"missing.crt\"\nkey_file = \"missing.key\"\n",
    )
    .unwrap();
    let (ok, _, err) = run(&["check", "--config", &path.display().to_string()], "");
    assert!(!ok);
    assert!(
        err.contains("admin.tls: cannot read certificate file"),
        "{err}"
    );
}

/// The demo runs the shipped WASM modules: README command 1 shows each
/// outcome — allowed by a module, denied by one, allowed under a grant until
/// its uses run out, parked for approval (one call waits from the start) —
/// and prints an admin token that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_each_outcome_and_prints_an_admin_token_that_works() {
    let mut demo = Demo::start().await;
    let (gw, admin) = (demo.gw, demo.admin);
    let text = demo.banner();
    let (token, agent, ops, locked) = (
        demo.export("TOOLGATE_ADMIN_TOKEN"),
        demo.export("TOKEN"),
        demo.export("OPS_TOKEN"),
        demo.export("LOCKED_TOKEN"),
    );
    let example = format!(
        "curl -s -H \"Authorization: Bearer $TOOLGATE_ADMIN_TOKEN\" http://127.0.0.1:{admin}/v1/tasks"
    );
    assert!(text.contains(&example), "{text}");
    assert!(
        text.contains(&format!("open http://127.0.0.1:{admin}/console/")),
        "{text}"
    );

    // The parked call is in the inbox at once.
    let approvals = call(
        &format!("http://127.0.0.1:{admin}/v1/approvals?state=pending"),
        Method::GET,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(approvals.status, 200, "{}", approvals.text());
    let pending = approvals.json()["approvals"].clone();
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{pending}");
    assert_eq!(pending[0]["tool"], "add");
    assert_eq!(pending[0]["route"], "ops");

    let tool_call = |name: &str, arguments: serde_json::Value| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
               "params": {"name": name, "arguments": arguments}})
    };
    let text_of = |reply: &crate::common::Reply| {
        let body = reply.json();
        assert_eq!(body["id"], 7, "{body}");
        (
            body["result"]["content"][0]["text"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            body["result"]["isError"] == true,
        )
    };
    let at = |path: &str| format!("http://127.0.0.1:{gw}{path}");
    let bearer = |t: &str| format!("Bearer {t}");
    let echo = tool_call("echo", json!({"text": "hello"}));

    // 1. allowed by the allowlist module.
    let auth = bearer(&agent);
    let reply = post_mcp(&at("/mcp"), &[("authorization", &auth)], &echo).await;
    assert_eq!(text_of(&reply), ("hello".to_owned(), false));
    // 2. denied by it, with its rule's reason.
    let reply = post_mcp(
        &at("/mcp"),
        &[("authorization", &auth)],
        &tool_call("delete_all", json!({})),
    )
    .await;
    let (why, refused) = text_of(&reply);
    assert!(refused && why.contains("no allowlist rule lets"), "{why}");
    // 3. three uses under the task's grant, then parked: the grant is spent.
    let auth = bearer(&ops);
    for _ in 0..3 {
        let reply = post_mcp(&at("/ops/mcp"), &[("authorization", &auth)], &echo).await;
        assert_eq!(text_of(&reply), ("hello".to_owned(), false));
    }
    let reply = post_mcp(&at("/ops/mcp"), &[("authorization", &auth)], &echo).await;
    let (why, refused) = text_of(&reply);
    assert!(refused && why.contains("approval_pending"), "{why}");
    // 5. denied where no policy applies.
    let auth = bearer(&locked);
    let reply = post_mcp(&at("/locked/mcp"), &[("authorization", &auth)], &echo).await;
    let (why, refused) = text_of(&reply);
    assert!(refused && why.contains("no_policy"), "{why}");

    let tasks = call(
        &format!("http://127.0.0.1:{admin}/v1/tasks"),
        Method::GET,
        Some(&token),
        None,
    )
    .await;
    assert_eq!(tasks.status, 200, "{}", tasks.text());
    assert_eq!(tasks.json()["tasks"].as_array().map(Vec::len), Some(1));
    demo.signal("TERM");
    let _ = demo.wait_exit(Duration::from_secs(10));
}
