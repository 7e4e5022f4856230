//! The plain part of the mix, over keep-alive connections at a fixed pace:
//! of every ten operations four are allowed `echo` calls, two are denied
//! `forbidden` calls, two are `tools/list` (filtered by policy) and two are
//! SSE `stream` calls. Each answer is checked; anything else is counted as
//! unexpected with its first examples kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::json;
use tokio::task::JoinHandle;

use super::Plan;
use super::client::{Answer, Conn};
use super::gateway::{Gateway, mcp_headers};

/// Answers of one kind of operation.
#[derive(Debug, Default, Clone)]
pub(crate) struct Count {
    pub(crate) ok: u64,
    pub(crate) unexpected: u64,
    pub(crate) examples: Vec<String>,
}

/// Every operation's outcome, by kind.
#[derive(Debug, Default)]
pub(crate) struct Tally(Mutex<BTreeMap<&'static str, Count>>);

impl Tally {
    pub(crate) fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub(crate) fn add(&self, kind: &'static str, outcome: Result<(), String>) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(kind).or_default();
        match outcome {
            Ok(()) => count.ok += 1,
            Err(why) => {
                count.unexpected += 1;
                if count.examples.len() < 3 {
                    count.examples.push(why);
                }
            }
        }
    }

    pub(crate) fn snapshot(&self) -> BTreeMap<&'static str, Count> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The kinds of plain operation, in the order one connection cycles through.
const CYCLE: [Kind; 10] = [
    Kind::Allowed,
    Kind::Denied,
    Kind::List,
    Kind::Allowed,
    Kind::Sse,
    Kind::Allowed,
    Kind::Denied,
    Kind::List,
    Kind::Allowed,
    Kind::Sse,
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Allowed,
    Denied,
    List,
    Sse,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Allowed => "allowed call",
            Self::Denied => "denied call",
            Self::List => "tools/list",
            Self::Sse => "SSE call",
        }
    }
}

/// One operation of `kind` (number `n` of connection `w`) and its check.
async fn operate(
    gw: &Gateway,
    conn: &mut Conn,
    kind: Kind,
    w: usize,
    n: u64,
) -> Result<(), String> {
    let text = format!("soak-{w}-{n}");
    let call = |tool: &str| {
        json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
               "params": {"name": tool, "arguments": {"text": text}}})
    };
    let body = match kind {
        Kind::Allowed => call("echo"),
        Kind::Denied => call("forbidden"),
        Kind::List => json!({"jsonrpc": "2.0", "id": n, "method": "tools/list", "params": {}}),
        Kind::Sse => call("stream"),
    };
    let answer = conn
        .send(
            Method::POST,
            "/mcp",
            &mcp_headers(&gw.token),
            Bytes::from(body.to_string()),
        )
        .await?;
    let echoed = format!(r#""text":"{text}""#);
    match kind {
        Kind::Allowed => expect(&answer, &[&echoed], &[r#""isError":true"#]),
        Kind::Denied => expect(&answer, &[r#""isError":true"#, "policy_deny"], &[]),
        Kind::List => expect(
            &answer,
            &[r#""name":"echo""#, r#""name":"tool_011""#],
            &[r#""name":"forbidden""#, r#""name":"tool_002""#],
        ),
        Kind::Sse => {
            let streamed = answer
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if !streamed {
                return Err(format!("not an event stream: {}", answer.brief()));
            }
            expect(
                &answer,
                &["event: message", r#""text":"done""#],
                &[r#""isError":true"#],
            )
        }
    }
}

/// HTTP 200 whose body holds every one of `has` and none of `lacks`.
pub(crate) fn expect(answer: &Answer, has: &[&str], lacks: &[&str]) -> Result<(), String> {
    let text = answer.text();
    let missing: Vec<&&str> = has.iter().filter(|h| !text.contains(**h)).collect();
    let present: Vec<&&str> = lacks.iter().filter(|l| text.contains(**l)).collect();
    if answer.status == 200 && missing.is_empty() && present.is_empty() {
        return Ok(());
    }
    // The part of the body that says why: the refusal's text, if any.
    let at = text.find(r#""text":"toolgate"#).unwrap_or(0);
    Err(format!(
        "HTTP {}, missing {missing:?}, unwanted {present:?}: {}",
        answer.status,
        text[at..].chars().take(300).collect::<String>()
    ))
}

/// `plan.conns` connections sharing `rate` operations a second until `until`.
pub(crate) fn spawn(
    gw: &Arc<Gateway>,
    plan: &Plan,
    rate: u32,
    until: Instant,
    tally: &Arc<Tally>,
) -> Vec<JoinHandle<()>> {
    let conns = plan.conns;
    let period = Duration::from_secs_f64(conns as f64 / f64::from(rate.max(1)));
    (0..conns)
        .map(|w| {
            let (gw, tally) = (Arc::clone(gw), Arc::clone(tally));
            tokio::spawn(async move {
                let mut conn = Conn::new(gw.port);
                // Spread the connections' ticks over one period.
                tokio::time::sleep(period.mul_f64(w as f64 / conns as f64)).await;
                let mut ticks = tokio::time::interval(period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u64;
                while Instant::now() < until {
                    ticks.tick().await;
                    let kind = CYCLE[(n as usize + w) % CYCLE.len()];
                    let outcome = operate(&gw, &mut conn, kind, w, n).await;
                    tally.add(kind.name(), outcome);
                    n += 1;
                }
            })
        })
        .collect()
}

/// The mix's capacity: `conns` connections sending back to back for
/// `length`; the answered-as-expected operations a second.
pub(crate) async fn capacity(gw: &Arc<Gateway>, conns: usize, length: Duration) -> f64 {
    let until = Instant::now() + length;
    let started = Instant::now();
    let jobs: Vec<JoinHandle<(u64, Option<String>)>> = (0..conns)
        .map(|w| {
            let gw = Arc::clone(gw);
            tokio::spawn(async move {
                let mut conn = Conn::new(gw.port);
                let (mut ok, mut bad) = (0u64, None);
                let mut n = 0u64;
                while Instant::now() < until {
                    let kind = CYCLE[(n as usize + w) % CYCLE.len()];
                    match operate(&gw, &mut conn, kind, w, n).await {
                        Ok(()) => ok += 1,
                        Err(e) => {
                            bad.get_or_insert(e);
                        }
                    }
                    n += 1;
                }
                (ok, bad)
            })
        })
        .collect();
    let mut total = 0u64;
    for job in jobs {
        let (ok, bad) = job.await.expect("a capacity job");
        if let Some(bad) = bad {
            panic!("unexpected answer while measuring capacity: {bad}");
        }
        total += ok;
    }
    total as f64 / started.elapsed().as_secs_f64()
}
