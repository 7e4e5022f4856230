//! The real `toolgate demo`: the gateway and its example tool server on
//! ports picked here (its banner shows the ones it is given, and tests
//! check that), its output collected. Killed when dropped.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::process::{BIN, exit_within, signal};

/// A running `toolgate demo`, its stdout and stderr collected; killed when
/// dropped. The demo must be told its ports (its banner shows the ones it
/// was given), so they are picked here: each bound on port 0 and let go,
/// which leaves a moment in which another process may take one. The demo
/// then exits saying the address is in use, and is started again on other
/// ports.
pub struct Demo {
    child: Child,
    pub gw: u16,
    pub tools: u16,
    pub admin: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    /// The threads reading its stdout and stderr, until they close.
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Demo {
    /// Starts the demo and waits (up to 60 s) until its banner is out; on
    /// a port taken meanwhile, again on other ports (five tries in all).
    pub async fn start() -> Self {
        for attempt in 1.. {
            let mut demo = Self::spawn(free_ports());
            let started = std::time::Instant::now();
            let status = loop {
                if demo.banner().contains("Ctrl-C stops the demo") {
                    return demo;
                }
                if let Some(status) = demo.child.try_wait().expect("try_wait") {
                    break status;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the demo printed no banner within 60 s:\n{}\n{}",
                    demo.banner(),
                    demo.stderr()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            demo.join_readers();
            let stderr = demo.stderr();
            assert!(
                attempt < 5 && stderr.contains("Address already in use"),
                "the demo exited ({status}) before its banner:\n{}\n{stderr}",
                demo.banner()
            );
        }
        unreachable!("the attempts end in a return or a panic")
    }

    fn spawn([gw, tools, admin]: [u16; 3]) -> Self {
        let mut child = Command::new(BIN)
            .args(["demo", "--port", &gw.to_string()])
            .args(["--tools-port", &tools.to_string()])
            .args(["--admin-port", &admin.to_string()])
            .env_remove("TOOLGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("toolgate demo starts");
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped"));
        let readers = [(out, Arc::clone(&stdout)), (err, Arc::clone(&stderr))]
            .into_iter()
            .map(|(stream, text): (_, Arc<Mutex<String>>)| {
                std::thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let mut text = text.lock().unwrap();
                        text.push_str(&line);
                        text.push('\n');
                    }
                })
            })
            .collect();
        Self {
            child,
            gw,
            tools,
            admin,
            stdout,
            stderr,
            readers,
        }
    }

    /// What it printed on stdout so far: the banner.
    pub fn banner(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// What it logged on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The value the banner gives for `export NAME=`.
    pub fn export(&self, name: &str) -> String {
        let banner = self.banner();
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("export {name}=")))
            .unwrap_or_else(|| panic!("the banner prints {name}:\n{banner}"))
            .to_owned()
    }

    /// Sends a signal by name (`TERM`, ...) with `kill`.
    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Waits up to `within` for the process to exit on its own (then for
    /// its last lines to be read); its status, or `None` if it still runs.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let status = exit_within(&mut self.child, within)?;
        self.join_readers();
        Some(status)
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three distinct loopback ports that were free a moment ago (each held
/// until all three are picked, so none is picked twice).
fn free_ports() -> [u16; 3] {
    let held = [(); 3].map(|()| std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0"));
    held.map(|l| l.local_addr().expect("local addr").port())
}
