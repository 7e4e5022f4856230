//! The shipped configs, `toolgate check`, and the binary's own commands
//! (`--version`, `demo`, `serve` with SIGHUP reload and SIGTERM drain).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::demo::Demo;
use crate::common::post_mcp;
use crate::common::process::ServerProcess;

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
        ("server.drain_timeout", "\"soon\" is not a duration"),
        ("server.tls", "missing.crt"),
        ("telemetry", "unknown top-level key"),
        ("routes[0].upstream", "scheme \"ftp\""),
        (
            "routes[1].name",
            "duplicate route name \"a\" (also routes[0])",
        ),
        ("routes[1].path", "must start with '/'"),
        ("routes[1].colour", "unknown field `colour`"),
        ("routes[2].name", "not a valid route name"),
        ("routes[2].upstream", "must not carry credentials"),
        (
            "routes[2].upstream_auth.value",
            "TOOLGATE_TEST_SURELY_UNSET is not set",
        ),
        ("routes[2].timeouts.connect", "greater than zero"),
        ("routes[3].upstream_auth.value", "never written inline"),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_the_example_tools_out_of_the_box() {
    // The banner is printed once the gateway listens; it carries the tokens.
    let mut demo = Demo::start().await;
    let gw = demo.gw;
    let banner = demo.banner();
    let (token, locked) = (demo.export("TOKEN"), demo.export("LOCKED_TOKEN"));
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

    demo.signal("TERM");
    let status = demo
        .wait_exit(Duration::from_secs(10))
        .expect("the demo exits within 10 s of SIGTERM");
    assert!(status.success(), "demo exited with {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reloads_on_sighup_and_drains_on_sigterm() {
    let upstream = crate::common::upstream::FakeUpstream::start(|_| async {
        crate::common::upstream::json(200, &json!({"jsonrpc":"2.0","id":1,"result":{}}))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toolgate.toml");
    // Ports the OS picks, read back from the log: a reload keeps them.
    let config = |extra_route: bool| {
        let mut text = format!(
            "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"5s\"\n[admin]\nbind = \"127.0.0.1:0\"\n\
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
    // Started, it has said where it listens (and so is ready).
    let mut serve = ServerProcess::start(&path);
    let addr = serve.addr;
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    let two = format!("http://{addr}/two");
    assert_eq!(post_mcp(&two, &[], &ping).await.status, 404);

    std::fs::write(&path, config(true)).unwrap();
    serve.signal("HUP");
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
    serve.signal("HUP");
    serve
        .log_until(|log| log.contains("reload refused, keeping the running config"))
        .await;
    assert_eq!(post_mcp(&two, &[], &ping).await.status, 200);

    serve.signal("TERM");
    let status = serve
        .wait_exit(Duration::from_secs(10))
        .expect("serve exits within 10 s of SIGTERM");
    assert!(status.success(), "{status:?}\n{}", serve.log());
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        let req = http::Request::get(format!("http://{addr}/one"))
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

/// Issue 12: a typo'd key, a bad duration, an unknown issuer and a
/// duplicate route name in one file are all reported, and `localhost:PORT`
/// is a listen address.
#[test]
fn check_reports_a_typo_a_bad_duration_an_unknown_issuer_and_a_duplicate_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mistakes.toml");
    std::fs::write(
        &path,
        r#"[server]
bind = "localhost:8080"

[admin]
bind = "localhost:9901"

[tasks]
stroe = "tasks.redb"
default_ttl = "1h30m"
max_ttl = "1d"

[[routes]]
name = "tools"
path = "/a"
upstream = "http://127.0.0.1:9000"
[routes.timeouts]
connect = "5 parsecs"
[routes.auth]
issuers = ["nobody"]

[[routes]]
name = "tools"
path = "/b"
upstream = "http://127.0.0.1:9000"
"#,
    )
    .unwrap();
    let (ok, _, stderr) = check(&path, &[]);
    assert!(!ok);
    let wanted = [
        ("8:1", "tasks.stroe", "unknown field `stroe`"),
        (
            "17:11",
            "routes[0].timeouts.connect",
            "\"5 parsecs\" is not a duration",
        ),
        (
            "19:11",
            "routes[0].auth.issuers",
            "issuer \"nobody\" is not defined",
        ),
        (
            "22:8",
            "routes[1].name",
            "duplicate route name \"tools\" (also routes[0])",
        ),
    ];
    for (at, key, what) in wanted {
        let line = format!("{}:{at}: {key}: ", path.display());
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with(&line) && l.contains(what)),
            "no {line}{what} in:\n{stderr}"
        );
    }
    assert!(stderr.contains("4 error(s)"), "{stderr}");
    assert!(
        !stderr.contains("bind"),
        "localhost:PORT is accepted: {stderr}"
    );
}

#[test]
fn check_speaks_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        "[server]\ndrain_timeout = \"soon\"\n[[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:1\"\ncolour = 1\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--format", "json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["file"], path.display().to_string());
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{doc}");
    assert_eq!(errors[0]["key"], "server.drain_timeout");
    assert_eq!(errors[0]["line"], 2);
    assert_eq!(errors[1]["key"], "routes[0].colour");
    assert_eq!(errors[1]["line"], 7);
    assert_eq!(errors[1]["column"], 1);

    std::fs::write(
        &path,
        "[[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--format", "json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["routes"], 1);
    assert_eq!(doc["errors"], json!([]));
    assert_eq!(
        doc["warnings"][0]["message"],
        "route accepts anonymous callers (no [routes.auth])"
    );
    assert_eq!(doc["warnings"][0]["fields"]["route"], "r");
}

/// Issue 14: each skipped JWKS key is one warning, not two; issue 12: a
/// check starts nothing, so nothing is logged as loaded or activated.
#[test]
fn check_prints_each_warning_once_and_nothing_as_if_started() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev/jwks.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(jwks).unwrap()).unwrap();
    let mut no_kid = doc["keys"][0].clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    doc["keys"].as_array_mut().unwrap().push(no_kid);
    std::fs::write(dir.path().join("jwks.json"), doc.to_string()).unwrap();
    let module = &crate::common::modules::build(&["allowlist"])[0];
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        format!(
            r#"[[issuers]]
name = "dev"
issuer = "toolgate-dev"
mode = "spiffe"
trust_domains = ["toolgate.dev"]
jwks_file = "jwks.json"

[[policies]]
name = "allow"
module = {}
[policies.config]
rules = []

[[routes]]
name = "r"
path = "/r"
upstream = "http://127.0.0.1:1"
[routes.auth]
issuers = ["dev"]
"#,
            toml::Value::String(module.display().to_string())
        ),
    )
    .unwrap();
    let (ok, stdout, stderr) = check(&path, &[]);
    assert!(ok, "{stderr}");
    let all = format!("{stdout}{stderr}");
    assert_eq!(
        all.matches("JWKS key skipped").count(),
        1,
        "one warning per skipped key:\n{all}"
    );
    assert!(
        all.contains("warning: JWKS key skipped: key #1: no kid"),
        "{all}"
    );
    assert!(all.contains("policy module has no test vectors"), "{all}");
    for started in ["activated", "loaded", "listening", "INFO"] {
        assert!(
            !all.contains(started),
            "{started:?} while only checking:\n{all}"
        );
    }
}

/// Issue 12: the shipped reference config passes `check` on a fresh
/// machine given the variables its header names, and without them says
/// which variable is unset.
#[test]
fn shipped_config_checks_with_the_variables_its_header_names() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/toolgate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let header: Vec<&str> = text.lines().take_while(|l| l.starts_with('#')).collect();
    let needed: Vec<&str> = header
        .iter()
        .flat_map(|l| l.split_whitespace())
        .filter_map(|w| w.strip_suffix("=placeholder"))
        .collect();
    assert_eq!(
        needed,
        ["GITHUB_MCP_TOKEN", "WEATHER_API_KEY"],
        "the header names the variables check needs:\n{}",
        header.join("\n")
    );
    let env: Vec<(&str, &str)> = needed.iter().map(|v| (*v, "placeholder")).collect();
    let (ok, stdout, stderr) = check(&path, &env);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(": ok (2 routes)"), "{stdout}");
}

/// Issue 12: a relative `tasks.store` is created next to the config file,
/// not in the working directory; the start-up log line names the admin
/// address plainly (no `Some(…)`).
#[test]
fn relative_paths_resolve_against_the_config_folder_when_serving() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("toolgate.toml"),
        "[server]\nbind = \"127.0.0.1:0\"\n[admin]\nbind = \"127.0.0.1:0\"\n\
         [tasks]\nstore = \"state/tasks.redb\"\n\
         [[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("state")).unwrap();
    let mut child = Command::new(BIN)
        .args(["--log-format", "json", "serve", "--config"])
        .arg(dir.path().join("toolgate.toml"))
        .current_dir(elsewhere.path())
        .env_remove("TOOLGATE_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut line = String::new();
    for l in std::io::BufRead::lines(std::io::BufReader::new(stderr)) {
        let l = l.unwrap();
        if l.contains("toolgate listening") {
            line = l;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        dir.path().join("state/tasks.redb").is_file(),
        "the store is next to the config"
    );
    assert!(
        !elsewhere.path().join("state").exists(),
        "nothing in the working directory"
    );
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    let admin = event["admin"].as_str().unwrap();
    assert!(
        admin.starts_with("127.0.0.1:") && admin.parse::<std::net::SocketAddr>().is_ok(),
        "{line}"
    );
}

/// Issue 14: `upstream_auth.prefix` defaults to `"Bearer "` for the
/// Authorization header (as the reference config reads) and to nothing
/// for any other header; an explicit `""` sends the secret alone.
#[test]
fn upstream_auth_prefix_defaults_by_header() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "s3cret\n").unwrap();
    let prefix = |table: &str| {
        let text = format!(
            "[[routes]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:1\"\n\
             [routes.upstream_auth]\nvalue = {{ file = \"secret\" }}\n{table}"
        );
        let config =
            toolgate::config::load_str(&text, "t", dir.path()).unwrap_or_else(|d| panic!("{d}"));
        config.routes[0]
            .upstream_auth
            .as_ref()
            .unwrap()
            .prefix
            .clone()
    };
    assert_eq!(prefix(""), "Bearer ");
    assert_eq!(prefix("header = \"Authorization\"\n"), "Bearer ");
    assert_eq!(prefix("prefix = \"\"\n"), "");
    assert_eq!(prefix("prefix = \"token \"\n"), "token ");
    assert_eq!(prefix("header = \"x-api-key\"\n"), "");
}

/// Issue 12: a LICENSE file that matches Cargo.toml's `license`.
#[test]
fn license_file_matches_cargo_toml() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains("\nlicense = \"Apache-2.0\"\n"),
        "{manifest}"
    );
    let license = std::fs::read_to_string(root.join("LICENSE")).unwrap();
    for part in [
        "Apache License",
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
        "APPENDIX: How to apply the Apache License to your work.",
    ] {
        assert!(license.contains(part), "LICENSE lacks {part:?}");
    }
}

/// Issue 12: README commands work when pasted as written: no `…` inside a
/// command line of a `sh` block (comments and answers may abbreviate).
#[test]
fn readme_commands_hold_no_ellipsis() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut in_sh = false;
    let mut bad = Vec::new();
    for (n, line) in readme.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_sh = !in_sh && line.trim_start() == "```sh";
            continue;
        }
        let command = line.split(" #").next().unwrap_or_default().trim();
        if in_sh && !command.starts_with('#') && command.contains('…') {
            bad.push(format!("README.md:{}: {line}", n + 1));
        }
    }
    assert!(
        bad.is_empty(),
        "commands with a placeholder:\n{}",
        bad.join("\n")
    );
}
