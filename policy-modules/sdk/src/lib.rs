//! Guest SDK for toolgate policy modules: the decide stage's view of a tool
//! call, from inside the WASM sandbox.
//!
//! A module is a type implementing [`Policy`] plus one line,
//! `toolgate_policy!(MyPolicy);`, which generates every export of the ABI
//! (`policy-modules/ABI.md`). The module author writes no `unsafe` and never
//! sees a pointer:
//!
//! ```text
//!  host (toolgate)                       module (this SDK + your Policy)
//!  ───────────────                       ───────────────────────────────
//!  toolgate_input_fields()         ────▶ P::INPUT_FIELDS, P::INPUT_VALUES
//!  toolgate_configure(config JSON) ────▶ P::Config from JSON ─▶ P::configure
//!  toolgate_decide(input JSON)     ────▶ P::decide_fast(bytes), else
//!                                        Input from JSON (raw kept)
//!                                        P::decide(&input) ─▶ Decision
//!  toolgate_decide(input values)   ────▶ P::decide_values(&[Field]), else
//!                                        Input from the values ─▶ P::decide
//!  {"decision": …} or {"error": …} ◀──── Decision as JSON
//! ```
//!
//! Module helpers: [`glob::matches`], [`pointer()`], [`Constraint`] (the
//! argument constraints of a grant), [`Field`] (a declared field's value in
//! the values form) and, for native tests of a module's `vectors.json`,
//! [`testing::run_vectors`].

mod constraint;
mod decision;
mod export;
mod fields;
mod input;
mod policy;
#[doc(hidden)]
pub mod runtime;
pub mod testing;
mod values;

pub use constraint::{Constraint, ConstraintOp, Violation};
pub use decision::{Decision, Verdict};
pub use input::{
    Counters, Delegation, Grant, Identity, Input, Phase, RecentCall, Request, Route, RouteKind,
    Spiffe, Task, Time, Tool, Workload,
};
pub use policy::Policy;
/// Glob matching (`*`, `?`), the same function the host uses.
pub use toolgate_pattern::glob;
pub use values::{Field, MAX_FIELDS};

/// The ABI version this SDK implements (`toolgate_abi_version`).
pub const ABI_VERSION: i32 = 1;

/// The value at a JSON pointer (RFC 6901, e.g. `/a/b/0`, `~1` for `/`,
/// `~0` for `~`); `""` is the whole document. `None` when nothing is there.
pub fn pointer<'a>(value: &'a serde_json::Value, pointer: &str) -> Option<&'a serde_json::Value> {
    value.pointer(pointer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn pointer_walks_objects_and_arrays() {
        let doc = json!({"a": {"b": [1, {"c/d": "x", "e~f": "y"}]}});
        assert_eq!(super::pointer(&doc, "/a/b/0"), Some(&json!(1)));
        assert_eq!(super::pointer(&doc, "/a/b/1/c~1d"), Some(&json!("x")));
        assert_eq!(super::pointer(&doc, "/a/b/1/e~0f"), Some(&json!("y")));
        assert_eq!(super::pointer(&doc, ""), Some(&doc));
        assert_eq!(super::pointer(&doc, "/a/missing"), None);
        assert_eq!(super::pointer(&doc, "a"), None, "a pointer starts with /");
    }
}
