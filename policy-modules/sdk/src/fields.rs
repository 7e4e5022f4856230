//! The input fields a module declares it reads ([`Policy::INPUT_FIELDS`],
//! ABI.md "Declared input fields"): the declaration as the
//! `toolgate_input_fields` export answers it, and the trimmed input the host
//! sends, made here the same way for native vector runs.
//!
//! [`Policy::INPUT_FIELDS`]: crate::Policy::INPUT_FIELDS

use serde_json::{Map, Value};

/// The declaration as JSON: an array of JSON pointers (or, for the values
/// form, `{"fields": [...], "form": "values"}`), or `null` for "the whole
/// document".
pub(crate) fn declaration(fields: Option<&[&str]>, values: bool) -> Vec<u8> {
    let declared = match fields {
        None => serde_json::Value::Null,
        Some(fields) if values => serde_json::json!({"fields": fields, "form": "values"}),
        Some(fields) => serde_json::json!(fields),
    };
    serde_json::to_vec(&declared).unwrap_or_else(|_| b"null".to_vec())
}

/// Whether every declared field is a JSON pointer the host can serve: it
/// starts with `/` and names an object key at each step.
pub(crate) fn check(fields: Option<&[&str]>, values: bool) -> Result<(), String> {
    match fields {
        None if values => return Err("INPUT_VALUES needs INPUT_FIELDS".into()),
        Some(fields) if values && fields.len() > crate::MAX_FIELDS => {
            return Err(format!(
                "INPUT_VALUES takes at most {} fields",
                crate::MAX_FIELDS
            ));
        }
        _ => {}
    }
    let bad: Vec<&str> = fields
        .unwrap_or_default()
        .iter()
        .copied()
        .filter(|f| !f.starts_with('/') || f.split('/').skip(1).any(str::is_empty))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "INPUT_FIELDS must be JSON pointers like \"/tool/name\": {bad:?}"
        ))
    }
}

/// `input` cut down to `version` and the declared fields (with the objects
/// on the way to them); everything when nothing is declared. The host may
/// send more than this, never less: vectors run on exactly this, so a
/// module that reads an undeclared field fails its own vectors.
pub(crate) fn trim(input: &Value, fields: Option<&[&str]>) -> Value {
    let Some(fields) = fields else {
        return input.clone();
    };
    let mut out = Map::new();
    if let Some(version) = input.get("version") {
        out.insert("version".into(), version.clone());
    }
    let mut out = Value::Object(out);
    for field in fields {
        let steps: Vec<String> = field.split('/').skip(1).map(unescape).collect();
        copy(input, &mut out, &steps);
    }
    out
}

/// Copies the value at `steps` in `from` into `to`, making the objects on
/// the way; a step into a non-object copies that value whole.
fn copy(from: &Value, to: &mut Value, steps: &[String]) {
    let (Some((step, rest)), Value::Object(from_map)) = (steps.split_first(), from) else {
        *to = from.clone();
        return;
    };
    let Some(next) = from_map.get(step) else {
        return;
    };
    let Value::Object(to_map) = to else {
        return; // already copied whole by a shorter pointer
    };
    let slot = to_map.entry(step.clone()).or_insert_with(|| match next {
        Value::Object(_) if !rest.is_empty() => Value::Object(Map::new()),
        _ => next.clone(),
    });
    if rest.is_empty() {
        *slot = next.clone();
    } else if slot.is_object() {
        copy(next, slot, rest);
    }
}

fn unescape(step: &str) -> String {
    step.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn trims_to_the_declared_fields() {
        let input = json!({
            "version": 1, "phase": "call",
            "route": {"name": "r", "kind": "mcp"},
            "tool": {"name": "t", "arguments": {"a": 1}},
            "identity": {"kind": "workload", "subject": "s", "spiffe": {"trust_domain": "td", "path": "/p"}}
        });
        let fields = ["/tool/name", "/identity/spiffe/trust_domain", "/route"];
        assert_eq!(
            trim(&input, Some(&fields)),
            json!({"version": 1, "tool": {"name": "t"}, "route": {"name": "r", "kind": "mcp"},
                   "identity": {"spiffe": {"trust_domain": "td"}}})
        );
        assert_eq!(trim(&input, None), input);
        assert_eq!(trim(&input, Some(&[])), json!({"version": 1}));
        // A whole object wins over a field inside it, in either order.
        let both = ["/identity/kind", "/identity", "/identity/subject"];
        assert_eq!(trim(&input, Some(&both))["identity"], input["identity"]);
        // Missing fields stay missing; a non-object is copied whole.
        let odd = ["/task/id", "/phase/x"];
        assert_eq!(
            trim(&input, Some(&odd)),
            json!({"version": 1, "phase": "call"})
        );
    }

    #[test]
    fn declarations_are_json_pointers() {
        assert_eq!(check(None, false), Ok(()));
        assert_eq!(check(Some(&["/tool/name", "/a~1b"]), false), Ok(()));
        assert_eq!(check(Some(&["/tool/name"]), true), Ok(()));
        assert!(check(Some(&["tool/name"]), false).is_err());
        assert!(check(Some(&["/tool//name"]), false).is_err());
        assert!(check(Some(&[""]), false).is_err());
        assert!(check(None, true).is_err());
        assert!(check(Some(&["/a"; 33]), true).is_err());
        assert_eq!(declaration(None, false), b"null");
        assert_eq!(declaration(Some(&["/a", "/b"]), false), br#"["/a","/b"]"#);
        assert_eq!(
            declaration(Some(&["/a"]), true),
            br#"{"fields":["/a"],"form":"values"}"#
        );
    }
}
