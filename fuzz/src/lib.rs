//! The policy SDK's side of `toolgate::fuzz`'s agreement checks, linked
//! natively (the SDK is built for WASM in policy-modules/).

use serde_json::Value;
use toolgate_policy_sdk::{Constraint, Violation};

/// `toolgate_policy_sdk` as [`toolgate::fuzz::Sdk`].
#[derive(Debug)]
pub struct NativeSdk;

impl toolgate::fuzz::Sdk for NativeSdk {
    fn glob(&self, pattern: &str, text: &str) -> bool {
        toolgate_policy_sdk::glob::matches(pattern, text)
    }

    fn check(&self, constraint: &Value, arguments: &Value) -> Result<bool, String> {
        let constraint: Constraint =
            serde_json::from_value(constraint.clone()).map_err(|e| e.to_string())?;
        match constraint.check(arguments) {
            Ok(()) => Ok(true),
            Err(Violation::Missing { .. } | Violation::Mismatch { .. }) => Ok(false),
            Err(Violation::Unusable { why, .. }) => Err(why),
        }
    }
}
