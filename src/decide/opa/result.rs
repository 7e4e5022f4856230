//! Decide stage: an OPA module's result set read as a toolgate decision.

use serde_json::{Map, Value};

use crate::decide::Verdict;
use crate::decide::module::{Answer, Fault};

/// Reason given when the entrypoint is undefined for the input.
pub(super) const NO_RESULT: &str = "OPA policy produced no result";
const DEFAULT_DENY: &str = "denied by OPA policy";
const DEFAULT_APPROVAL: &str = "OPA policy requires a human's approval";
/// Longest reason kept, in characters.
const MAX_REASON: usize = 1024;

/// Reads the result set `opa_eval` returns, `[{"result": X}]`, where `X` is
/// the value of the configured entrypoint (by default the first one):
///
/// - `{"decision": "allow" | "deny" | "needs_approval", "reason": …, "annotations": {…}}`:
///   the same shape a toolgate-ABI module answers with;
/// - `{"allow": true | false, "reason": …, "needs_approval": true | false}`:
///   `needs_approval: true` asks for a human's approval (whatever `allow`
///   says); otherwise `allow: true` allows and `allow: false` denies.
///   `annotations` is read here too;
/// - `true` or `false`: allow or deny.
///
/// A `reason` is a string or an array of strings (a Rego set of messages,
/// joined with `"; "`). A deny without one gets "denied by OPA policy"; a
/// needs_approval without one "OPA policy requires a human's approval".
/// `annotations`, if an object, goes to the decision log.
///
/// An empty result set (the entrypoint is undefined for this input) denies
/// with reason "OPA policy produced no result". Anything else (another
/// shape, a `decision` toolgate does not know, a non-boolean `allow`) is
/// malformed: the call is denied with reason `policy_error`.
pub(crate) fn answer(output: &[u8]) -> Result<Answer, Fault> {
    let set: Value = serde_json::from_slice(output)
        .map_err(|e| Fault::Malformed(format!("OPA result is not JSON ({e})")))?;
    let Value::Array(results) = set else {
        return Err(Fault::Malformed("OPA result set is not an array".into()));
    };
    let value = match results.as_slice() {
        [] => {
            return Ok(Answer {
                verdict: Verdict::Deny,
                reason: Some(NO_RESULT.to_owned()),
                annotations: None,
            });
        }
        [one] => one
            .get("result")
            .ok_or_else(|| Fault::Malformed("OPA result set entry has no \"result\"".into()))?,
        more => {
            return Err(Fault::Malformed(format!(
                "OPA result set has {} entries; expected one",
                more.len()
            )));
        }
    };
    match value {
        Value::Bool(allow) => Ok(with_default_reason(
            if *allow {
                Verdict::Allow
            } else {
                Verdict::Deny
            },
            None,
            None,
        )),
        Value::Object(fields) => from_object(fields),
        other => Err(Fault::Malformed(format!(
            "OPA result is {}, not a decision",
            kind(other)
        ))),
    }
}

fn from_object(fields: &Map<String, Value>) -> Result<Answer, Fault> {
    let verdict = if let Some(decision) = fields.get("decision") {
        match decision.as_str() {
            Some("allow") => Verdict::Allow,
            Some("deny") => Verdict::Deny,
            Some("needs_approval") => Verdict::NeedsApproval,
            _ => return Err(Fault::Malformed(format!("unknown decision {decision}"))),
        }
    } else {
        let flag = |name: &str| match fields.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(Fault::Malformed(format!(
                "\"{name}\" is {}, not a boolean",
                kind(other)
            ))),
        };
        match (flag("allow")?, flag("needs_approval")?) {
            (_, Some(true)) => Verdict::NeedsApproval,
            (Some(true), _) => Verdict::Allow,
            (Some(false), _) => Verdict::Deny,
            (None, _) => {
                return Err(Fault::Malformed(
                    "OPA result has neither \"decision\" nor \"allow\"".into(),
                ));
            }
        }
    };
    let reason = match fields.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(items)) => {
            let texts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            let texts = texts
                .ok_or_else(|| Fault::Malformed("\"reason\" array holds a non-string".into()))?;
            Some(texts.join("; "))
        }
        Some(other) => {
            return Err(Fault::Malformed(format!(
                "\"reason\" is {}, not a string",
                kind(other)
            )));
        }
    };
    let annotations = fields.get("annotations").filter(|a| a.is_object()).cloned();
    Ok(with_default_reason(verdict, reason, annotations))
}

fn with_default_reason(
    verdict: Verdict,
    reason: Option<String>,
    annotations: Option<Value>,
) -> Answer {
    let reason = reason
        .filter(|r| !r.is_empty())
        .map(|r| match r.char_indices().nth(MAX_REASON) {
            Some((at, _)) => format!("{}…", &r[..at]),
            None => r,
        });
    let reason = match verdict {
        Verdict::Allow => reason,
        Verdict::Deny => reason.or_else(|| Some(DEFAULT_DENY.to_owned())),
        Verdict::NeedsApproval => reason.or_else(|| Some(DEFAULT_APPROVAL.to_owned())),
    };
    Answer {
        verdict,
        reason,
        annotations,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(json: &str) -> (Verdict, Option<String>) {
        let a = answer(json.as_bytes()).unwrap_or_else(|f| panic!("{json}: {f}"));
        (a.verdict, a.reason)
    }

    #[test]
    fn every_documented_shape_maps() {
        assert_eq!(verdict(r#"[{"result":true}]"#), (Verdict::Allow, None));
        assert_eq!(
            verdict(r#"[{"result":false}]"#),
            (Verdict::Deny, Some(DEFAULT_DENY.into()))
        );
        assert_eq!(verdict(r#"[]"#), (Verdict::Deny, Some(NO_RESULT.into())));
        assert_eq!(
            verdict(r#"[{"result":{"allow":true}}]"#),
            (Verdict::Allow, None)
        );
        assert_eq!(
            verdict(r#"[{"result":{"allow":false,"reason":"no"}}]"#),
            (Verdict::Deny, Some("no".into()))
        );
        assert_eq!(
            verdict(r#"[{"result":{"allow":false,"reason":["a","b"]}}]"#),
            (Verdict::Deny, Some("a; b".into()))
        );
        assert_eq!(
            verdict(r#"[{"result":{"allow":false,"reason":""}}]"#),
            (Verdict::Deny, Some(DEFAULT_DENY.into()))
        );
        assert_eq!(
            verdict(r#"[{"result":{"allow":false,"needs_approval":true}}]"#),
            (Verdict::NeedsApproval, Some(DEFAULT_APPROVAL.into()))
        );
        assert_eq!(
            verdict(r#"[{"result":{"allow":true,"needs_approval":true,"reason":"big"}}]"#),
            (Verdict::NeedsApproval, Some("big".into()))
        );
        assert_eq!(
            verdict(r#"[{"result":{"allow":true,"needs_approval":false}}]"#),
            (Verdict::Allow, None)
        );
        assert_eq!(
            verdict(r#"[{"result":{"decision":"deny"}}]"#),
            (Verdict::Deny, Some(DEFAULT_DENY.into()))
        );
        assert_eq!(
            verdict(r#"[{"result":{"decision":"needs_approval","reason":"ask"}}]"#),
            (Verdict::NeedsApproval, Some("ask".into()))
        );
        let a =
            answer(br#"[{"result":{"decision":"allow","annotations":{"rule":"r1"}}}]"#).unwrap();
        assert_eq!(a.annotations, Some(serde_json::json!({"rule": "r1"})));
        let long = format!(
            r#"[{{"result":{{"allow":false,"reason":"{}"}}}}]"#,
            "x".repeat(2000)
        );
        assert_eq!(
            verdict(&long).1.map(|r| r.chars().count()),
            Some(MAX_REASON + 1)
        );
    }

    #[test]
    fn other_shapes_are_malformed() {
        for bad in [
            "not json",
            r#"{"result":true}"#,
            r#"[{"x":true}]"#,
            r#"[{"result":true},{"result":false}]"#,
            r#"[{"result":"allow"}]"#,
            r#"[{"result":1}]"#,
            r#"[{"result":{}}]"#,
            r#"[{"result":{"allow":"yes"}}]"#,
            r#"[{"result":{"allow":true,"needs_approval":1}}]"#,
            r#"[{"result":{"decision":"maybe"}}]"#,
            r#"[{"result":{"allow":false,"reason":7}}]"#,
            r#"[{"result":{"allow":false,"reason":["a",1]}}]"#,
        ] {
            assert!(
                matches!(answer(bad.as_bytes()), Err(Fault::Malformed(_))),
                "{bad}"
            );
        }
    }
}
