//! The one trait a module implements.

use serde::de::DeserializeOwned;

use crate::{Decision, Field, Input};

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

    /// The input fields this module reads, as JSON pointers
    /// (`"/tool/name"`, `"/identity/spiffe/trust_domain"`); `None` (the
    /// default) reads the whole document. The host then sends `version` and
    /// at least these fields, so a module reading little decodes little
    /// (ABI.md "Declared input fields"). A field left out reads as absent:
    /// the vectors run on the trimmed input, so they catch one forgotten.
    const INPUT_FIELDS: Option<&'static [&'static str]> = None;

    /// Set to `true` to be sent [`INPUT_FIELDS`] as values — each field's
    /// value, in declaration order, nothing to scan — rather than a trimmed
    /// document (ABI.md "Values form"), and decide in [`decide_values`].
    /// For modules whose decision is cheap next to reading a document.
    ///
    /// [`INPUT_FIELDS`]: Policy::INPUT_FIELDS
    /// [`decide_values`]: Policy::decide_values
    const INPUT_VALUES: bool = false;

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

    /// The fast path of a module that asked for [`INPUT_VALUES`]: one
    /// [`Field`] per declared field, in declaration order. `None` falls back
    /// to [`decide`] on the same values as a document; both must agree.
    ///
    /// [`INPUT_VALUES`]: Policy::INPUT_VALUES
    /// [`decide`]: Policy::decide
    fn decide_values(&self, _values: &[Field<'_>]) -> Option<Decision> {
        None
    }
}
