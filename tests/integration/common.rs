//! Shared helpers: a gateway on port 0, an HTTP client, fake upstreams and
//! the real MCP peers. Everything started here stops when dropped.

#![allow(dead_code, unreachable_pub)]

pub mod admin;
pub mod demo;
pub mod modules;
pub mod peers;
pub mod process;
pub mod tokens;
pub mod upstream;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use toolgate::server::{self, Running};

/// A gateway serving a test config on loopback ports chosen by the OS.
pub struct TestGateway {
    running: Option<Running>,
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
}

impl TestGateway {
    /// `routes` is TOML with `[[routes]]` tables (and optionally `[limits]`);
    /// listeners are added on port 0 unless it has its own `[server]`.
    pub async fn start(routes: &str) -> Self {
        Self::try_start(routes).await.expect("gateway starts")
    }

    /// [`TestGateway::start`], with a gateway that cannot start (such as
    /// one whose port is taken) an error instead of a panic.
    pub async fn try_start(routes: &str) -> Result<Self, server::Error> {
        let mut text = String::new();
        if !routes.contains("[server]") {
            text.push_str("[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\n");
        }
        if !routes.contains("[admin]") {
            text.push_str("[admin]\nbind = \"127.0.0.1:0\"\n");
            // The admin API refuses everyone without credentials.
            text.push_str(&admin::default_tokens());
        }
        text.push_str(routes);
        let config = toolgate::config::load_str(&text, "test.toml", std::path::Path::new("."))
            .unwrap_or_else(|d| panic!("test config is invalid:\n{d}\n---\n{text}"));
        let running = server::start(&config).await?;
        Ok(Self {
            addr: running.addr,
            admin: running.admin_addr,
            running: Some(running),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin.expect("admin listener on"))
    }

    /// Shuts down and waits for the drain to finish.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
            r.wait().await;
        }
    }

    pub fn shutdown(&self) {
        if let Some(r) = &self.running {
            r.shutdown();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(r) = &self.running {
            r.shutdown();
        }
    }
}

/// A whole HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request and returns the response head with a streaming body.
pub async fn open(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> http::Response<Incoming> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).expect("valid request");
    tokio::time::timeout(Duration::from_secs(30), client().request(req))
        .await
        .expect("response within 30s")
        .expect("request succeeds")
}

pub async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let resp = open(method, url, headers, body).await;
    let (parts, body) = resp.into_parts();
    let body = tokio::time::timeout(Duration::from_secs(30), body.collect())
        .await
        .expect("body within 30s")
        .expect("body reads")
        .to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

pub const MCP_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

/// POSTs a JSON-RPC body to an MCP route with the usual headers plus `extra`.
pub async fn post_mcp(url: &str, extra: &[(&str, &str)], body: &Value) -> Reply {
    let mut headers = MCP_HEADERS.to_vec();
    headers.extend_from_slice(extra);
    send(
        Method::POST,
        url,
        &headers,
        serde_json::to_vec(body).expect("json"),
    )
    .await
}

/// Reads a metric's value from the admin listener's /metrics.
pub async fn metric(gw: &TestGateway, name_and_labels: &str) -> f64 {
    let text = send(Method::GET, &gw.admin_url("/metrics"), &[], Bytes::new())
        .await
        .text();
    metric_in(&text, name_and_labels)
}

/// Polls a metric (10 s at most) until it reaches `at_least`, for what the
/// gateway counts after answering; returns its last value either way.
pub async fn metric_reaching(gw: &TestGateway, name_and_labels: &str, at_least: f64) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let value = metric(gw, name_and_labels).await;
        if value >= at_least || std::time::Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The sum of the samples in `text` named as `name_and_labels` whose labels
/// include every label it gives (`name{a="x"}` also counts `name{a="x",b="y"}`),
/// so a label added to a metric later does not break a query.
pub fn metric_in(text: &str, name_and_labels: &str) -> f64 {
    fn split(sample: &str) -> (&str, Vec<&str>) {
        match sample.split_once('{') {
            Some((name, rest)) => {
                let labels = rest.trim_end_matches('}');
                let pairs = labels
                    .split("\",")
                    .map(|p| p.trim_end_matches('"'))
                    .filter(|p| !p.is_empty())
                    .collect();
                (name, pairs)
            }
            None => (sample, Vec::new()),
        }
    }
    let (name, wanted) = split(name_and_labels);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(sample, _)| {
            let (n, labels) = split(sample);
            n == name && wanted.iter().all(|w| labels.contains(w))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}
