//! Operator listener: liveness, readiness and Prometheus metrics (open to
//! anyone who can reach it), and the authenticated admin API for tasks,
//! grants, approvals, policies and reloads — on its own (loopback by
//! default) address, so agents never see it.
//!
//! ```text
//!  request ─▶ public?  GET /healthz, /readyz, /metrics ─▶ answered
//!     │
//!     ▼
//!   auth      bearer token (SHA-256, constant time) or client certificate SAN
//!     │       → caller {actor, role}; else 401
//!     ▼
//!   routes    path → endpoint (404/405) → role check (403) → handler;
//!             every change: an audit line + toolgate_admin_actions_total
//! ```

mod approvals;
pub mod auth;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
mod grants;
mod input;
mod policies;
mod reports;
mod routes;
mod tasks;

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use prometheus::{Encoder, TextEncoder};
use serde_json::json;

use crate::Body;
use crate::answer::{full, json_response};
use crate::gateway::Gateway;
use crate::listener::{ClientCert, ConnInfo};

pub use auth::{Caller, Credentials};
pub use error::Error;

/// What the admin listener serves from: the gateway, who may call, and
/// the operator console's sessions.
#[derive(Debug)]
pub struct Admin {
    gateway: Arc<Gateway>,
    credentials: Credentials,
    console: Arc<crate::console::Console>,
}

impl Admin {
    pub fn new(gateway: Arc<Gateway>, config: &crate::config::Admin) -> Arc<Self> {
        let credentials = Credentials::new(config);
        if credentials.is_empty() {
            tracing::warn!(
                "the admin API has no credentials (admin.tokens, admin.clients): only /healthz, /readyz and /metrics answer"
            );
        }
        if config.tls.is_none() && !config.bind.ip().is_loopback() {
            tracing::warn!(bind = %config.bind, "the admin listener is off loopback without TLS: admin tokens cross the network in clear");
        }
        Arc::new(Self {
            gateway,
            credentials,
            console: crate::console::Console::new(),
        })
    }
}

/// Answers one admin-listener request. Never fails: every problem is an answer.
pub async fn handle(admin: Arc<Admin>, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
    if req.method() == Method::GET {
        match req.uri().path() {
            "/healthz" => return text(StatusCode::OK, "ok\n"),
            "/readyz" => {
                let routes = admin.gateway.snapshot().routes().len();
                return json_response(StatusCode::OK, &json!({"ready": true, "routes": routes}));
            }
            "/metrics" => return metrics(&admin.gateway),
            _ => {}
        }
    }
    if crate::console::serves(req.uri().path()) {
        let console = Arc::clone(&admin.console);
        return crate::console::handle(console, admin, req, conn).await;
    }
    match api(&admin, req, conn).await {
        Ok(reply) => reply.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn api(
    admin: &Admin,
    req: Request<Incoming>,
    conn: ConnInfo,
) -> Result<routes::Reply, Error> {
    let client = req.extensions().get::<ClientCert>();
    let caller = admin
        .credentials
        .authenticate(req.headers(), client)
        .inspect_err(|e| {
            tracing::info!(
                target: "toolgate::audit",
                remote = %conn.remote,
                method = %req.method(),
                path = req.uri().path(),
                outcome = e.code(),
                "admin request refused"
            );
        })?;
    let endpoint = routes::route(req.method(), req.uri().path())?;
    routes::serve(&admin.gateway, &caller, &endpoint, req).await
}

// === impl console::Api for Admin ===

/// The operator console makes its calls through here: the API's own
/// credentials, path table, role check, handlers and audit record.
impl crate::console::Api for Admin {
    fn authenticate(
        &self,
        token: Option<&str>,
        client: Option<&ClientCert>,
    ) -> Result<crate::console::Operator, crate::console::Answer> {
        let mut headers = http::HeaderMap::new();
        if let Some(token) = token {
            let value =
                header::HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                    console_answer(&Error::InvalidToken("the token matches no admin token"))
                })?;
            headers.insert(header::AUTHORIZATION, value);
        }
        self.credentials
            .authenticate(&headers, client)
            .map(|c| crate::console::Operator {
                actor: c.actor,
                role: c.role,
            })
            .map_err(|e| console_answer(&e))
    }

    fn allows(&self, operator: &crate::console::Operator, method: &Method, path: &str) -> bool {
        routes::route(method, path).is_ok_and(|e| operator.role >= e.role())
    }

    fn call<'a>(
        &'a self,
        operator: &'a crate::console::Operator,
        method: Method,
        path_and_query: &'a str,
        body: bytes::Bytes,
    ) -> crate::console::api::Pending<'a> {
        Box::pin(async move {
            let caller = Caller {
                actor: operator.actor.clone(),
                role: operator.role,
            };
            match routes::dispatch(&self.gateway, &caller, &method, path_and_query, &body).await {
                Ok(reply) => crate::console::Answer {
                    status: reply.status,
                    body: reply.body,
                },
                Err(e) => console_answer(&e),
            }
        })
    }

    fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }
}

fn console_answer(e: &Error) -> crate::console::Answer {
    crate::console::Answer {
        status: e.status(),
        body: json!({"error": {"code": e.code(), "message": e.to_string()}}),
    }
}

fn metrics(gateway: &Gateway) -> Response<Body> {
    let mut buf = Vec::new();
    let families = gateway.recorder().registry().gather();
    match TextEncoder::new().encode(&families, &mut buf) {
        Ok(()) => {
            let mut resp = Response::new(full(buf));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            resp
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e}\n")),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Body> {
    let mut resp = Response::new(full(body.to_owned()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
