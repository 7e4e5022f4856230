//! Native tests of a module against its `vectors.json` (ABI.md "Test
//! vectors"), through the same JSON path the exports use — inputs trimmed
//! to the module's declared fields, as toolgate sends them — so `cargo test`
//! on the host target checks what toolgate checks before it activates the
//! module — no WASM runtime needed.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::Value;

use crate::runtime::Runtime;
use crate::{Policy, Verdict, fields, values};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorFile {
    #[serde(default)]
    config: Value,
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    name: String,
    #[serde(default)]
    input: Value,
    expect: Verdict,
}

/// Configures `P` with the file's `config`, decides every vector's `input`
/// (trimmed to [`Policy::INPUT_FIELDS`]) and compares with its `expect`.
/// `Err` lists every failing vector (and refuses a file with no vectors,
/// with two vectors of one name, or a malformed field declaration).
pub fn run_vectors<P: Policy>(vectors_json: &str) -> Result<(), String> {
    fields::check(P::INPUT_FIELDS, P::INPUT_VALUES)?;
    let file: VectorFile =
        serde_json::from_str(vectors_json).map_err(|e| format!("vectors file is invalid: {e}"))?;
    if file.vectors.is_empty() {
        return Err("vectors file has no vectors".into());
    }
    let mut runtime = Runtime::<P>::new();
    let configured = runtime.configure_json(file.config.to_string().as_bytes());
    if configured != br#"{"ok":true}"# {
        return Err(format!(
            "config refused: {}",
            String::from_utf8_lossy(configured)
        ));
    }
    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for vector in &file.vectors {
        if !names.insert(vector.name.as_str()) {
            failures.push(format!("{:?}: a second vector has this name", vector.name));
        }
        let output = runtime.decide_json(&as_sent::<P>(&vector.input));
        if let Err(why) = compare(output, vector.expect) {
            failures.push(format!("{:?}: {why}", vector.name));
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} of {} vectors failed:\n  {}",
        failures.len(),
        file.vectors.len(),
        failures.join("\n  ")
    ))
}

/// The output JSON of one decision: configure `P` with `config`, decide
/// `input` (trimmed to [`Policy::INPUT_FIELDS`]). For module unit tests
/// that check reasons and annotations.
pub fn output<P: Policy>(config: &Value, input: &Value) -> Value {
    let mut runtime = Runtime::<P>::new();
    let configured = runtime.configure_json(config.to_string().as_bytes());
    if configured != br#"{"ok":true}"# {
        return serde_json::from_slice(configured).unwrap_or(Value::Null);
    }
    let output = runtime.decide_json(&as_sent::<P>(input));
    serde_json::from_slice(output).unwrap_or(Value::Null)
}

/// The input as toolgate sends it to `P`: the values form, or the document
/// trimmed to the declared fields.
fn as_sent<P: Policy>(input: &Value) -> Vec<u8> {
    match P::INPUT_FIELDS {
        Some(fields) if P::INPUT_VALUES => values::encode(input, fields),
        fields => fields::trim(input, fields).to_string().into_bytes(),
    }
}

fn compare(output: &[u8], expect: Verdict) -> Result<(), String> {
    let output: Value =
        serde_json::from_slice(output).map_err(|e| format!("output is not JSON ({e})"))?;
    let got = output
        .get("decision")
        .and_then(|d| Verdict::deserialize(d).ok())
        .ok_or_else(|| format!("expected {}, got no decision: {output}", expect.as_str()))?;
    if got == expect {
        return Ok(());
    }
    let reason = output.get("reason").and_then(Value::as_str).unwrap_or("");
    Err(format!(
        "expected {}, got {} ({reason})",
        expect.as_str(),
        got.as_str()
    ))
}
