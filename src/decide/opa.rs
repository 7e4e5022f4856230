//! Decide stage: modules built by `opa build -t wasm` (OPA Wasm ABI 1.2+),
//! driven through `opa_eval` with the host builtins decision policies need.

use std::sync::Arc;

use wasmtime::Module;

use super::engine::PolicyEngine;
use super::module::{Answer, Fault};

/// True when the module is an OPA Wasm module (it exports the ABI version).
pub fn is_opa(module: &Module) -> bool {
    module.get_export("opa_wasm_abi_version").is_some()
}

/// A loaded OPA module.
#[derive(Debug)]
pub struct OpaModule {}

impl OpaModule {
    pub fn new(
        _engine: &Arc<PolicyEngine>,
        _module: &Module,
        _name: &Arc<str>,
        _max_memory: usize,
        _entrypoint: Option<&str>,
    ) -> Result<Self, Fault> {
        Err(Fault::Load("OPA modules are not supported yet".into()))
    }

    pub fn evaluate(&self, _input: &[u8], _ticks: u64) -> Result<Answer, Fault> {
        Err(Fault::Load("OPA modules are not supported yet".into()))
    }
}
