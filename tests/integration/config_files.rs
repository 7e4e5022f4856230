//! The shipped configs, `toolgate check`, and the binary's own commands
//! (`--version`, `demo`, `serve` with SIGHUP reload and SIGTERM drain).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::post_mcp;

const BIN: &str = env!("CARGO_BIN_EXE_toolgate");

fn check(path: &Path, env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(path)
        .env_remove("GITHUB_MCP_TOKEN")
        .env_remove("WEATHER_API_KEY")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    (out.status.success(), stdout, stderr)
}

#[test]
fn every_file_under_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let env = [("GITHUB_MCP_TOKEN", "t"), ("WEATHER_API_KEY", "k")];
            let (ok, stdout, stderr) = check(&path, &env);
            assert!(ok, "{} does not check:\n{stderr}", path.display());
            assert!(stdout.contains(": ok ("), "{stdout}");
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "config/toolgate.toml and config/demo.toml at least"
    );
    // The demo config is compiled in; it must be the file in the repo.
    let on_disk = std::fs::read_to_string(dir.join("demo.toml")).unwrap();
    assert_eq!(on_disk, toolgate::demo::DEMO_CONFIG);
}

#[test]
fn shipped_config_names_its_missing_secrets_with_locations() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/toolgate.toml");
    let (ok, _, stderr) = check(&path, &[]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "routes[0].upstream_auth.value: environment variable GITHUB_MCP_TOKEN is not set"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "routes[1].upstream_auth.value: environment variable WEATHER_API_KEY is not set"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("2 error(s)"), "{stderr}");
}

#[test]
fn check_reports_every_error_of_a_broken_config_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        r#"
[server]
bind = "127.0.0.1:8080"
drain_timeout = "soon"

[server.tls]
cert_file = "missing.crt"
key_file = "missing.key"

[telemetry]
enabled = true

[[routes]]
name = "a"
path = "/a"
upstream = "ftp://example.com"

[[routes]]
name = "a"
path = "no-slash"
upstream = "http://127.0.0.1:1"
colour = "blue"

[[routes]]
name = "Bad Name"
path = "/c"
upstream = "http://user:pw@127.0.0.1:1/x"
[routes.upstream_auth]
value = { env = "TOOLGATE_TEST_SURELY_UNSET" }
[routes.timeouts]
connect = "0s"

[[routes]]
name = "d"
path = "/d"
upstream = "http://127.0.0.1:1"
[routes.upstream_auth]
value = "inline-secret-value"
"#,
    )
    .unwrap();
    let (ok, _, stderr) = check(&path, &[]);
    assert!(!ok, "a broken config must fail the check");
    let name = path.display().to_string();
    let wanted = [
        ("server", "soon"),
        ("telemetry", "unknown top-level key"),
        ("routes[0].upstream", "scheme \"ftp\""),
        ("routes[1]", "unknown field `colour`"),
        ("routes[2].name", "not a valid route name"),
        ("routes[2].upstream", "must not carry credentials"),
        (
            "routes[2].upstream_auth.value",
            "TOOLGATE_TEST_SURELY_UNSET is not set",
        ),
        ("routes[2].timeouts.connect", "greater than zero"),
        ("routes[3]", "never written inline"),
    ];
    for (at, what) in wanted {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!(": {at}: ")) && l.contains(what))
            .unwrap_or_else(|| panic!("no error for {at} ({what}) in:\n{stderr}"));
        // Every error is located: file:line:column.
        let loc = line.strip_prefix(&format!("{name}:")).unwrap();
        let mut parts = loc.splitn(3, ':');
        let line_no: usize = parts.next().unwrap().parse().unwrap();
        let col: usize = parts.next().unwrap().parse().unwrap();
        assert!(line_no > 1 && col >= 1, "{line}");
    }
    assert!(
        stderr.contains(&format!("{} error(s)", wanted.len())),
        "{stderr}"
    );

    // A syntax error is located too, and stops there.
    std::fs::write(&path, "[server]\nbind = \"127.0.0.1:1\"\n[[routes]\n").unwrap();
    let (ok, _, stderr) = check(&path, &[]);
    assert!(!ok);
    assert!(stderr.starts_with(&format!("{name}:3:")), "{stderr}");
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "check", "demo"] {
        assert!(help.contains(cmd), "{help}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed if the test fails before it exits.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

impl Proc {
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "process did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn wait_ready(url: &str) {
    let start = Instant::now();
    loop {
        let req = http::Request::get(url)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        if crate::common::client().request(req).await.is_ok() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{url} never came up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_example_tools_out_of_the_box() {
    let (gw, tools, admin) = (free_port(), free_port(), free_port());
    let mut demo = Proc(
        Command::new(BIN)
            .args([
                "demo",
                "--port",
                &gw.to_string(),
                "--tools-port",
                &tools.to_string(),
            ])
            .args(["--admin-port", &admin.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The banner is printed once the gateway listens; it carries the tokens.
    let stdout = demo.0.stdout.take().unwrap();
    let banner = tokio::task::spawn_blocking(move || {
        let mut banner = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let line = line.unwrap();
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Ctrl-C stops the demo") {
                break;
            }
        }
        banner
    });
    let banner = tokio::time::timeout(Duration::from_secs(30), banner)
        .await
        .unwrap()
        .unwrap();
    let token = |name: &str| {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("banner prints {name}: {banner}"))
            .to_owned()
    };
    let (token, locked) = (token("TOKEN"), token("LOCKED_TOKEN"));
    assert!(
        banner.contains(&format!("http://127.0.0.1:{gw}/mcp")),
        "{banner}"
    );
    assert!(
        banner.contains("curl"),
        "the banner says what to try: {banner}"
    );

    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}});
    let url = format!("http://127.0.0.1:{gw}/mcp");
    let bearer = format!("Bearer {token}");
    let ok = post_mcp(&url, &[("authorization", &bearer)], &call).await;
    assert_eq!(
        ok.json()["result"]["content"][0]["text"],
        "hello",
        "{}",
        ok.text()
    );
    let bearer_locked = format!("Bearer {locked}");
    let refused = post_mcp(
        &format!("http://127.0.0.1:{gw}/locked/mcp"),
        &[("authorization", &bearer_locked)],
        &call,
    )
    .await;
    assert_eq!(
        refused.json()["result"]["isError"],
        true,
        "{}",
        refused.text()
    );
    let anonymous = post_mcp(&url, &[], &call).await;
    assert_eq!(anonymous.status, 401);
    assert!(
        anonymous.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("resource_metadata=")
    );

    // `toolgate token mint` makes tokens the demo accepts.
    let out = Command::new(BIN)
        .args([
            "token",
            "mint",
            "--sub",
            "spiffe://toolgate.dev/agent/cli",
            "--aud",
            &url,
            "--ttl",
            "5m",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let minted = String::from_utf8(out.stdout).unwrap();
    let bearer = format!("Bearer {}", minted.trim());
    let ok = post_mcp(&url, &[("authorization", &bearer)], &call).await;
    assert_eq!(
        ok.json()["result"]["content"][0]["text"],
        "hello",
        "{}",
        ok.text()
    );

    demo.signal("-TERM");
    let status = demo.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "demo exited with {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reloads_on_sighup_and_drains_on_sigterm() {
    let upstream = crate::common::upstream::FakeUpstream::start(|_| async {
        crate::common::upstream::json(200, &json!({"jsonrpc":"2.0","id":1,"result":{}}))
    })
    .await;
    let (port, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toolgate.toml");
    let config = |extra_route: bool| {
        let mut text = format!(
            "[server]\nbind = \"127.0.0.1:{port}\"\ndrain_timeout = \"5s\"\n[admin]\nbind = \"127.0.0.1:{admin}\"\n\
             [[routes]]\nname = \"one\"\npath = \"/one\"\nupstream = \"{}\"\ndefault_decision = \"allow\"\n",
            upstream.url("/mcp")
        );
        if extra_route {
            text.push_str(&format!(
                "[[routes]]\nname = \"two\"\npath = \"/two\"\nupstream = \"{}\"\ndefault_decision = \"allow\"\n",
                upstream.url("/mcp")
            ));
        }
        text
    };
    std::fs::write(&path, config(false)).unwrap();
    let mut serve = Proc(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(&format!("http://127.0.0.1:{admin}/healthz")).await;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    let two = format!("http://127.0.0.1:{port}/two");
    assert_eq!(post_mcp(&two, &[], &ping).await.status, 404);

    std::fs::write(&path, config(true)).unwrap();
    serve.signal("-HUP");
    let start = Instant::now();
    while post_mcp(&two, &[], &ping).await.status != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "SIGHUP did not add the route"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A broken file on SIGHUP is refused; the running config keeps serving.
    std::fs::write(&path, "[[routes]]\nname = 1\n").unwrap();
    serve.signal("-HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post_mcp(&two, &[], &ping).await.status, 200);

    serve.signal("-TERM");
    assert!(serve.wait_exit(Duration::from_secs(10)).success());
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        let req = http::Request::get(format!("http://127.0.0.1:{port}/one"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        crate::common::client().request(req).await.is_err()
    })
    .await
    .unwrap();
    assert!(refused, "nothing listens after shutdown");
}

#[test]
fn issuer_audiences_bound_the_routes_that_trust_it() {
    let jwks = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev/jwks.json");
    let text = |audience: &str| {
        format!(
            r#"
[[issuers]]
name = "dev"
issuer = "toolgate-dev"
mode = "spiffe"
trust_domains = ["toolgate.dev"]
jwks_file = "{}"
audiences = ["https://tools.example.com/mcp"]

[[routes]]
name = "r"
path = "/mcp"
upstream = "http://127.0.0.1:1"
[routes.auth]
issuers = ["dev"]
audience = "{audience}"
"#,
            jwks.display()
        )
    };
    let ok =
        toolgate::config::load_str(&text("https://tools.example.com/mcp"), "t", Path::new("."));
    assert!(
        ok.is_ok(),
        "{}",
        ok.err().map(|d| d.to_string()).unwrap_or_default()
    );
    let err = toolgate::config::load_str(
        &text("https://elsewhere.example.com/mcp"),
        "t",
        Path::new("."),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("routes[0].auth.audience")
            && err.contains("not among issuer \"dev\"'s audiences"),
        "{err}"
    );
}
