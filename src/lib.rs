//! toolgate — an authorization gateway for AI agents' tool calls.
//!
//! Agents point at toolgate instead of their tools (MCP servers or plain
//! HTTP APIs). Every request walks the same stages, each in its own module:
//!
//! ```text
//!  agent ──TCP/TLS──▶ listener      accept: socket, TLS, HTTP/1.1 + h2, drain on shutdown
//!                        │
//!                        ▼
//!                     accept        pick the route by path prefix, read the body (≤ limit)
//!                        │
//!                        ▼
//!                     identify      who is calling: a verified JWT-SVID or OAuth token
//!                        │
//!                        ▼
//!                     understand    MCP: JSON-RPC messages, era checks, tools/call name+args
//!                        │          HTTP: one tool call named after method and path
//!                        ▼
//!                     context       which task; its grants, counters, recent calls
//!                        │          (store: tasks, grants, approvals; journaled)
//!                        ▼
//!                     decide        one Decision per tool call from the policy set
//!                        │          (allow · deny with a reason · needs approval)
//!                        ▼
//!                     settle        count the grant used; park for approval (or hold
//!                        │          until an operator answers); count the call
//!              ┌─────────┴──────────┐
//!           refused               allowed
//!              │                    ▼
//!              │                 forward     strip the caller's credentials, attach the
//!              │                    │        route's own, stream both ways; filter
//!              │                    │        tools/list results event by event
//!              ▼                    ▼
//!           answer ◀──────────── record      decision log line + Prometheus metrics
//!  (isError result, 4xx/5xx JSON)
//! ```
//!
//! Hot-reloadable state (routes, keys, policy modules, task and approval
//! settings) lives in one immutable [`snapshot::Snapshot`] behind one
//! `ArcSwap`; a request loads it once. Tasks, grants and approvals are not
//! configuration: they live in the [`store`] behind [`tasks::Tasks`], changed
//! by the admin API ([`admin`]) and by agents' own grant requests.

pub mod accept;
pub mod admin;
pub mod answer;
pub mod audit;
pub mod cli;
pub mod config;
pub mod console;
pub mod context;
pub mod decide;
pub mod demo;
pub mod forward;
#[doc(hidden)]
pub mod fuzz;
pub mod gateway;
pub mod identify;
pub mod listener;
pub mod mcp;
pub mod random;
pub mod record;
pub mod server;
pub mod snapshot;
pub mod store;
pub mod tasks;
pub mod understand;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;

/// Boxed error type carried by response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway produces.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Installs the process-wide rustls crypto provider (aws-lc-rs). Idempotent.
pub fn install_crypto_provider() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
