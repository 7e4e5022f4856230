//! Understand stage, 2026-07-28: which argument each `Mcp-Param-*` header
//! of a `tools/call` mirrors. A tool's input schema declares it
//! (`x-mcp-header` on a property reached through `properties` only,
//! SEP-2243); the gateway learns the declarations from the `tools/list`
//! answers it filters, so that a header is checked against the one argument
//! it mirrors, not merely against some argument of the call.

use http::HeaderMap;
use serde_json::Value;

use super::{Error, PARAM_HEADER_PREFIX, decode_header_value};

/// The schema keyword that declares a mirrored parameter.
const DECLARATION: &str = "x-mcp-header";
/// Deepest `properties` chain followed; deeper declarations are not read.
const MAX_DEPTH: usize = 8;

/// One mirrored parameter: its header (lowercase, with the prefix) and the
/// path of the argument it mirrors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    header: String,
    path: Vec<String>,
}

/// The mirrored parameters a tool (as `tools/list` lists it) declares;
/// `None` when it has no input schema, or declares a header name twice or
/// one that is not a header name (clients then leave the tool out).
pub fn declarations(tool: &Value) -> Option<Vec<Declared>> {
    let schema = tool.get("inputSchema")?;
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out)?;
    Some(out)
}

fn walk(schema: &Value, path: &mut Vec<String>, out: &mut Vec<Declared>) -> Option<()> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Some(());
    };
    if path.len() >= MAX_DEPTH {
        return Some(());
    }
    for (name, property) in properties {
        path.push(name.clone());
        if let Some(declared) = property.get(DECLARATION) {
            let name = declared.as_str().filter(|n| is_token(n))?;
            let header = format!("{PARAM_HEADER_PREFIX}{}", name.to_ascii_lowercase());
            if out.iter().any(|d| d.header == header) {
                return None;
            }
            out.push(Declared {
                header,
                path: path.clone(),
            });
        }
        walk(property, path, out)?;
        path.pop();
    }
    Some(())
}

/// An RFC 9110 token, as a header name must be.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Checks every `Mcp-Param-*` header against the argument its tool
/// declares it mirrors: a header the tool does not declare, or one whose
/// value is not that argument's, is refused. A declared header left out
/// is no disagreement (a client without the tool's schema sends none).
/// Duplicates and bad encodings are refused before, by `check_modern_headers`.
pub fn check(declared: &[Declared], headers: &HeaderMap, arguments: &Value) -> Result<(), Error> {
    let params = headers
        .keys()
        .filter(|name| name.as_str().starts_with(PARAM_HEADER_PREFIX));
    for name in params {
        let param = |why| Error::Param {
            header: name.as_str().to_owned(),
            why,
        };
        let Some(declaration) = declared.iter().find(|d| d.header == name.as_str()) else {
            return Err(param("is not a parameter the tool's schema mirrors"));
        };
        let value = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(decode_header_value)
            .ok_or_else(|| param("holds a malformed base64 value"))?;
        let argument = declaration
            .path
            .iter()
            .try_fold(arguments, |node, key| node.get(key));
        if !argument.is_some_and(|a| renders_as(a, &value)) {
            return Err(param("does not match the argument it mirrors"));
        }
    }
    Ok(())
}

/// True if a client renders `argument` (a string, integer or boolean) as
/// `text` in a header.
pub(super) fn renders_as(argument: &Value, text: &str) -> bool {
    match argument {
        Value::String(s) => s == text,
        Value::Bool(b) => text == if *b { "true" } else { "false" },
        Value::Number(n) => n.to_string() == text,
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn deploy() -> Value {
        json!({"name": "deploy", "inputSchema": {"type": "object", "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "version": {"type": "string"},
            "target": {"type": "object", "properties": {
                "dry": {"type": "boolean", "x-mcp-header": "Dry-Run"}}}}}})
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_static(value));
        }
        h
    }

    #[test]
    fn declarations_follow_properties_only() {
        let found = declarations(&deploy()).unwrap();
        let found: Vec<(&str, Vec<&str>)> = found
            .iter()
            .map(|d| {
                (
                    d.header.as_str(),
                    d.path.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                ("mcp-param-region", vec!["region"]),
                ("mcp-param-dry-run", vec!["target", "dry"]),
            ]
        );
        assert_eq!(declarations(&json!({"name": "x"})), None);
        assert_eq!(
            declarations(&json!({"name": "x", "inputSchema": {"type": "object"}})),
            Some(vec![])
        );
        for bad in [
            json!({"a": {"x-mcp-header": "Same"}, "b": {"x-mcp-header": "same"}}),
            json!({"a": {"x-mcp-header": "has space"}}),
            json!({"a": {"x-mcp-header": ""}}),
            json!({"a": {"x-mcp-header": 7}}),
        ] {
            let tool = json!({"name": "x", "inputSchema": {"properties": bad}});
            assert_eq!(declarations(&tool), None, "{tool}");
        }
    }

    #[test]
    fn a_header_must_mirror_its_own_argument() {
        let declared = declarations(&deploy()).unwrap();
        let args = json!({"region": "eu", "version": "1.2", "target": {"dry": true}});
        for ok in [
            headers(&[]),
            headers(&[("mcp-param-region", "eu")]),
            headers(&[
                ("mcp-param-region", "=?base64?ZXU=?="),
                ("mcp-param-dry-run", "true"),
            ]),
        ] {
            assert!(check(&declared, &ok, &args).is_ok(), "{ok:?}");
        }
        for (bad, why) in [
            // Another argument's value is not this one's.
            (headers(&[("mcp-param-region", "1.2")]), "does not match"),
            (headers(&[("mcp-param-dry-run", "false")]), "does not match"),
            (headers(&[("mcp-param-version", "1.2")]), "not a parameter"),
            (
                headers(&[("mcp-param-region", "=?base64?***?=")]),
                "malformed",
            ),
        ] {
            let err = check(&declared, &bad, &args).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        let without = json!({"version": "1.2"});
        let err = check(&declared, &headers(&[("mcp-param-region", "eu")]), &without);
        assert!(err.is_err(), "a header for an argument the body lacks");
    }
}
