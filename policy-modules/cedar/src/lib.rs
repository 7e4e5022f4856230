//! Policy module `cedar` (decide stage): evaluates Cedar policies with
//! cedar-policy compiled into the module. `configure` parses the policies,
//! entities and schema once; each call maps the decision input to a Cedar
//! request ([`request`]), asks the authorizer, and maps its answer back
//! ([`verdict`]).

mod config;
mod request;
mod value;
mod verdict;

use cedar_policy::{Authorizer, Entities, PolicySet};
use toolgate_policy_sdk::{Decision, Input, Policy, toolgate_policy};

pub use config::Config;

toolgate_policy!(Cedar);

/// Cedar policies and entities, parsed and checked.
#[derive(Debug)]
pub struct Cedar {
    policies: PolicySet,
    /// The config's entities; each call adds its principal and resource.
    entities: Entities,
    authorizer: Authorizer,
}

// === impl Cedar ===

impl Policy for Cedar {
    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        let (policies, entities) = config.load()?;
        Ok(Self {
            policies,
            entities,
            authorizer: Authorizer::new(),
        })
    }

    fn decide(&self, input: &Input) -> Decision {
        let call = match request::build(input, &self.entities) {
            Ok(call) => call,
            Err(e) => return Decision::deny(format!("could not build the Cedar request: {e}")),
        };
        let response = self
            .authorizer
            .is_authorized(&call.request, &self.policies, &call.entities);
        verdict::from_response(&response, &self.policies)
    }
}

#[cfg(test)]
mod tests;
