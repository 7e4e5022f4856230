//! The load generators: closed loop (each connection sends its next
//! request when the last one is answered — for requests/s), open loop at a
//! fixed rate (requests are scheduled at fixed intervals whatever happens,
//! and each latency counts from the request's *intended* send time, so a
//! stall is charged to every request it delays: no coordinated omission),
//! and `wrk` for the saturated requests/s of a full run. Every answer the
//! built-in generators get is checked against what the row expects.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

/// What a row's answers must look like.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub(crate) status: u16,
    /// The body holds this…
    pub(crate) contains: &'static str,
    /// …and not this.
    pub(crate) lacks: Option<&'static str>,
}

/// One kind of request, sent over and over.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) port: u16,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) expect: Expect,
}

impl Target {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::post(self.path.as_str());
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req.header("host", format!("127.0.0.1:{}", self.port))
            .body(Full::new(self.body.clone()))
            .expect("a valid request")
    }

    fn check(&self, status: u16, body: &[u8]) -> Result<(), String> {
        let text = String::from_utf8_lossy(body);
        let e = self.expect;
        if status == e.status
            && text.contains(e.contains)
            && e.lacks.is_none_or(|l| !text.contains(l))
        {
            Ok(())
        } else {
            Err(format!(
                "HTTP {status} {}",
                text.chars().take(300).collect::<String>()
            ))
        }
    }
}

/// Answers counted by a generator.
#[derive(Debug, Default, Clone)]
pub(crate) struct Tally {
    pub(crate) ok: u64,
    pub(crate) bad: u64,
    /// The first unexpected answer (or error), for the report.
    pub(crate) first_bad: Option<String>,
}

impl Tally {
    fn add(&mut self, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.bad += 1;
                self.first_bad.get_or_insert(e);
            }
        }
    }

    pub(crate) fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.bad += other.bad;
        if self.first_bad.is_none() {
            self.first_bad = other.first_bad;
        }
    }
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(port: u16) -> Result<Sender, String> {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One exchange on a connection (made when there is none): the status, the
/// body, and when the first SSE event (a blank line) had arrived.
async fn exchange(
    conn: &mut Option<Sender>,
    target: &Target,
) -> Result<(u16, Bytes, Option<Instant>), String> {
    let sender = match conn {
        Some(s) if !s.is_closed() => s,
        _ => conn.insert(connect(target.port).await?),
    };
    let sent = async {
        sender.ready().await.map_err(|e| format!("ready: {e}"))?;
        let resp = sender
            .send_request(target.request())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let mut buf = BytesMut::new();
        let mut first_event = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("body: {e}"))?;
            if let Ok(data) = frame.into_data() {
                buf.extend_from_slice(&data);
                if first_event.is_none() && buf.windows(2).any(|w| w == b"\n\n") {
                    first_event = Some(Instant::now());
                }
            }
        }
        Ok::<_, String>((status, buf.freeze(), first_event))
    };
    match tokio::time::timeout(Duration::from_secs(10), sent).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => {
            *conn = None;
            Err(e)
        }
        Err(_) => {
            *conn = None;
            Err("no answer within 10 s".into())
        }
    }
}

/// A closed-loop run: `conns` connections, each sending back to back.
pub(crate) async fn closed(target: &Arc<Target>, conns: usize, length: Duration) -> (Tally, f64) {
    let start = Instant::now();
    let deadline = start + length;
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let target = Arc::clone(target);
            tokio::spawn(async move {
                let mut tally = Tally::default();
                let mut conn = None;
                while Instant::now() < deadline {
                    let outcome = exchange(&mut conn, &target)
                        .await
                        .and_then(|(status, body, _)| target.check(status, &body));
                    tally.add(outcome);
                }
                tally
            })
        })
        .collect();
    let mut tally = Tally::default();
    for w in workers {
        if let Ok(t) = w.await {
            tally.merge(t);
        }
    }
    let rps = (tally.ok + tally.bad) as f64 / start.elapsed().as_secs_f64();
    (tally, rps)
}

/// What an open-loop run measured.
#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies {
    pub(crate) tally: Tally,
    /// µs from each request's intended send time to its answer (or its
    /// first SSE event), answered requests only.
    pub(crate) us: Vec<u32>,
}

/// An open-loop run at `rate` requests/s for `length`; latency to the whole
/// answer, or with `first_event` to the first SSE event.
pub(crate) async fn open(
    target: &Arc<Target>,
    rate: u32,
    length: Duration,
    conns: usize,
    first_event: bool,
) -> Latencies {
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let total = (f64::from(rate) * length.as_secs_f64()) as u64;
    let period = Duration::from_secs_f64(1.0 / f64::from(rate));
    // The schedule runs on its own thread: a tokio timer has 1 ms grain.
    let start = Instant::now() + Duration::from_millis(20);
    let scheduler = std::thread::spawn(move || {
        for i in 0..total {
            let due = start + period.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if tx.send(due).is_err() {
                break;
            }
        }
    });
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let (target, rx) = (Arc::clone(target), Arc::clone(&rx));
            tokio::spawn(async move {
                let mut out = Latencies::default();
                let mut conn = None;
                loop {
                    let Some(due) = rx.lock().await.recv().await else {
                        break;
                    };
                    let outcome =
                        exchange(&mut conn, &target)
                            .await
                            .and_then(|(status, body, first)| {
                                target.check(status, &body)?;
                                let at = if first_event {
                                    first.ok_or("no SSE event in the answer")?
                                } else {
                                    Instant::now()
                                };
                                Ok(at.saturating_duration_since(due))
                            });
                    match outcome {
                        Ok(latency) => {
                            out.us
                                .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                            out.tally.add(Ok(()));
                        }
                        Err(e) => out.tally.add(Err(e)),
                    }
                }
                out
            })
        })
        .collect();
    let _ = tokio::task::spawn_blocking(move || scheduler.join()).await;
    let mut all = Latencies::default();
    for w in workers {
        if let Ok(part) = w.await {
            all.tally.merge(part.tally);
            all.us.extend(part.us);
        }
    }
    all
}

/// The `q` quantile (0..=1) of sorted µs values.
pub(crate) fn quantile(sorted: &[u32], q: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// One `wrk` run: requests, requests/s, and the answers that were not 2xx
/// or failed at the socket.
#[derive(Debug, Default, Clone)]
pub(crate) struct WrkRun {
    pub(crate) requests: u64,
    pub(crate) rps: f64,
    pub(crate) errors: u64,
}

/// Saturates `target` with `wrk` (`conns` connections, one thread) pinned to `cpu`.
pub(crate) fn wrk(
    target: &Target,
    conns: usize,
    length: Duration,
    cpu: Option<usize>,
    raw: &Path,
) -> WrkRun {
    let lua = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut script = String::from("wrk.method = \"POST\"\n");
    script.push_str(&format!(
        "wrk.body = \"{}\"\n",
        lua(&String::from_utf8_lossy(&target.body))
    ));
    for (k, v) in &target.headers {
        script.push_str(&format!("wrk.headers[\"{}\"] = \"{}\"\n", lua(k), lua(v)));
    }
    let script_path = raw.with_extension("lua");
    std::fs::write(&script_path, script).expect("wrk script");
    let mut cmd = super::procs::command(Path::new("wrk"), cpu);
    cmd.args(["-t1", &format!("-c{conns}")])
        .arg(format!("-d{}s", length.as_secs().max(1)))
        .arg("-s")
        .arg(&script_path)
        .arg(format!("http://127.0.0.1:{}{}", target.port, target.path));
    let out = run_captured(cmd, raw);
    parse_wrk(&out)
}

fn run_captured(mut cmd: Command, raw: &Path) -> String {
    let out = cmd.output().expect("wrk runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(raw, &text).expect("raw output");
    text
}

fn parse_wrk(text: &str) -> WrkRun {
    let mut run = WrkRun::default();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += v.trim().parse::<u64>().unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            run.errors += v
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            run.requests = n.trim().parse().unwrap_or(0);
        }
    }
    run
}
