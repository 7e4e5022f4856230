//! The pattern dialects of toolgate, in one crate that both sides build:
//! the gateway (host) links it natively, every policy module links it for
//! `wasm32-unknown-unknown` through the SDK. What the host accepts when a
//! grant is created is therefore exactly what a module can evaluate.
//!
//! - [`glob`]: `*` and `?` over tool names, subjects and grant tools.
//! - [`regex`]: grant constraint regexes, `regex-lite` syntax, matched
//!   against the whole value.

pub mod glob;
pub mod regex;
