//! Fuzzing entry points — not part of toolgate's API. Each one feeds
//! arbitrary bytes to a parser the gateway runs on input it does not
//! control (an agent's request, an upstream's stream, a token, a config, a
//! policy module's answer, an operator's API body) and asserts what must
//! hold whatever the bytes: no panic, plus cheap invariants (a parsed
//! envelope re-parses to itself, an unsigned token never verifies, host and
//! SDK agree on a grant's constraints).
//!
//! The cargo-fuzz targets in `fuzz/` (nightly) and the stable replay in
//! `tests/integration/fuzz_smoke.rs` (CI) call these same functions, by
//! name through [`run`].

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod identity;
mod rules;
mod wire;

pub use crate::admin::fuzz::admin_body;
pub use identity::{jwks, jwt};
pub use rules::{Sdk, config, constraint, policy_answer};
pub use wire::{jsonrpc, sse, understand};

/// Every target, by the name its seeds and its cargo-fuzz binary use.
pub const TARGETS: [&str; 9] = [
    "jsonrpc",
    "understand",
    "sse",
    "jwt",
    "jwks",
    "config",
    "policy_answer",
    "constraint",
    "admin_body",
];

/// Runs the target `name` on `data`; `false` if there is no such target.
/// `sdk` is the policy SDK's side of the agreement checks (the SDK is its
/// own workspace, built for WASM; the callers link it natively).
pub fn run(name: &str, data: &[u8], sdk: &dyn Sdk) -> bool {
    match name {
        "jsonrpc" => jsonrpc(data),
        "understand" => understand(data),
        "sse" => sse(data),
        "jwt" => jwt(data),
        "jwks" => jwks(data),
        "config" => config(data),
        "policy_answer" => policy_answer(data),
        "constraint" => constraint(data, sdk),
        "admin_body" => admin_body(data),
        _ => return false,
    }
    true
}
