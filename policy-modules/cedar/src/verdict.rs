//! Cedar's answer as a toolgate decision (decide stage, after evaluation).
//!
//! Cedar skips a policy whose condition errors. For a `permit` that is
//! already fail-closed (it grants nothing), but a `forbid` that errors might
//! have applied, so any erroring `forbid` denies the call here.

use cedar_policy::{AuthorizationError, Effect, PolicyId, PolicySet, Response};
use serde_json::{Value, json};
use toolgate_policy_sdk::Decision;

/// The reason when nothing permits the call.
pub(crate) const NOT_PERMITTED: &str = "no Cedar policy permits this call";

/// The decision for the authorizer's response.
pub(crate) fn from_response(response: &Response, policies: &PolicySet) -> Decision {
    let diagnostics = response.diagnostics();
    // Cedar keeps the determining policies in a hash set: sort them, so the
    // reason and the decision log do not change from call to call.
    let mut determining: Vec<&PolicyId> = diagnostics.reason().collect();
    determining.sort_by_key(|id| id.to_string());
    let mut forbid_errors = Vec::new();
    let mut all_errors = Vec::new();
    for error in diagnostics.errors() {
        let AuthorizationError::PolicyEvaluationError(e) = error;
        let text = format!("{}: {}", e.policy_id(), e.inner());
        if policies.policy(e.policy_id()).map(|p| p.effect()) == Some(Effect::Forbid) {
            forbid_errors.push(text.clone());
        }
        all_errors.push(text);
    }
    forbid_errors.sort();
    all_errors.sort();
    let mut decision = if !forbid_errors.is_empty() {
        Decision::deny(format!(
            "Cedar forbid policy could not be evaluated (failing closed): {}",
            forbid_errors.join("; ")
        ))
    } else {
        match response.decision() {
            cedar_policy::Decision::Deny => denied(&determining, policies),
            cedar_policy::Decision::Allow => allowed(&determining, policies),
        }
    };
    if !determining.is_empty() {
        decision = decision.annotate("policies", ids(&determining));
    }
    if !all_errors.is_empty() {
        decision = decision.annotate("errors", json!(all_errors));
    }
    decision
}

/// Deny: name the forbids that decided it (and their `@reason`s).
fn denied(determining: &[&PolicyId], policies: &PolicySet) -> Decision {
    if determining.is_empty() {
        return Decision::deny(NOT_PERMITTED);
    }
    let named: Vec<String> = determining
        .iter()
        .map(|id| match policies.annotation(id, "reason") {
            Some(reason) if !reason.is_empty() => format!("{id} ({reason})"),
            _ => id.to_string(),
        })
        .collect();
    Decision::deny(format!("denied by Cedar policy {}", named.join(", ")))
}

/// Allow, unless a determining permit carries `@needs_approval("why")`.
fn allowed(determining: &[&PolicyId], policies: &PolicySet) -> Decision {
    let approvals: Vec<String> = determining
        .iter()
        .filter_map(|id| {
            let why = policies.annotation(id, "needs_approval")?;
            Some(if why.is_empty() {
                format!("Cedar policy {id} requires approval")
            } else {
                why.to_owned()
            })
        })
        .collect();
    if approvals.is_empty() {
        Decision::allow()
    } else {
        Decision::needs_approval(approvals.join("; "))
    }
}

fn ids(determining: &[&PolicyId]) -> Value {
    json!(
        determining
            .iter()
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
    )
}
