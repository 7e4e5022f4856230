//! Record stage: arguments the log never shows in clear. Each configured
//! JSON pointer (a `*` segment matches any key or index) is dropped, or
//! replaced by `"hmac-sha256:<hex>"` — a keyed hash of the value's JSON
//! text, so equal values stay comparable without showing. Texts that may
//! echo an argument (a module's reason) have masked values scrubbed out.

use std::borrow::Cow;

use aws_lc_rs::hmac;
use serde_json::Value;

use crate::config::{Mask, MaskAction, Secret};

/// Shortest masked value that is scrubbed out of free text; shorter ones
/// would mangle ordinary words.
const MIN_SCRUB: usize = 4;

/// What replaces a masked value inside free text.
pub const SCRUBBED: &str = "[masked]";

/// The compiled `audit.mask` rules.
#[derive(Debug, Default)]
pub struct Masks {
    rules: Vec<(Vec<String>, MaskAction)>,
    key: Option<HmacKey>,
}

struct HmacKey(hmac::Key);

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

impl Masks {
    pub fn new(masks: &[Mask], key: Option<&Secret>) -> Self {
        let rules = masks
            .iter()
            .map(|m| (segments(&m.pointer), m.action))
            .collect();
        let key = key.map(|k| HmacKey(hmac::Key::new(hmac::HMAC_SHA256, k.expose().as_bytes())));
        Self { rules, key }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Masks `arguments` in place; `seen` collects the masked values' text
    /// (strings and numbers, nested ones too) for [`Self::scrub`].
    pub fn apply(&self, arguments: &mut Value, seen: &mut Vec<String>) {
        for (path, action) in &self.rules {
            self.walk(arguments, path, *action, seen);
        }
    }

    /// The masked values of `arguments`, without changing them.
    pub fn values(&self, arguments: &Value) -> Vec<String> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        let mut copy = arguments.clone();
        let mut seen = Vec::new();
        self.apply(&mut copy, &mut seen);
        seen
    }

    /// A grant's constraints with the values they compare with masked as
    /// the arguments they stand for are (see [`Self::at`]).
    pub fn constraints(&self, constraints: &mut [crate::store::model::Constraint]) {
        use crate::store::model::ConstraintTest;
        for c in constraints {
            match &mut c.test {
                ConstraintTest::Equals(v) => *v = self.at(&c.pointer, v),
                ConstraintTest::OneOf(vs) => {
                    for v in vs {
                        *v = self.at(&c.pointer, v);
                    }
                }
                ConstraintTest::Glob(_)
                | ConstraintTest::Regex(_)
                | ConstraintTest::Range(_)
                | ConstraintTest::Prefix(_) => {}
            }
        }
    }

    /// `value`, found at `pointer` inside a call's arguments (a grant's
    /// constraint, say), as the log would show it: masked when a rule covers
    /// that place (a dropped value reads [`SCRUBBED`]), else unchanged.
    pub fn at(&self, pointer: &str, value: &Value) -> Value {
        if self.rules.is_empty() {
            return value.clone();
        }
        let path = segments(pointer);
        let mut whole = value.clone();
        for key in path.iter().rev() {
            whole = Value::Object([(key.clone(), whole)].into_iter().collect());
        }
        self.apply(&mut whole, &mut Vec::new());
        let mut at = Some(&whole);
        for key in &path {
            at = at.and_then(|v| v.get(key));
        }
        at.cloned()
            .unwrap_or_else(|| Value::String(SCRUBBED.to_owned()))
    }

    /// `text` with every masked value (of at least 4 bytes) replaced.
    pub fn scrub<'t>(text: &'t str, values: &[String]) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for v in values {
            if v.len() >= MIN_SCRUB && out.contains(v.as_str()) {
                out = Cow::Owned(out.replace(v.as_str(), SCRUBBED));
            }
        }
        out
    }

    fn walk(&self, value: &mut Value, path: &[String], action: MaskAction, seen: &mut Vec<String>) {
        let Some((head, rest)) = path.split_first() else {
            return;
        };
        match value {
            Value::Object(map) => {
                let keys: Vec<String> = if head == "*" {
                    map.keys().cloned().collect()
                } else if map.contains_key(head) {
                    vec![head.clone()]
                } else {
                    Vec::new()
                };
                for key in keys {
                    if rest.is_empty() {
                        if let Some(old) = map.remove(&key) {
                            collect(&old, seen);
                            if action == MaskAction::Hash {
                                map.insert(key, self.hashed(&old));
                            }
                        }
                    } else if let Some(child) = map.get_mut(&key) {
                        self.walk(child, rest, action, seen);
                    }
                }
            }
            Value::Array(items) => {
                let picked: Vec<usize> = if head == "*" {
                    (0..items.len()).collect()
                } else {
                    head.parse()
                        .ok()
                        .filter(|i| *i < items.len())
                        .into_iter()
                        .collect()
                };
                if rest.is_empty() {
                    // Dropping from an array would shift the indices: an
                    // array element is always replaced (by null when dropped).
                    for i in picked {
                        let old = std::mem::take(&mut items[i]);
                        collect(&old, seen);
                        if action == MaskAction::Hash {
                            items[i] = self.hashed(&old);
                        }
                    }
                } else {
                    for i in picked {
                        self.walk(&mut items[i], rest, action, seen);
                    }
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }

    fn hashed(&self, value: &Value) -> Value {
        let text = serde_json::to_vec(value).unwrap_or_default();
        match &self.key {
            Some(HmacKey(key)) => Value::String(format!(
                "hmac-sha256:{}",
                crate::store::model::hex(hmac::sign(key, &text).as_ref())
            )),
            // Config refuses hash masks without a key; never show the value.
            None => Value::String(SCRUBBED.to_owned()),
        }
    }
}

fn collect(value: &Value, seen: &mut Vec<String>) {
    match value {
        Value::String(s) => seen.push(s.clone()),
        Value::Number(n) => seen.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect(v, seen)),
        Value::Object(map) => map.values().for_each(|v| collect(v, seen)),
        Value::Null | Value::Bool(_) => {}
    }
}

/// RFC 6901 segments of a pointer (`~1` is `/`, `~0` is `~`).
fn segments(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_value_at_a_pointer_is_masked_as_inside_its_arguments() {
        let m = masks(&[
            ("/password", MaskAction::Drop),
            ("/card/number", MaskAction::Hash),
        ]);
        assert_eq!(m.at("/password", &json!("hunter22")), json!(SCRUBBED));
        let hashed = m.at("/card/number", &json!("4111"));
        assert!(
            hashed.as_str().unwrap().starts_with("hmac-sha256:"),
            "{hashed}"
        );
        assert_eq!(m.at("/repo", &json!("acme/app")), json!("acme/app"));
        let whole = m.at("", &json!({"password": "hunter22", "repo": "acme/app"}));
        assert_eq!(whole, json!({"repo": "acme/app"}));
        assert_eq!(m.at("/card", &json!({"number": "4111"}))["number"], hashed);
    }

    fn masks(rules: &[(&str, MaskAction)]) -> Masks {
        let cfg: Vec<Mask> = rules
            .iter()
            .map(|(p, a)| Mask {
                pointer: (*p).into(),
                action: *a,
            })
            .collect();
        Masks::new(&cfg, Some(&Secret::for_tests("k3y")))
    }

    #[test]
    fn drops_hashes_and_collects_what_it_masked() {
        let m = masks(&[
            ("/password", MaskAction::Drop),
            ("/card/number", MaskAction::Hash),
            ("/items/*/token", MaskAction::Drop),
            ("/a~1b", MaskAction::Drop),
        ]);
        let mut args = json!({
            "password": "hunter2-secret", "user": "ann",
            "card": {"number": 4111111111111111u64, "exp": "12/30"},
            "items": [{"token": "t-one", "n": 1}, {"token": "t-two"}],
            "a/b": "slash"
        });
        let mut seen = Vec::new();
        m.apply(&mut args, &mut seen);
        let hashed = args["card"]["number"].as_str().unwrap().to_owned();
        assert!(hashed.starts_with("hmac-sha256:") && hashed.len() == 12 + 64);
        assert_eq!(
            args,
            json!({"user": "ann", "card": {"number": hashed, "exp": "12/30"},
                   "items": [{"n": 1}, {}]})
        );
        assert_eq!(
            seen,
            [
                "hunter2-secret",
                "4111111111111111",
                "t-one",
                "t-two",
                "slash"
            ]
        );
        // Same value, same key: same hash.
        let mut again = json!({"card": {"number": 4111111111111111u64}});
        m.apply(&mut again, &mut Vec::new());
        assert_eq!(again["card"]["number"], hashed);
    }

    #[test]
    fn scrubs_masked_values_out_of_text() {
        let seen = vec!["hunter2-secret".to_owned(), "ab".to_owned()];
        assert_eq!(
            Masks::scrub("bad password hunter2-secret for ab", &seen),
            "bad password [masked] for ab"
        );
        assert!(matches!(Masks::scrub("nothing", &seen), Cow::Borrowed(_)));
    }
}
