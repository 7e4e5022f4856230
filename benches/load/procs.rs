//! The processes of a load run: spawning them (pinned to a CPU with
//! `taskset` when asked), and what `/proc` says about them — CPU time
//! (utime + stime, all threads) and peak resident memory (VmHWM).

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A child process, killed when dropped.
pub(crate) struct Proc {
    child: Child,
    pub(crate) name: String,
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub(crate) fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program` under `taskset -c cpu` when `cpu` is set.
pub(crate) fn command(program: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(program);
            c
        }
        None => Command::new(program),
    }
}

/// Spawns `cmd` (stdout piped) and waits for its `LISTENING <port>` line.
pub(crate) fn spawn_listening(name: &str, mut cmd: Command) -> (Proc, u16) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.strip_prefix("LISTENING ") {
                let _ = tx.send(port.trim().parse::<u16>().ok());
            }
        }
    });
    let proc = Proc {
        child,
        name: name.to_owned(),
    };
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(port)) => (proc, port),
        _ => panic!("{name} did not say where it listens"),
    }
}

/// Spawns `cmd` with stderr into `log`, not waiting for anything.
pub(crate) fn spawn_logged(name: &str, mut cmd: Command, log: &Path) -> Proc {
    let file = std::fs::File::create(log).expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Proc {
        child,
        name: name.to_owned(),
    }
}

/// Waits until something accepts TCP connections on `port`.
pub(crate) fn wait_port(proc: &mut Proc, port: u16, limit: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(proc.alive(), "{} exited before listening", proc.name);
        assert!(
            start.elapsed() < limit,
            "{} not listening on {port} after {limit:?}",
            proc.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A port nobody listens on now (bound, read, released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Is `taskset` there to pin processes with?
pub(crate) fn have(program: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Clock ticks per second for `/proc/<pid>/stat` times.
fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// CPU time (user + system, every thread) a process has used, in µs.
pub(crate) fn cpu_us(pid: u32) -> u64 {
    stat_cpu_us(&format!("/proc/{pid}/stat"))
}

/// CPU time (user + system) the threads of `pid` named `name` have used,
/// in µs: e.g. the decision log's writer, `toolgate-audit`.
pub(crate) fn thread_cpu_us(pid: u32, name: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .map(|t| stat_cpu_us(&t.path().join("stat").to_string_lossy()))
        .sum()
}

/// utime + stime of a `stat` file (a process's or a thread's), in µs.
fn stat_cpu_us(path: &str) -> u64 {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let total = ticks(11).unwrap_or(0) + ticks(12).unwrap_or(0);
    total * 1_000_000 / clk_tck()
}

/// A `kB` line of `/proc/<pid>/status` (e.g. `VmHWM`, `VmRSS`), in KiB.
pub(crate) fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
