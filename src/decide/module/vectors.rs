//! Decide stage, before activation: a module's own test vectors
//! (policy-modules/ABI.md "Test vectors") must all pass.

use std::path::Path;

use serde_json::Value;

use super::{CONFIGURE_DEADLINE, Fault, Flavor, PolicyModule, ticks};

impl PolicyModule {
    /// Runs the module's own test vectors; any mismatch refuses the module.
    /// Returns the SHA-256 (hex) of the vectors file as it was read.
    pub(super) fn run_vectors(&self, path: &Path) -> Result<String, Fault> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Fault::Load(format!("cannot read vectors {}: {e}", path.display())))?;
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| Fault::Load(format!("vectors {} are not JSON: {e}", path.display())))?;
        let vectors = doc
            .get("vectors")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Fault::Load(format!(
                    "vectors {} need a \"vectors\" array",
                    path.display()
                ))
            })?;
        // Vectors assume their own config, if they carry one.
        let config = doc.get("config").map(|c| c.to_string().into_bytes());
        let config = config.as_deref().or(self.config.as_deref());
        let mut failures = Vec::new();
        let mut toolgate = match &self.flavor {
            Flavor::Toolgate { .. } => Some(self.warm(config)?),
            Flavor::Opa(_) => None,
        };
        for (i, vector) in vectors.iter().enumerate() {
            let name = vector
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("unnamed")
                .to_owned();
            let expect = vector.get("expect").and_then(Value::as_str).unwrap_or("");
            // Inputs are sent as in service: trimmed to exactly the
            // declared fields, or as their values (a module reading an
            // undeclared field fails here).
            let input = vector.get("input").unwrap_or(&Value::Null);
            let input = match &self.declared {
                Some(declared) => declared.encode_value(input),
                None => input.to_string().into_bytes(),
            };
            let got = match (&mut toolgate, &self.flavor) {
                (Some(warm), _) => {
                    let out = warm.decide(&input, ticks(CONFIGURE_DEADLINE));
                    if out.is_err() {
                        // A faulted instance is not reused, not even here.
                        toolgate = self.warm(config).ok();
                    }
                    out
                }
                (None, Flavor::Opa(opa)) => opa.evaluate(&input, ticks(CONFIGURE_DEADLINE)),
                (None, Flavor::Toolgate { .. }) => Err(Fault::Load("no instance".into())),
            };
            match got {
                Ok(answer) if answer.verdict.as_str() == expect => {}
                Ok(answer) => failures.push(format!(
                    "#{i} {name:?}: expected {expect}, got {}{}",
                    answer.verdict.as_str(),
                    answer.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                )),
                Err(fault) => failures.push(format!(
                    "#{i} {name:?}: expected {expect}, module faulted: {fault}"
                )),
            }
        }
        if failures.is_empty() {
            Ok(hex::encode(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                text.as_bytes(),
            )))
        } else {
            Err(Fault::Load(format!(
                "{} of {} test vectors failed: {}",
                failures.len(),
                vectors.len(),
                failures.join("; ")
            )))
        }
    }
}
