//! Decide stage: the one wasmtime engine every policy module runs on —
//! pooling allocator, epoch-based deadlines, capped stacks, no WASI — and
//! compiling through the on-disk cache of compiled modules (`cache`).

use std::hash::{Hash, Hasher};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, Module, PoolingAllocationConfig};

use super::cache::ModuleCache;

/// How often the epoch advances: the resolution of module deadlines.
pub const TICK: Duration = Duration::from_millis(1);
/// Most instances alive at once across all modules (pooling slots).
const POOL_SLOTS: u32 = 256;
/// Stack a module may use.
const MAX_STACK: usize = 512 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    #[error("cannot compile the module: {0}")]
    Compile(String),
}

/// The shared engine.
#[derive(Debug)]
pub struct PolicyEngine {
    pub engine: Engine,
    compat: String,
}

impl PolicyEngine {
    /// The process-wide engine, created on first use (its epoch ticker runs
    /// for the life of the process).
    pub fn global() -> Result<Arc<Self>, Error> {
        static ENGINE: OnceLock<Result<Arc<PolicyEngine>, String>> = OnceLock::new();
        ENGINE
            .get_or_init(|| Self::new().map(Arc::new).map_err(|e| e.to_string()))
            .clone()
            .map_err(Error::Engine)
    }

    fn new() -> Result<Self, Error> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.max_wasm_stack(MAX_STACK);
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(POOL_SLOTS);
        pool.total_memories(POOL_SLOTS);
        pool.total_tables(POOL_SLOTS);
        pool.max_memory_size(4 << 30);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = match Engine::new(&config) {
            Ok(engine) => engine,
            Err(e) => {
                // Some sandboxes refuse the pool's address-space reservation:
                // fall back to allocating instances on demand.
                tracing::warn!(error = %e, "pooling allocator unavailable; allocating module instances on demand");
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
                Engine::new(&config).map_err(|e| Error::Engine(e.to_string()))?
            }
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let compat = format!("{:016x}", hasher.finish());
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("toolgate-policy-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            })
            .map_err(|e| Error::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Self { engine, compat })
    }

    /// Compiles `wasm` (binary or text), through the disk cache when one is
    /// given: the entry is named by the module's SHA-256 plus the engine's
    /// compatibility hash (an upgraded toolgate never loads stale code) and
    /// loaded only if its signature holds (see `cache`); anything else is
    /// compiled afresh and the entry rewritten.
    pub fn compile(
        &self,
        wasm: &[u8],
        hash: &str,
        cache: Option<&ModuleCache>,
    ) -> Result<Module, Error> {
        let Some(cache) = cache else {
            return Module::new(&self.engine, wasm).map_err(|e| Error::Compile(format!("{e:#}")));
        };
        let name = format!("{hash}-{}.cwasm", self.compat);
        match cache.load(&self.engine, &name) {
            Ok(Some(module)) => return Ok(module),
            Ok(None) => {}
            Err(refused) => {
                tracing::warn!(entry = %cache.entry(&name).display(), "refusing a cached compiled module, recompiling: {refused}");
            }
        }
        let module =
            Module::new(&self.engine, wasm).map_err(|e| Error::Compile(format!("{e:#}")))?;
        if let Err(e) = cache.store(&module, &name) {
            tracing::warn!(entry = %cache.entry(&name).display(), error = %e, "cannot cache the compiled module");
        }
        Ok(module)
    }
}
