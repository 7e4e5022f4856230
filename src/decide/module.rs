//! Decide stage: one loaded policy module — compiled, its imports checked,
//! its own test vectors passed — and the pool of warm instances that answer
//! decisions. An instance that faults is thrown away; the next call gets a
//! fresh one, so one bad call never poisons another.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest;
use wasmtime::{InstancePre, Store, StoreLimits, Trap};

mod cost;
mod vectors;

use cost::Move;
pub(crate) use cost::RunTimer;

use super::Phase;
use super::abi::{self, Warm};
pub use super::abi::{Answer, parse_answer};
use super::cache::ModuleCache;
use super::engine::{PolicyEngine, TICK};
use super::input::{Declared, Document};
use super::opa::{self, OpaModule};
use crate::config::{self, PolicyPhase};

/// Deadline for instantiating and configuring an instance.
const CONFIGURE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);
/// Idle instances kept per module.
const MAX_IDLE: usize = 16;

/// Why a module could not give a decision. Every one denies the call with
/// reason `policy_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    #[error("module trapped: {0}")]
    Trap(String),
    #[error("module ran past its deadline")]
    Deadline,
    #[error("module exceeded its memory limit")]
    Memory,
    #[error("module lacks the export {0:?}")]
    MissingExport(&'static str),
    #[error("module output is not a decision: {0}")]
    Malformed(String),
    #[error("module output is {0} bytes, over the limit")]
    OutputTooLarge(usize),
    #[error("module refused its configuration: {0}")]
    Configure(String),
    #[error("{0}")]
    Load(String),
}

impl Fault {
    /// Classifies an error from a call into the module.
    pub fn from_call(e: wasmtime::Error) -> Self {
        match e.downcast_ref::<Trap>() {
            Some(Trap::Interrupt) => Self::Deadline,
            Some(trap) => {
                let text = format!("{e:#}");
                if text.contains("grow") && text.contains("memory")
                    || text.contains("resource limit")
                {
                    Self::Memory
                } else {
                    Self::Trap(trap.to_string())
                }
            }
            None => {
                let text = format!("{e:#}");
                if text.contains("memory") && (text.contains("limit") || text.contains("grow")) {
                    Self::Memory
                } else {
                    Self::Trap(text)
                }
            }
        }
    }

    /// Metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Trap(_) => "trap",
            Self::Deadline => "deadline",
            Self::Memory => "memory",
            Self::MissingExport(_) => "missing_export",
            Self::Malformed(_) => "malformed_output",
            Self::OutputTooLarge(_) => "output_too_large",
            Self::Configure(_) => "configure",
            Self::Load(_) => "load",
        }
    }
}

/// What the store of every instance carries.
#[derive(Debug)]
pub struct HostState {
    pub limits: StoreLimits,
    pub module: Arc<str>,
}

enum Flavor {
    Toolgate {
        pre: InstancePre<HostState>,
        pool: Mutex<Vec<Warm>>,
    },
    Opa(OpaModule),
}

/// A module ready to decide.
pub struct PolicyModule {
    pub name: Arc<str>,
    pub version: Arc<str>,
    /// The first 12 hex digits of `hash`, as decision logs show it.
    pub short_hash: Arc<str>,
    /// SHA-256 of the module bytes, hex.
    pub hash: String,
    /// The files it was loaded from (module, vectors) and the SHA-256 of
    /// the bytes read from each: what a reload compares against.
    sources: Vec<(PathBuf, String)>,
    routes: Vec<String>,
    tools: Vec<String>,
    phases: Vec<PolicyPhase>,
    config: Option<Vec<u8>>,
    /// The input fields the module declared; `None`: the whole input.
    declared: Option<Arc<Declared>>,
    engine: Arc<PolicyEngine>,
    deadline_ticks: u64,
    max_memory: usize,
    flavor: Flavor,
    /// Recent evaluation time: where the module runs (see `cost.rs`).
    cost: cost::Cost,
}

impl std::fmt::Debug for PolicyModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyModule")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl PolicyModule {
    /// Reads, compiles and checks a module, then runs its vectors.
    pub fn load(
        engine: &Arc<PolicyEngine>,
        cfg: &config::Policy,
        limits: &config::PolicyLimits,
    ) -> Result<Self, Fault> {
        let wasm = std::fs::read(&cfg.module)
            .map_err(|e| Fault::Load(format!("cannot read {}: {e}", cfg.module.display())))?;
        let hash = hex::encode(digest::digest(&digest::SHA256, &wasm));
        let cache = ModuleCache::open(limits.cache_dir.as_deref())
            .map_err(|e| Fault::Load(e.to_string()))?;
        let module = engine
            .compile(&wasm, &hash, cache.as_ref())
            .map_err(|e| Fault::Load(e.to_string()))?;
        let config = cfg
            .config
            .as_ref()
            .map(|v| {
                serde_json::to_vec(v)
                    .map_err(|e| Fault::Load(format!("config is not JSON-representable: {e}")))
            })
            .transpose()?;
        let deadline_ticks = ticks(limits.deadline);
        let name: Arc<str> = Arc::from(cfg.name.as_str());
        let (flavor, version) = if opa::is_opa(&module) {
            let opa = OpaModule::new(
                engine,
                &module,
                &name,
                limits.max_memory,
                cfg.entrypoint.as_deref(),
            )?;
            (Flavor::Opa(opa), Arc::from("opa"))
        } else {
            let linker = abi::linker(engine)?;
            let pre = linker.instantiate_pre(&module).map_err(|e| {
                Fault::Load(format!(
                    "imports something toolgate does not provide: {e:#}"
                ))
            })?;
            (
                Flavor::Toolgate {
                    pre,
                    pool: Mutex::new(Vec::new()),
                },
                Arc::from(""),
            )
        };
        let mut loaded = Self {
            name,
            version,
            short_hash: Arc::from(&hash[..12.min(hash.len())]),
            sources: vec![(cfg.module.clone(), hash.clone())],
            hash,
            routes: cfg.routes.clone(),
            tools: cfg.tools.clone(),
            phases: cfg.phases.clone(),
            config,
            declared: None,
            engine: Arc::clone(engine),
            deadline_ticks,
            max_memory: limits.max_memory,
            flavor,
            cost: cost::Cost::default(),
        };
        // A first instance proves the module loads and configures, says
        // what it is and reads, and stays warm.
        if let Flavor::Toolgate { pool, .. } = &loaded.flavor {
            let mut warm = loaded.warm(loaded.config.as_deref())?;
            let about = warm.about()?;
            loaded.version = Arc::from(about.version.as_str());
            loaded.declared = about.fields.map(Arc::new);
            if let Ok(mut idle) = pool.lock() {
                idle.push(warm);
            }
        }
        if let Some(path) = &cfg.vectors {
            let vectors_hash = loaded.run_vectors(path)?;
            loaded.sources.push((path.clone(), vectors_hash));
        } else {
            tracing::warn!(policy = %cfg.name, "policy module has no test vectors; it is activated unchecked");
        }
        loaded.prewarm();
        Ok(loaded)
    }

    /// Fills the pool with one configured instance per core, off the
    /// request path, so the first calls after a (re)load do not pay for
    /// instantiating and configuring one.
    fn prewarm(&self) {
        let Flavor::Toolgate { pool, .. } = &self.flavor else {
            return;
        };
        let target = std::thread::available_parallelism()
            .map_or(1, std::num::NonZero::get)
            .min(MAX_IDLE);
        loop {
            if pool.lock().map_or(true, |p| p.len() >= target) {
                return;
            }
            let Ok(warm) = self.warm(self.config.as_deref()) else {
                // The module configured once already; calls will retry.
                return;
            };
            if let Ok(mut p) = pool.lock() {
                p.push(warm);
            }
        }
    }

    /// True if this module decides calls to `tool` on `route` in `phase`.
    pub fn applies(&self, route: &str, tool: &str, phase: Phase) -> bool {
        // Auto-approving grant requests is opt-in: only modules that name
        // the `grant` phase decide them.
        let phase_ok = (self.phases.is_empty() && phase != Phase::Grant)
            || self.phases.iter().any(|p| {
                matches!(
                    (p, phase),
                    (PolicyPhase::Call, Phase::Call)
                        | (PolicyPhase::List, Phase::List)
                        | (PolicyPhase::Grant, Phase::Grant)
                )
            });
        let route_ok = self.routes.is_empty() || self.routes.iter().any(|r| r == route);
        let tool_ok = self.tools.is_empty()
            || self
                .tools
                .iter()
                .any(|g| toolgate_pattern::glob::matches(g, tool));
        phase_ok && route_ok && tool_ok
    }

    /// The files this module was loaded from, with the SHA-256 of each.
    pub fn sources(&self) -> &[(PathBuf, String)] {
        &self.sources
    }

    /// The input fields the module declared (`None`: the whole input).
    pub fn declared(&self) -> Option<&Declared> {
        self.declared.as_deref()
    }

    /// Whether the module's recent evaluations were quick enough to run
    /// on the calling (async) thread (see `cost.rs`).
    pub fn runs_inline(&self) -> bool {
        self.cost.inline()
    }

    /// Starts timing one evaluation of this module.
    pub(crate) fn start_run(&self) -> RunTimer {
        self.cost.start()
    }

    /// Notes one evaluation, and whether it ran until its deadline stopped
    /// it (see [`Self::runs_inline`]); returns how long it took by the
    /// wall clock.
    pub(crate) fn observe(&self, timer: RunTimer, reached_deadline: bool) -> Duration {
        let (took, moved) = self.cost.observe(timer, reached_deadline);
        match moved {
            Some(Move::ToPool) => tracing::info!(
                policy = %self.name,
                "policy module is slow (its recent runs take 1 ms or more): decided on the policy pool"
            ),
            Some(Move::Inline) => tracing::info!(
                policy = %self.name,
                "policy module is quick again: decided on the calling thread"
            ),
            None => {}
        }
        took
    }

    /// The bytes [`Self::evaluate`] gives this module for `input`, owned:
    /// to evaluate it on another thread.
    pub fn input_bytes(&self, input: &super::input::Encoded<'_>) -> Vec<u8> {
        let declared = match &self.flavor {
            Flavor::Toolgate { .. } => self.declared.as_ref(),
            Flavor::Opa(_) => None,
        };
        input.with(declared, <[u8]>::to_vec)
    }

    /// One decision from the module, or why there is none.
    pub fn evaluate<D: Document + ?Sized>(&self, input: &D) -> Result<Answer, Fault> {
        self.hold().evaluate(input)
    }

    /// An instance of this module held for a run of decisions on one
    /// thread (the tools of one list): taken from the pool at its first
    /// decision and given back once, when the hold ends.
    pub fn hold(&self) -> Held<'_> {
        Held {
            module: self,
            warm: None,
        }
    }

    /// Creates, configures and drops one fresh instance: what a call pays
    /// when no warm instance is idle (benchmarks measure it).
    pub fn instantiate_once(&self) -> Result<(), Fault> {
        match &self.flavor {
            Flavor::Toolgate { .. } => self.warm(self.config.as_deref()).map(drop),
            Flavor::Opa(_) => Ok(()),
        }
    }

    fn warm(&self, config: Option<&[u8]>) -> Result<Warm, Fault> {
        let Flavor::Toolgate { pre, .. } = &self.flavor else {
            return Err(Fault::Load("not a toolgate-ABI module".into()));
        };
        let store = Store::new(
            &self.engine.engine,
            HostState {
                limits: abi::store_limits(self.max_memory),
                module: Arc::clone(&self.name),
            },
        );
        let mut store = store;
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        Warm::new(pre, store, config, ticks(CONFIGURE_DEADLINE))
    }
}

/// A warm instance of one module, held for a run of decisions (see
/// [`PolicyModule::hold`]).
pub struct Held<'m> {
    module: &'m PolicyModule,
    warm: Option<Warm>,
}

impl std::fmt::Debug for Held<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("module", &self.module.name)
            .finish_non_exhaustive()
    }
}

impl Held<'_> {
    /// One decision from the module, or why there is none.
    pub fn evaluate<D: Document + ?Sized>(&mut self, input: &D) -> Result<Answer, Fault> {
        let m = self.module;
        match &m.flavor {
            Flavor::Toolgate { pool, .. } => {
                let mut warm = match self.warm.take() {
                    Some(w) => w,
                    None => match pool.lock().ok().and_then(|mut p| p.pop()) {
                        Some(w) => w,
                        None => m.warm(m.config.as_deref())?,
                    },
                };
                // Only an instance that answered a well-formed decision is
                // kept (and goes back to the pool); any fault discards it.
                let answer = input.with_fields(m.declared.as_ref(), |doc| {
                    warm.decide(doc, m.deadline_ticks)
                })?;
                self.warm = Some(warm);
                Ok(answer)
            }
            Flavor::Opa(opa) => input.with_fields(None, |doc| opa.evaluate(doc, m.deadline_ticks)),
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let (Some(warm), Flavor::Toolgate { pool, .. }) = (self.warm.take(), &self.module.flavor)
        else {
            return;
        };
        if let Ok(mut p) = pool.lock()
            && p.len() < MAX_IDLE
        {
            p.push(warm);
        }
    }
}

pub(super) fn ticks(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros() / TICK.as_micros().max(1))
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loaded_module_has_one_warm_instance_per_core() {
        let engine = PolicyEngine::global().expect("engine");
        let cfg = config::Policy {
            name: "prewarm".into(),
            module: std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/policies/allow.wat"),
            vectors: None,
            routes: Vec::new(),
            tools: Vec::new(),
            phases: Vec::new(),
            config: None,
            entrypoint: None,
        };
        let limits = config::PolicyLimits {
            cache_dir: Some(std::env::temp_dir().join("toolgate-test-cache")),
            ..config::PolicyLimits::default()
        };
        let module = PolicyModule::load(&engine, &cfg, &limits).expect("loads");
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let Flavor::Toolgate { pool, .. } = &module.flavor else {
            panic!("a toolgate module");
        };
        assert_eq!(pool.lock().unwrap().len(), cores.min(MAX_IDLE));
    }
}
