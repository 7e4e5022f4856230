//! Decide stage: one live instance of a toolgate-ABI policy module (see
//! policy-modules/ABI.md) — configured once, then asked for decisions —
//! and the host imports it may use.

use serde_json::Value;
use wasmtime::{
    Caller, Instance, InstancePre, Linker, Memory, Store, StoreLimits, StoreLimitsBuilder,
    TypedFunc,
};

use super::engine::PolicyEngine;
use super::module::{Fault, HostState};

/// Largest decision JSON a module may return.
pub const MAX_OUTPUT: usize = 1 << 20;

/// A toolgate-ABI instance ready for `decide`.
pub struct Warm {
    pub store: Store<HostState>,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    decide: TypedFunc<(i32, i32), i64>,
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warm").finish_non_exhaustive()
    }
}

/// The imports a module may use: `toolgate.log` and `toolgate.now_ms`.
pub fn linker(engine: &PolicyEngine) -> Result<Linker<HostState>, Fault> {
    let mut linker = Linker::new(&engine.engine);
    linker
        .func_wrap("toolgate", "log", |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| {
            let len = usize::try_from(len).unwrap_or(0).min(1024);
            let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
                return;
            };
            let mut buf = vec![0u8; len];
            if memory
                .read(&caller, usize::try_from(ptr).unwrap_or(usize::MAX), &mut buf)
                .is_ok()
            {
                let module = caller.data().module.clone();
                tracing::info!(target: "toolgate::policy", module = %module, "{}", String::from_utf8_lossy(&buf));
            }
        })
        .map_err(|e| Fault::Load(format!("{e:#}")))?;
    linker
        .func_wrap("toolgate", "now_ms", || -> i64 {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        })
        .map_err(|e| Fault::Load(format!("{e:#}")))?;
    Ok(linker)
}

pub fn store_limits(max_memory: usize) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(max_memory)
        .instances(1)
        .memories(1)
        .tables(4)
        .trap_on_grow_failure(true)
        .build()
}

impl Warm {
    /// Instantiates and configures one instance. `config` is the module's
    /// configuration JSON; `ticks` the deadline for instantiation and
    /// configuration (larger than a decision's: a Rego or Cedar module
    /// compiles its policies here).
    pub fn new(
        pre: &InstancePre<HostState>,
        mut store: Store<HostState>,
        config: Option<&[u8]>,
        ticks: u64,
    ) -> Result<(Self, String), Fault> {
        store.set_epoch_deadline(ticks);
        let instance = pre.instantiate(&mut store).map_err(Fault::from_call)?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or(Fault::MissingExport("memory"))?;
        let version = typed::<(), i32>(&instance, &mut store, "toolgate_abi_version")?
            .call(&mut store, ())
            .map_err(Fault::from_call)?;
        if version != 1 {
            return Err(Fault::Load(format!(
                "module speaks toolgate ABI {version}; this host speaks 1"
            )));
        }
        let alloc = typed::<i32, i32>(&instance, &mut store, "toolgate_alloc")?;
        let decide = typed::<(i32, i32), i64>(&instance, &mut store, "toolgate_decide")?;
        let mut warm = Self {
            store,
            memory,
            alloc,
            decide,
        };
        let module_version =
            match instance.get_typed_func::<(), i64>(&mut warm.store, "toolgate_module_version") {
                Ok(f) => {
                    let packed = f.call(&mut warm.store, ()).map_err(Fault::from_call)?;
                    String::from_utf8_lossy(&warm.read(packed)?).into_owned()
                }
                Err(_) => "unversioned".to_owned(),
            };
        let configure = instance
            .get_typed_func::<(i32, i32), i64>(&mut warm.store, "toolgate_configure")
            .ok();
        // A config the module cannot take must not be silently dropped: the
        // module's built-in defaults may be more permissive.
        if config.is_some() && configure.is_none() {
            return Err(Fault::MissingExport("toolgate_configure"));
        }
        if let (Some(config), Some(configure)) = (config, configure) {
            let (ptr, len) = warm.write(config)?;
            let packed = configure
                .call(&mut warm.store, (ptr, len))
                .map_err(Fault::from_call)?;
            let answer: Value = serde_json::from_slice(&warm.read(packed)?)
                .map_err(|e| Fault::Malformed(format!("configure answered non-JSON: {e}")))?;
            if let Some(why) = answer.get("error") {
                let why = why.as_str().map_or_else(|| why.to_string(), str::to_owned);
                return Err(Fault::Configure(why));
            }
        }
        Ok((warm, module_version))
    }

    /// One decision: input JSON in, output JSON out, under `ticks`.
    pub fn decide(&mut self, input: &[u8], ticks: u64) -> Result<Vec<u8>, Fault> {
        self.store.set_epoch_deadline(ticks);
        let (ptr, len) = self.write(input)?;
        let packed = self
            .decide
            .call(&mut self.store, (ptr, len))
            .map_err(Fault::from_call)?;
        self.read(packed)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(i32, i32), Fault> {
        let len = i32::try_from(bytes.len())
            .map_err(|_| Fault::Malformed("input larger than 2 GiB".into()))?;
        let ptr = self
            .alloc
            .call(&mut self.store, len)
            .map_err(Fault::from_call)?;
        let at = usize::try_from(ptr)
            .map_err(|_| Fault::Malformed("toolgate_alloc returned a negative pointer".into()))?;
        self.memory.write(&mut self.store, at, bytes).map_err(|_| {
            Fault::Malformed("toolgate_alloc returned a buffer outside memory".into())
        })?;
        Ok((ptr, len))
    }

    fn read(&self, packed: i64) -> Result<Vec<u8>, Fault> {
        // The i64 is a bit pattern: (ptr << 32) | len, both u32.
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        if len > MAX_OUTPUT {
            return Err(Fault::OutputTooLarge(len));
        }
        let mut out = vec![0u8; len];
        self.memory
            .read(&self.store, ptr, &mut out)
            .map_err(|_| Fault::Malformed("output points outside memory".into()))?;
        Ok(out)
    }
}

fn typed<P, R>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &'static str,
) -> Result<TypedFunc<P, R>, Fault>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    instance
        .get_typed_func::<P, R>(&mut *store, name)
        .map_err(|_| Fault::MissingExport(name))
}
