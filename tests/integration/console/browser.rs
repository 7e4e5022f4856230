//! Headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): chromedriver started on a free loopback port, a
//! fresh profile per browser, both gone when the browser is dropped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// How to get the browser, said when it is missing.
const INSTALL: &str = "the console's browser tests drive headless Chromium: install it with \
     `apt-get install chromium chromium-driver` (Debian; .ci/run does this), or point \
     TOOLGATE_CHROMIUM and TOOLGATE_CHROMEDRIVER at the binaries";

/// Chromium's flags: headless, and quiet on a machine without a network.
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
];

/// How long a page may take to show what a test waits for.
pub(super) const PATIENCE: Duration = Duration::from_secs(30);

pub(super) struct Browser {
    pub(super) client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

fn binary(env: &str, candidates: &[&str]) -> PathBuf {
    if let Ok(path) = std::env::var(env) {
        return PathBuf::from(path);
    }
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{INSTALL} (looked for {})", candidates.join(", ")))
}

/// chromedriver on a free loopback port, its output to `log`; its URL.
fn start_driver(chromedriver: &Path, log: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let out = std::fs::File::create(log).expect("chromedriver's log file");
    let err = out.try_clone().expect("chromedriver's log file");
    let driver = Command::new(chromedriver)
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own process group: dropping the browser ends chromedriver
        // and the Chromium it started, and nothing else.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}; {INSTALL}", chromedriver.display()));
    (driver, format!("http://127.0.0.1:{port}"))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session. Panics, saying
    /// how to install them, when they are missing: never a silent pass.
    pub(super) async fn start() -> Self {
        let chromium = binary(
            "TOOLGATE_CHROMIUM",
            &["/usr/bin/chromium", "/usr/bin/chromium-browser"],
        );
        let chromedriver = binary("TOOLGATE_CHROMEDRIVER", &["/usr/bin/chromedriver"]);
        let profile = tempfile::tempdir().expect("profile dir");
        let mut args: Vec<String> = FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        // Its port is picked here, free a moment ago: if another socket took
        // it before chromedriver could, chromedriver exits saying so, and is
        // started again on another one. Any other exit is a failure.
        let log = profile.path().join("chromedriver.log");
        let (mut driver, mut url) = start_driver(&chromedriver, &log);
        let mut starts = 1;
        let mut last = String::new();
        for _ in 0..100 {
            match ClientBuilder::new(HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(client) => {
                    return Self {
                        client,
                        driver,
                        _profile: profile,
                    };
                }
                Err(e) => last = e.to_string(),
            }
            if let Ok(Some(status)) = driver.try_wait() {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                let port_taken = ["not available", "in use"]
                    .iter()
                    .any(|m| said.to_ascii_lowercase().contains(m));
                assert!(
                    port_taken && starts < 5,
                    "chromedriver exited ({status}) at start {starts}:\n{said}\n{INSTALL}"
                );
                (driver, url) = start_driver(&chromedriver, &log);
                starts += 1;
                continue;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver at {url} gave no browser session: {last}; {INSTALL}");
    }

    /// Signs in on the console at `admin` (the admin listener's base URL).
    pub(super) async fn sign_in(&self, admin: &str, token: &str) {
        self.client
            .goto(&format!("{admin}/console/"))
            .await
            .expect("console opens");
        let field = self.wait_for("#token").await;
        field.send_keys(token).await.expect("token typed");
        self.click("#signin").await;
        self.wait_for("#inbox").await;
    }

    pub(super) async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("page opens");
    }

    pub(super) async fn wait_for(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
    }

    pub(super) async fn find_all(&self, css: &str) -> Vec<Element> {
        self.client
            .find_all(Locator::Css(css))
            .await
            .expect("find_all")
    }

    pub(super) async fn click(&self, css: &str) {
        self.wait_for(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {css}: {e}"));
    }

    /// Types into the field `css` (emptied first).
    pub(super) async fn fill(&self, css: &str, text: &str) {
        let field = self.wait_for(css).await;
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    pub(super) async fn text(&self, css: &str) -> String {
        self.wait_for(css).await.text().await.expect("text")
    }

    /// Waits until the element `css` shows `needle`.
    pub(super) async fn wait_text(&self, css: &str, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
                && text.contains(needle)
            {
                return text;
            }
            if tokio::time::Instant::now() > deadline {
                let page = self.client.source().await.unwrap_or_default();
                panic!("{css} never showed {needle:?}; page:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs an async script; it calls `done(value)` (its last argument).
    pub(super) async fn run(&self, script: &str) -> Value {
        let script = format!("const done = arguments[arguments.length - 1];\n{script}");
        self.client
            .execute_async(&script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}"))
    }

    /// Writes a screenshot to `target/console-screenshots/<name>.png`.
    pub(super) async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("screenshot written");
        path
    }

    /// Ends the browser session, then chromedriver.
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(10), self.client.clone().close()).await;
        // Waited for: `Drop` then finds no process left to end.
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test ends here without `close`: end the whole group.
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// `target/console-screenshots`, beside the test binary's own target dir.
fn screenshots_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<binary>
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}
