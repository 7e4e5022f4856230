//! The values form of the input (ABI.md "Values form"): the declared fields'
//! values in declaration order, each read in a step — no JSON to scan. A
//! module asks for it with [`Policy::INPUT_VALUES`] and decides from it in
//! [`Policy::decide_values`]; the typed path gets the same values as a
//! JSON document.
//!
//! [`Policy::INPUT_VALUES`]: crate::Policy::INPUT_VALUES
//! [`Policy::decide_values`]: crate::Policy::decide_values

use serde_json::{Map, Value};

/// Most fields a module may ask for in the values form.
pub const MAX_FIELDS: usize = 32;
/// The first bytes of the values form: a zero byte (no JSON document starts
/// with one), then the form's version.
const HEADER: [u8; 2] = [0, 1];

const ABSENT: u8 = 0;
const NULL: u8 = 1;
const STRING: u8 = 2;
const JSON: u8 = 3;

/// One declared field's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Field<'a> {
    /// Nothing is at this pointer.
    #[default]
    Absent,
    /// `null`.
    Null,
    /// A string, as it is (no JSON escapes).
    Str(&'a str),
    /// Any other value, as JSON text.
    Json(&'a str),
}

impl<'a> Field<'a> {
    /// The string, if the field is one.
    pub fn as_str(self) -> Option<&'a str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Whether `input` is in the values form (else it is a JSON document).
pub(crate) fn is_values(input: &[u8]) -> bool {
    input.first() == Some(&HEADER[0])
}

/// Reads the values form into `out`: exactly `count` fields, nothing after.
pub(crate) fn read<'a, 'o>(
    input: &'a [u8],
    count: usize,
    out: &'o mut [Field<'a>; MAX_FIELDS],
) -> Result<&'o [Field<'a>], String> {
    let bad = |why: &str| format!("policy input is not in the values form: {why}");
    let mut rest = input
        .strip_prefix(&HEADER)
        .ok_or_else(|| bad("unknown header"))?;
    let out = out.get_mut(..count).ok_or_else(|| bad("too many fields"))?;
    for slot in out.iter_mut() {
        let (&tag, after) = rest.split_first().ok_or_else(|| bad("too few fields"))?;
        rest = after;
        *slot = match tag {
            ABSENT => Field::Absent,
            NULL => Field::Null,
            STRING | JSON => {
                let (len, after) = rest
                    .split_first_chunk::<4>()
                    .ok_or_else(|| bad("truncated length"))?;
                let len = usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX);
                let (text, after) = after
                    .split_at_checked(len)
                    .ok_or_else(|| bad("truncated value"))?;
                rest = after;
                let text = std::str::from_utf8(text).map_err(|_| bad("a value is not UTF-8"))?;
                if tag == STRING {
                    Field::Str(text)
                } else {
                    Field::Json(text)
                }
            }
            _ => return Err(bad("unknown tag")),
        };
    }
    if rest.is_empty() {
        Ok(out)
    } else {
        Err(bad("bytes after the last field"))
    }
}

/// The values form of a JSON input, as the host makes it: the value at each
/// pointer, or absent. For native vector runs.
pub(crate) fn encode(input: &Value, fields: &[&str]) -> Vec<u8> {
    let mut out = HEADER.to_vec();
    for field in fields {
        let (tag, text) = match input.pointer(field) {
            None => (ABSENT, None),
            Some(Value::Null) => (NULL, None),
            Some(Value::String(s)) => (STRING, Some(s.clone())),
            Some(other) => (JSON, Some(other.to_string())),
        };
        out.push(tag);
        if let Some(text) = text {
            let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
    out
}

/// The JSON document the values stand for (each value at its pointer, the
/// objects on the way made), for the typed path.
pub(crate) fn document(fields: &[&str], values: &[Field<'_>]) -> Result<Value, String> {
    let mut doc = Value::Object(Map::new());
    for (field, value) in fields.iter().zip(values) {
        let value = match value {
            Field::Absent => continue,
            Field::Null => Value::Null,
            Field::Str(s) => Value::String((*s).to_owned()),
            Field::Json(text) => serde_json::from_str(text)
                .map_err(|e| format!("policy input field {field} is not JSON: {e}"))?,
        };
        let steps: Vec<String> = field
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        insert(&mut doc, &steps, value);
    }
    Ok(doc)
}

/// Puts `value` at `steps` under `doc`, making objects on the way; a value
/// already on the way (not an object) is kept and this one dropped.
fn insert(doc: &mut Value, steps: &[String], value: Value) {
    let Some((step, rest)) = steps.split_first() else {
        *doc = value;
        return;
    };
    let Value::Object(map) = doc else {
        return;
    };
    let slot = map
        .entry(step.clone())
        .or_insert_with(|| Value::Object(Map::new()));
    insert(slot, rest, value);
}

#[cfg(test)]
mod tests;
