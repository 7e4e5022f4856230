//! The one trait a module implements.

use serde::de::DeserializeOwned;

use crate::{Decision, Input};

/// A policy module: configured once per instance, then asked per call.
///
/// Instances are reused between calls and discarded after any failure, so
/// `decide` takes `&self`: a module keeps no state between calls (the ABI
/// promises neither that state survives nor that it does not).
pub trait Policy {
    /// The module's `config` from `toolgate.toml` (or a `vectors.json`).
    /// `Default` is used when the host never calls `toolgate_configure`, or
    /// passes `null`. Prefer `#[serde(deny_unknown_fields)]`, so a typo in
    /// the config fails loudly instead of weakening the policy.
    type Config: DeserializeOwned + Default;

    /// Set to `true` to get the whole input document in [`Input::raw`]
    /// (Rego and Cedar modules evaluate it). It costs a second parse of the
    /// input, so typed modules leave it `false` and `raw` stays `Null`.
    const RAW_INPUT: bool = false;

    /// Checks the config and builds the policy. The error is returned to the
    /// host as `{"error": …}`; say everything that is wrong at once.
    fn configure(config: Self::Config) -> Result<Self, String>
    where
        Self: Sized;

    /// Decides one call (or one `tools/list` entry). Must not panic: a panic
    /// traps the instance and the host denies with `policy_error`.
    fn decide(&self, input: &Input) -> Decision;

    /// Optional fast path: decide straight from the input JSON, reading only
    /// the few fields the module needs (decoding the whole typed [`Input`]
    /// dominates a small module's cost). `None` falls back to [`decide`];
    /// both must agree — the vectors run through this path when it answers.
    ///
    /// [`decide`]: Policy::decide
    fn decide_fast(&self, _input: &[u8]) -> Option<Decision> {
        None
    }
}
