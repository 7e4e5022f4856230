//! toolgate's integration tests: one binary, real sockets on loopback, real
//! MCP peers (Python `mcp` SDK and TypeScript SDK, installed at pinned
//! versions by `tests/peers/setup.sh`), in-process upstreams for the edge
//! cases no real server produces on demand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod admin;
mod audit;
mod config_files;
mod console;
mod dashboards;
mod demo_peers;
mod edge;
mod faults;
mod fuzz_smoke;
mod identity;
mod modern;
mod modules;
mod opa;
mod ops;
mod peers;
mod pipeline;
mod policy;
mod security;
mod tasks;
mod tls;
