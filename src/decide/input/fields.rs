//! Decide stage: the input fields a module declares it reads
//! (policy-modules/ABI.md "Declared input fields"), as a tree of object
//! keys, and the form it wants them in: a document with `version` and at
//! least these fields, or their values alone ("Values form").

use serde::Deserialize;
use serde_json::{Map, Value};

use super::values::{self, Leaf, MAX_FIELDS};

/// Most pointers a declaration may hold.
const MAX_POINTERS: usize = 64;
/// Longest pointer accepted, in bytes.
const MAX_POINTER_BYTES: usize = 256;

/// What a module declared it reads, and in which form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    fields: Fields,
    /// The values form: the pointers, and where each one's value comes from.
    values: Option<(Vec<String>, Vec<Leaf>)>,
}

/// A declaration as the module answers it.
#[derive(Deserialize)]
#[serde(untagged)]
enum Declaration {
    Document(Vec<String>),
    Form(Form),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    fields: Vec<String>,
    form: FormName,
}

#[derive(Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum FormName {
    Document,
    Values,
}

impl Declared {
    /// Reads a module's declaration: a JSON array of JSON pointers, or
    /// `{"fields": [...], "form": "values" | "document"}`; `null` is the
    /// whole document (`None`).
    pub fn parse(declaration: &[u8]) -> Result<Option<Self>, String> {
        let declaration: Option<Declaration> =
            serde_json::from_slice(declaration).map_err(|e| {
                format!(
                    "input fields are neither an array of JSON pointers nor \
                     {{\"fields\": [...], \"form\": ...}} ({e})"
                )
            })?;
        let (pointers, as_values) = match declaration {
            None => return Ok(None),
            Some(Declaration::Document(pointers)) => (pointers, false),
            Some(Declaration::Form(form)) => (form.fields, form.form == FormName::Values),
        };
        let max = if as_values { MAX_FIELDS } else { MAX_POINTERS };
        if pointers.len() > max {
            return Err(format!(
                "{} input fields declared; at most {max}",
                pointers.len()
            ));
        }
        let mut fields = Fields::default();
        fields.insert(&["version".to_owned()]);
        let mut leaves = Vec::new();
        for pointer in &pointers {
            let steps = steps(pointer).ok_or_else(|| {
                format!("input field {pointer:?} is not a JSON pointer like \"/tool/name\"")
            })?;
            fields.insert(&steps);
            if as_values {
                let mut alone = Fields::default();
                alone.insert(&steps);
                leaves.push(Leaf::resolve(pointer, &steps, alone));
            }
        }
        Ok(Some(Self {
            fields,
            values: as_values.then_some((pointers, leaves)),
        }))
    }

    /// The declared fields.
    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Whether the module takes the values form.
    pub fn as_values(&self) -> bool {
        self.values.is_some()
    }

    /// The values form's sources, if the module takes it.
    pub(super) fn leaves(&self) -> Option<&[Leaf]> {
        self.values.as_ref().map(|(_, leaves)| leaves.as_slice())
    }

    /// A whole input document (a test vector's) as this module is sent it:
    /// trimmed to exactly the declared fields, or as their values.
    pub fn encode_value(&self, input: &Value) -> Vec<u8> {
        match &self.values {
            Some((pointers, _)) => values::encode(input, pointers),
            None => self.fields.trim(input).to_string().into_bytes(),
        }
    }
}

/// A selection of object keys; a key without children selects its whole
/// value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    keys: Vec<(String, Fields)>,
}

impl Fields {
    /// The selection under `key`, if `key` is selected at all.
    pub fn get(&self, key: &str) -> Option<&Fields> {
        self.keys.iter().find(|(k, _)| k == key).map(|(_, f)| f)
    }

    /// Whether the whole value is selected (no narrower selection inside).
    pub fn is_whole(&self) -> bool {
        self.keys.is_empty()
    }

    /// `value` cut down to this selection, exactly; a selection inside a
    /// non-object keeps it whole. Test vectors run on this, so a module
    /// that reads an undeclared field fails its own vectors.
    pub fn trim(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) if !self.is_whole() => Value::Object(
                self.keys
                    .iter()
                    .filter_map(|(key, sub)| Some((key.clone(), sub.trim(map.get(key)?))))
                    .collect::<Map<_, _>>(),
            ),
            _ => value.clone(),
        }
    }

    fn insert(&mut self, steps: &[String]) {
        let Some((step, rest)) = steps.split_first() else {
            return;
        };
        match self.keys.iter().position(|(k, _)| k == step) {
            // Already selected whole: a narrower pointer adds nothing.
            Some(i) if self.keys[i].1.is_whole() => {}
            Some(i) if rest.is_empty() => self.keys[i].1.keys.clear(),
            Some(i) => self.keys[i].1.insert(rest),
            None => {
                let mut sub = Fields::default();
                sub.insert(rest);
                self.keys.push((step.clone(), sub));
            }
        }
    }
}

/// A JSON pointer's unescaped steps; `None` unless it starts with `/`,
/// has no empty step and is short.
fn steps(pointer: &str) -> Option<Vec<String>> {
    if pointer.len() > MAX_POINTER_BYTES {
        return None;
    }
    let steps: Vec<String> = pointer
        .strip_prefix('/')?
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    steps.iter().all(|s| !s.is_empty()).then_some(steps)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(json: &str) -> Option<Fields> {
        Declared::parse(json.as_bytes())
            .expect("a valid declaration")
            .map(|d| d.fields().clone())
    }

    #[test]
    fn declarations_parse_into_a_tree() {
        assert_eq!(parse("null"), None);
        let f =
            parse(r#"["/tool/name", "/identity/spiffe/trust_domain", "/a~1b"]"#).expect("fields");
        assert!(f.get("version").is_some_and(Fields::is_whole));
        assert!(f.get("tool").and_then(|t| t.get("name")).is_some());
        assert!(f.get("tool").is_some_and(|t| t.get("arguments").is_none()));
        assert!(f.get("a/b").is_some());
        assert!(f.get("route").is_none());
        for bad in [
            r#"["tool"]"#,
            r#"["/a//b"]"#,
            r#"[""]"#,
            r#"{"a":1}"#,
            "[1]",
            r#"{"fields": ["/a"], "form": "xml"}"#,
            r#"{"fields": ["/a"], "form": "values", "more": 1}"#,
        ] {
            assert!(Declared::parse(bad.as_bytes()).is_err(), "{bad}");
        }
        let many = serde_json::to_string(&vec!["/a"; MAX_FIELDS + 1]).expect("JSON");
        assert!(Declared::parse(many.as_bytes()).is_ok());
        let many = format!(r#"{{"fields": {many}, "form": "values"}}"#);
        assert!(Declared::parse(many.as_bytes()).is_err());
        let values = Declared::parse(br#"{"fields": ["/tool/name"], "form": "values"}"#)
            .expect("valid")
            .expect("declared");
        assert!(values.as_values());
        assert!(values.fields().get("tool").is_some());
    }

    #[test]
    fn a_whole_selection_wins_over_a_narrower_one() {
        let a = parse(r#"["/identity/kind", "/identity"]"#).expect("fields");
        let b = parse(r#"["/identity", "/identity/kind"]"#).expect("fields");
        assert!(a.get("identity").is_some_and(Fields::is_whole));
        assert!(b.get("identity").is_some_and(Fields::is_whole));
    }

    #[test]
    fn trims_values_exactly() {
        let f = parse(r#"["/tool/name", "/identity/spiffe/trust_domain", "/phase/x", "/task/id"]"#)
            .expect("fields");
        let input = json!({
            "version": 1, "phase": "call", "task": null,
            "tool": {"name": "t", "arguments": {"a": 1}},
            "identity": {"kind": "workload", "spiffe": {"trust_domain": "td", "path": "/p"}},
        });
        assert_eq!(
            f.trim(&input),
            json!({"version": 1, "phase": "call", "task": null, "tool": {"name": "t"},
                   "identity": {"spiffe": {"trust_domain": "td"}}})
        );
    }
}
