//! Decide stage: modules built by `opa build -t wasm` (OPA Wasm ABI 1.2+),
//! loaded as they are. At load toolgate checks the ABI version, refuses a
//! module needing a builtin it does not provide (naming each), and picks the
//! entrypoint; each decision is one `opa_eval` on a warm instance, its
//! result set read as a decision by [`result::answer`] (the rule shapes
//! toolgate understands are documented there).

mod builtins;
mod host;
mod instance;
pub(crate) mod result;
mod sprintf;
#[cfg(test)]
mod tests;
mod time;

use std::sync::{Arc, Mutex};

use serde_json::Value;
use wasmtime::Module;

use super::engine::PolicyEngine;
use super::module::{Answer, Fault, ticks};
use instance::{Blueprint, Instance};

/// Deadline for instantiating an instance and setting it up.
const SETUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
/// Idle instances kept per module.
const MAX_IDLE: usize = 16;

/// True when the module is an OPA Wasm module (it exports the ABI version).
pub fn is_opa(module: &Module) -> bool {
    module.get_export("opa_wasm_abi_version").is_some()
}

/// A loaded OPA module and its warm instances.
pub struct OpaModule {
    // Boxed: it is most of the module's size, and PolicyModule holds an
    // OpaModule inline beside the smaller toolgate-ABI variant.
    blueprint: Box<Blueprint>,
    builtins: Arc<builtins::Table>,
    entrypoint: i32,
    entrypoint_name: String,
    pool: Mutex<Vec<Instance>>,
}

impl std::fmt::Debug for OpaModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpaModule")
            .field("entrypoint", &self.entrypoint_name)
            .field("entrypoint_id", &self.entrypoint)
            .field("builtins", &self.builtins.len())
            .finish_non_exhaustive()
    }
}

impl OpaModule {
    /// Instantiates the module once to check it: ABI 1.2 or later, every
    /// builtin it needs provided, `entrypoint` (default: the first, by id)
    /// present. That instance stays warm for the first decision.
    pub fn new(
        engine: &Arc<PolicyEngine>,
        module: &Module,
        name: &Arc<str>,
        max_memory: usize,
        entrypoint: Option<&str>,
    ) -> Result<Self, Fault> {
        let blueprint = Box::new(Blueprint::new(&engine.engine, module, name, max_memory)?);
        let mut first = Instance::new(&blueprint, Arc::default(), ticks(SETUP_DEADLINE))?;
        let builtins = Arc::new(builtins::table(&first.dump_export("builtins")?)?);
        first.set_builtins(Arc::clone(&builtins));
        let (id, entrypoint_name) =
            choose_entrypoint(&first.dump_export("entrypoints")?, entrypoint)?;
        tracing::debug!(policy = %name, entrypoint = %entrypoint_name, "OPA module loaded");
        Ok(Self {
            blueprint,
            builtins,
            entrypoint: id,
            entrypoint_name,
            pool: Mutex::new(vec![first]),
        })
    }

    /// One decision: the input JSON evaluated at the entrypoint within
    /// `deadline_ticks`. A faulted instance is dropped, not reused.
    pub fn evaluate(&self, input: &[u8], deadline_ticks: u64) -> Result<Answer, Fault> {
        let idle = self.pool.lock().ok().and_then(|mut p| p.pop());
        let mut warm = match idle {
            Some(warm) => warm,
            None => Instance::new(
                &self.blueprint,
                Arc::clone(&self.builtins),
                ticks(SETUP_DEADLINE),
            )?,
        };
        let output = warm.eval(self.entrypoint, input, deadline_ticks)?;
        if let Ok(mut idle) = self.pool.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(warm);
        }
        result::answer(&output)
    }

    /// Memory held by each idle instance, in bytes.
    #[cfg(test)]
    fn idle_memory(&self) -> Vec<usize> {
        self.pool
            .lock()
            .map(|p| p.iter().map(Instance::memory_size).collect())
            .unwrap_or_default()
    }
}

/// Picks the entrypoint: `wanted` by its name (`example/allow`; the dotted
/// `data.example.allow` is accepted too), else the one with the lowest id.
fn choose_entrypoint(entrypoints: &Value, wanted: Option<&str>) -> Result<(i32, String), Fault> {
    let map = entrypoints.as_object().ok_or_else(|| {
        Fault::Load(format!(
            "OPA module's entrypoints() is not an object: {entrypoints}"
        ))
    })?;
    let mut all = Vec::with_capacity(map.len());
    for (name, id) in map {
        let id = id
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| {
                Fault::Load(format!(
                    "OPA module's entrypoint {name:?} has no integer id"
                ))
            })?;
        all.push((id, name.as_str()));
    }
    all.sort_unstable();
    let found = match wanted {
        None => all.first(),
        Some(w) => {
            let slashed = w.strip_prefix("data.").unwrap_or(w).replace('.', "/");
            all.iter()
                .find(|(_, n)| *n == w)
                .or_else(|| all.iter().find(|(_, n)| *n == slashed))
        }
    };
    match (found, wanted) {
        (Some((id, name)), _) => Ok((*id, (*name).to_owned())),
        (None, None) => Err(Fault::Load("OPA module has no entrypoints".into())),
        (None, Some(w)) => {
            let names: Vec<&str> = all.iter().map(|(_, n)| *n).collect();
            Err(Fault::Load(format!(
                "OPA module has no entrypoint {w:?}; it has: {}",
                names.join(", ")
            )))
        }
    }
}
