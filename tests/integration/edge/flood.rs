//! One client opening thousands of silent connections must not take the
//! gateway down: the real binary, under a small open-file limit, keeps
//! answering valid calls and `/healthz` while 5,000 idle connections pile up.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use super::*;
use crate::common::process::{BIN, listening};

/// The gateway's open-file limit in this test: below the flood's size, as
/// it was when 20,000 connections exhausted the real limit.
const GATEWAY_OPEN_FILES: u64 = 4096;
const FLOOD: usize = 5000;

/// `toolgate serve` under `ulimit -n GATEWAY_OPEN_FILES`, killed when dropped.
struct LimitedGateway {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl LimitedGateway {
    fn start(upstream: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("toolgate.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nbind = \"127.0.0.1:0\"\n[admin]\nbind = \"127.0.0.1:0\"\n\
                 [server.connections]\nheader_read_timeout = \"120s\"\nidle_timeout = \"120s\"\n{}",
                route("m", "/mcp", upstream, ALLOW)
            ),
        )
        .unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {GATEWAY_OPEN_FILES} && exec \"$0\" \"$@\""
            ))
            .arg(BIN)
            .args(["serve", "--log-format", "json", "--log", "info", "--config"])
            .arg(&config)
            .env_remove("TOOLGATE_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addrs) = listening(&line) {
                    let _ = tx.send(addrs);
                }
            }
        });
        let (addr, admin) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("toolgate says where it listens");
        Self {
            child,
            addr,
            admin,
            _dir: dir,
        }
    }

    fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for LimitedGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many idle connections this process can hold open next to everything else.
fn flood_size() -> usize {
    let soft = toolgate::listener::fds::raise_open_file_limit().unwrap_or(1024);
    let room = usize::try_from(soft.saturating_sub(1024)).unwrap_or(0);
    if room < FLOOD {
        eprintln!("open-file limit {soft}: flooding with {room} connections instead of {FLOOD}");
    }
    room.min(FLOOD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_idle_connections_leave_calls_and_healthz_answering() {
    let up = mcp_upstream().await;
    let gw = LimitedGateway::start(&up.url("/mcp"));
    let flood = flood_size();
    let mut idle = Vec::with_capacity(flood);
    let flooding_since = Instant::now();
    while idle.len() < flood && flooding_since.elapsed() < Duration::from_secs(20) {
        let batch: Vec<_> = (0..(flood - idle.len()).min(250))
            .map(|_| {
                let addr = gw.addr;
                tokio::spawn(async move {
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
                })
            })
            .collect();
        for connecting in batch {
            if let Ok(Ok(Ok(stream))) = connecting.await {
                idle.push(stream);
            }
        }
    }
    assert!(
        idle.len() >= flood * 9 / 10,
        "only {} of {flood} connected",
        idle.len()
    );

    // Connections still in the kernel's accept queue are not open yet:
    // wait until the gateway has taken them all (its descriptors settle).
    let mut open = gw.open_files();
    let settling = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = gw.open_files();
        if now == open || settling.elapsed() > Duration::from_secs(15) {
            break;
        }
        open = now;
    }

    // Answered within seconds (a loaded machine's seconds): a gateway out of
    // descriptors answers nobody until idle connections time out, which
    // here (120 s) is long after the flood; its descriptor count (below)
    // gives it away in any case.
    let call = tokio::time::timeout(
        Duration::from_secs(5),
        post_mcp(
            &format!("http://{}/mcp", gw.addr),
            &[],
            &tools_call(json!(1), "echo"),
        ),
    )
    .await
    .expect("a valid call answered within 5 s");
    assert_eq!(call.status, StatusCode::OK, "{}", call.text());
    let health = tokio::time::timeout(
        Duration::from_secs(5),
        send(
            Method::GET,
            &format!("http://{}/healthz", gw.admin),
            &[],
            Bytes::new(),
        ),
    )
    .await
    .expect("/healthz answered within 5 s");
    assert_eq!(health.status, StatusCode::OK);
    // The flood holds at most one address's cap of the gateway's descriptors.
    let open = gw.open_files();
    assert!(open < 1024, "the gateway holds {open} descriptors");
    drop(idle);
}
