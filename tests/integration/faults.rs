//! Faults from outside the gateway, made real: an upstream killed (SIGKILL)
//! or frozen (SIGSTOP) in the middle of a call, a JWKS endpoint that goes
//! down, comes back and serves garbage, a task store the process cannot
//! write (a file-size limit the kernel enforces), SIGKILL during a burst of
//! grant writes and uses, and SIGTERM while a stream is open. Each test
//! bounds how long the caller may wait: a hang is a failure.

mod crash;
mod drain;
mod jwks;
mod store;
mod upstream;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};

/// The headers of a 2026-07-28 `tools/call` of `countdown` (stateless: no
/// handshake needed with the real Python SDK server).
pub(crate) const COUNTDOWN_HEADERS: [(&str, &str); 5] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/call"),
    ("mcp-name", "countdown"),
];

/// A `tools/call` of the Python server's `countdown` tool: `n` progress
/// events `delay_ms` apart, then the result "liftoff".
pub(crate) fn countdown(id: u64, n: u32, delay_ms: u32) -> Vec<u8> {
    let call = json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {
            "name": "countdown",
            "arguments": {"n": n, "delay_ms": delay_ms},
            "_meta": {
                "progressToken": id,
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    });
    serde_json::to_vec(&call).expect("json")
}

/// How a streamed answer ended.
#[derive(Debug)]
pub(crate) enum End {
    /// The body ended as HTTP says a complete one does.
    Complete,
    /// The body was cut (reset, closed mid-chunk): the caller can tell.
    Cut,
}

/// Reads `body` into `buf` until it ends; panics if it neither ends nor
/// fails within `within` (a hang).
pub(crate) async fn read_to_end(body: &mut Incoming, buf: &mut Vec<u8>, within: Duration) -> End {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, body.frame())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the stream neither ended nor failed within {within:?}; got {:?}",
                    String::from_utf8_lossy(buf)
                )
            });
        match frame {
            None => return End::Complete,
            Some(Err(_)) => return End::Cut,
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Reads `body` into `buf` until it holds `want`; panics if the stream
/// ends first or `within` passes.
pub(crate) async fn read_until(
    body: &mut Incoming,
    buf: &mut Vec<u8>,
    want: &str,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    while !String::from_utf8_lossy(buf).contains(want) {
        let left = deadline.saturating_duration_since(Instant::now());
        let frame = tokio::time::timeout(left, body.frame()).await;
        match frame {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
            other => panic!(
                "no {want:?} before {other:?}; got {:?}",
                String::from_utf8_lossy(buf)
            ),
        }
    }
}

/// The JSON-RPC messages in the `data:` lines of SSE text.
pub(crate) fn sse_messages(text: &str) -> Vec<Value> {
    text.replace("\r\n", "\n")
        .split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data.join("\n")))
        })
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("an event's data is not JSON ({e}): {text}"))
}

/// An empty body, for requests without one.
pub(crate) fn empty() -> Bytes {
    Bytes::new()
}

/// The agent of the task-store tests.
pub(crate) const AGENT: &str = "spiffe://toolgate.dev/agent/faults";
/// The audience the `jit` route requires.
const AUDIENCE: &str = "http://gateway.test/jit";

/// Config tables (for [`ServeDir::with`](crate::common::process::ServeDir))
/// adding the dev issuer and a route `/jit` in front of `upstream`, allowed
/// only by the real `jit-grants` module (deny without a grant); the task is
/// named by the `x-toolgate-task` header. The policy deadline is generous
/// (1 s): a busy CI machine must not turn a slow decision into a refusal.
pub(crate) fn jit_route(upstream: &str) -> String {
    let wasm = crate::common::modules::build(&["jit-grants"]);
    let jwks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev/jwks.json");
    format!(
        "[policy_limits]\ndeadline = \"1s\"\nrequest_budget = \"5s\"\n\n\
         [[issuers]]\nname = \"dev\"\nissuer = \"{issuer}\"\nmode = \"spiffe\"\n\
         trust_domains = [\"toolgate.dev\"]\njwks_file = {jwks}\n\n\
         [[routes]]\nname = \"jit\"\npath = \"/jit\"\nupstream = \"{upstream}\"\n\
         [routes.auth]\nissuers = [\"dev\"]\naudience = \"{AUDIENCE}\"\ntask_header = \"x-toolgate-task\"\n\n\
         [[policies]]\nname = \"jit\"\nmodule = {wasm}\nvectors = {vectors}\nroutes = [\"jit\"]\n\
         [policies.config]\nmissing = \"deny\"\n",
        issuer = toolgate::identify::mint::DEV_ISSUER,
        jwks = toml::Value::String(jwks.display().to_string()),
        wasm = toml::Value::String(wasm[0].display().to_string()),
        vectors = toml::Value::String(
            crate::common::modules::vectors("jit-grants")
                .display()
                .to_string()
        ),
    )
}

/// A dev JWT-SVID for [`AGENT`] on the `jit` route.
pub(crate) fn agent_token() -> String {
    toolgate::identify::mint::Mint::dev(AGENT, AUDIENCE, Duration::from_secs(3600))
        .sign(toolgate::identify::mint::DEV_KEY_PEM.as_bytes())
        .expect("dev token")
}

/// An upstream that answers every `tools/call` with a result naming the tool.
pub(crate) async fn tool_upstream() -> crate::common::upstream::FakeUpstream {
    crate::common::upstream::FakeUpstream::start(|seen| async move {
        let call: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        crate::common::upstream::json(
            200,
            &json!({"jsonrpc": "2.0", "id": call["id"], "result": {
                "content": [{"type": "text", "text": format!("ran {}", call["params"]["name"])}],
            }}),
        )
    })
    .await
}

/// How a tool call through the gateway came out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The upstream ran it.
    Ran,
    /// The gateway refused it; its message.
    Refused(String),
    /// No answer (the gateway died under it), or not one of the above.
    Unknown(String),
}

/// A 2026-07-28 `tools/call` of `tool` in `task` on `/jit` at `addr`;
/// never panics on a failed request (the gateway may be killed under it).
pub(crate) async fn call_tool(
    addr: std::net::SocketAddr,
    token: &str,
    task: &str,
    tool: &str,
) -> Outcome {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": tool, "arguments": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}});
    let auth = format!("Bearer {token}");
    let req = http::Request::post(format!("http://{addr}/jit"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", auth)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .header("x-toolgate-task", task)
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let exchange = async {
        let resp = crate::common::client()
            .request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, bytes))
    };
    let (status, bytes) = match tokio::time::timeout(Duration::from_secs(20), exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Outcome::Unknown(e),
        Err(_) => panic!("a tool call hung for 20 s"),
    };
    let v: Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let text = v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match (status.as_u16(), v["result"]["isError"] == true) {
        (200, false) if text == format!("ran \"{tool}\"") => Outcome::Ran,
        (200, true) => Outcome::Refused(text),
        _ => Outcome::Unknown(format!("{status} {}", String::from_utf8_lossy(&bytes))),
    }
}
