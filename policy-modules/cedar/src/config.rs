//! The module's config (start-up, not the call path): Cedar policies, extra
//! entities and an optional schema, parsed and checked once per instance.

use std::str::FromStr;

use cedar_policy::{Entities, PolicyId, PolicySet, Schema, ValidationMode, Validator};
use serde::Deserialize;
use serde_json::Value;

/// `{"policies": "permit(…);", "entities": [...], "schema": …}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cedar policy text. A policy's id is its `@id("…")` annotation, else
    /// `policy0`, `policy1`, … in order.
    #[serde(default)]
    pub policies: String,
    /// Extra entities in Cedar's JSON entity format (groups, parents of
    /// agents, routes and users, action groups).
    #[serde(default)]
    pub entities: Vec<Value>,
    /// A Cedar schema, as Cedar schema text (a string) or Cedar's JSON schema
    /// format (an object). When given, the policies are validated against it
    /// (strict mode) and the entities must conform to it.
    #[serde(default)]
    pub schema: Option<Value>,
}

// === impl Config ===

impl Config {
    /// The policy set and entities, or every problem found, joined.
    pub(crate) fn load(self) -> Result<(PolicySet, Entities), String> {
        let mut problems = Vec::new();
        let schema = match self.schema {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Schema::from_cedarschema_str(&text)
                .map(|(schema, _warnings)| schema)
                .map_err(|e| problems.push(format!("schema: {}", render_in(&e, &text))))
                .ok(),
            Some(json @ Value::Object(_)) => Schema::from_json_value(json)
                .map_err(|e| problems.push(format!("schema: {}", render(&e))))
                .ok(),
            Some(_) => {
                problems.push("schema must be Cedar schema text or a JSON schema object".into());
                None
            }
        };
        let policies = match policy_set(&self.policies) {
            Ok(policies) => Some(policies),
            Err(why) => {
                problems.push(why);
                None
            }
        };
        if let (Some(policies), Some(schema)) = (&policies, &schema) {
            let result = Validator::new(schema.clone()).validate(policies, ValidationMode::Strict);
            for error in result.validation_errors() {
                problems.push(format!(
                    "policy {} fails the schema: {error}",
                    error.policy_id()
                ));
            }
        }
        let entities = Entities::from_json_value(Value::Array(self.entities), schema.as_ref())
            .map_err(|e| problems.push(format!("entities: {}", render(&e))))
            .ok();
        match (policies, entities) {
            (Some(policies), Some(entities)) if problems.is_empty() => Ok((policies, entities)),
            _ => Err(problems.join("; ")),
        }
    }
}

/// Parses the policy text, renaming each policy after its `@id` annotation.
fn policy_set(text: &str) -> Result<PolicySet, String> {
    if text.trim().is_empty() {
        return Err("no Cedar policies configured (`policies` is empty)".into());
    }
    let parsed = PolicySet::from_str(text)
        .map_err(|e| format!("policies do not parse: {}", render_in(&e, text)))?;
    if let Some(template) = parsed.templates().next() {
        return Err(format!(
            "policy {} is a template (it uses ?principal or ?resource); templates are not supported",
            template.id()
        ));
    }
    let renamed = parsed
        .policies()
        .map(|policy| match policy.annotation("id") {
            Some(id) if !id.is_empty() => policy.new_id(PolicyId::new(id)),
            _ => policy.clone(),
        });
    PolicySet::from_policies(renamed).map_err(|e| format!("policy ids: {}", render(&e)))
}

/// An error with its causes and help, on one line (Cedar's errors are
/// diagnostics whose `Display` is only the headline).
fn render(error: &dyn miette::Diagnostic) -> String {
    let mut text = error.to_string();
    let mut push = |cause: String| {
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    };
    let mut source = error.source();
    while let Some(cause) = source {
        push(cause.to_string());
        source = cause.source();
    }
    for related in error.related().into_iter().flatten() {
        push(related.to_string());
    }
    if let Some(help) = error.help() {
        text.push_str(&format!(" (help: {help})"));
    }
    text
}

/// [`render`], with the line and column in `source` of the error's first label.
fn render_in(error: &dyn miette::Diagnostic, source: &str) -> String {
    let offset = error
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let Some(offset) = offset.filter(|o| *o <= source.len()) else {
        return render(error);
    };
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!("{} (at line {line}, column {column})", render(error))
}
