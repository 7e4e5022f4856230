//! Policy module `rego` (decide stage): evaluates Rego policies with the
//! regorus interpreter compiled into the module — no `opa` binary, no host
//! calls. The policies and data are loaded once per instance in `configure`;
//! each call sets `input` to the whole decision input and evaluates one
//! query, whose result [`verdict`] turns into a decision.

mod verdict;

use std::cell::RefCell;
use std::collections::BTreeMap;

use regorus::Engine;
use serde::Deserialize;
use serde_json::Value;
use toolgate_policy_sdk::{Decision, Input, Policy, toolgate_policy};

toolgate_policy!(Rego);

/// The query evaluated when the config names none.
pub const DEFAULT_QUERY: &str = "data.toolgate.decision";

/// The module's config: `{"policies": {"name.rego": "package …"}, "data": {…}, "query": "…"}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Rego sources by file name (the name appears only in error messages).
    #[serde(default)]
    pub policies: BTreeMap<String, String>,
    /// The base `data` document, if any (an object).
    #[serde(default)]
    pub data: Option<Value>,
    /// The query whose value is the decision; default [`DEFAULT_QUERY`].
    #[serde(default)]
    pub query: Option<String>,
}

/// Rego policies loaded into a regorus engine.
#[derive(Debug)]
pub struct Rego {
    /// `decide` takes `&self` but regorus evaluates through `&mut Engine`;
    /// the instance has one thread and no call re-enters, so the cell is
    /// never found borrowed (if it were, the call is denied, not trapped).
    engine: RefCell<Engine>,
    query: String,
}

// === impl Rego ===

impl Policy for Rego {
    const RAW_INPUT: bool = true;

    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        let mut problems = Vec::new();
        if config.policies.is_empty() {
            problems.push("no Rego policies configured (`policies` is empty)".to_owned());
        }
        let mut engine = Engine::new();
        for (name, source) in config.policies {
            if let Err(e) = engine.add_policy(name.clone(), source) {
                problems.push(format!("policy {name:?}: {e}"));
            }
        }
        match config.data {
            None | Some(Value::Null) => {}
            Some(data @ Value::Object(_)) => {
                if let Err(e) = engine.add_data(regorus::Value::from(data)) {
                    problems.push(format!("data: {e}"));
                }
            }
            Some(_) => problems.push("data must be an object".to_owned()),
        }
        let query = config.query.unwrap_or_else(|| DEFAULT_QUERY.to_owned());
        if query.trim().is_empty() {
            problems.push("query is empty".to_owned());
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        // One evaluation now, with an empty input: it checks the query's
        // syntax and lets regorus analyse the policies once, off the call
        // path. Evaluation errors here (rules that need an input) are fine.
        engine.set_input(regorus::Value::new_object());
        if let Err(e) = engine.eval_query(query.clone(), false) {
            let text = e.to_string();
            if is_query_syntax_error(&text) {
                return Err(format!("query {query:?}: {text}"));
            }
        }
        Ok(Self {
            engine: RefCell::new(engine),
            query,
        })
    }

    fn decide(&self, input: &Input) -> Decision {
        let Ok(mut engine) = self.engine.try_borrow_mut() else {
            return Decision::deny("rego engine is busy (re-entered call)");
        };
        engine.set_input(regorus::Value::from(input.raw.clone()));
        match engine.eval_query(self.query.clone(), false) {
            Ok(results) => verdict::from_results(&results),
            Err(e) => verdict::evaluation_error(&e.to_string()),
        }
    }
}

/// Whether an error from the warm-up evaluation is about the query itself
/// (its text is parsed as `<query.rego>`), not about the policies' rules.
fn is_query_syntax_error(text: &str) -> bool {
    text.contains("<query.rego>")
}

#[cfg(test)]
mod tests;
