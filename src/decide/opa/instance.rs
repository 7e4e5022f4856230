//! Decide stage: one live instance of an OPA Wasm module — its imported
//! memory sized under the limit, the ABI version checked, and one
//! `opa_eval` per decision on a heap rewound each time.

use std::sync::Arc;

use serde_json::Value;
use wasmtime::{Engine, ExternType, Linker, Memory, MemoryType, Module, Store, TypedFunc, Val};

use super::builtins::Table;
use super::host::{self, CString, Guest, HOST_FUNCS, OpaState};
use crate::decide::abi;
use crate::decide::module::Fault;

const PAGE: u64 = 1 << 16;

/// `opa_eval(reserved, entrypoint, data, input, input_len, heap_ptr, format)
/// -> result`.
type OpaEval = TypedFunc<(i32, i32, i32, i32, i32, i32, i32), i32>;

/// Everything needed to make an instance of one module.
pub(super) struct Blueprint {
    engine: Engine,
    module: Module,
    linker: Linker<OpaState>,
    memory: MemoryType,
    name: Arc<str>,
    max_memory: usize,
}

impl Blueprint {
    /// Checks the module's imports and sizes its memory under `max_memory`.
    pub(super) fn new(
        engine: &Engine,
        module: &Module,
        name: &Arc<str>,
        max_memory: usize,
    ) -> Result<Self, Fault> {
        let mut memory = None;
        for import in module.imports() {
            match (import.module(), import.name(), import.ty()) {
                ("env", "memory", ExternType::Memory(ty)) => memory = Some(ty),
                ("env", f, ExternType::Func(_)) if HOST_FUNCS.contains(&f) => {}
                (m, n, _) => {
                    return Err(Fault::Load(format!(
                        "OPA module imports {m}.{n}, which toolgate does not provide"
                    )));
                }
            }
        }
        let ty = memory.ok_or_else(|| {
            Fault::Load("an OPA module imports its memory as env.memory; this one does not".into())
        })?;
        if ty.is_64() || ty.is_shared() {
            return Err(Fault::Load(
                "env.memory must be a 32-bit, unshared memory".into(),
            ));
        }
        let cap = (max_memory as u64 / PAGE).min(PAGE);
        if ty.minimum() > cap {
            return Err(Fault::Load(format!(
                "OPA module needs {} MiB of memory to start, over policy_limits.max_memory",
                (ty.minimum() * PAGE) >> 20
            )));
        }
        let max = ty.maximum().map_or(cap, |m| m.min(cap));
        let pages =
            |n: u64| u32::try_from(n).map_err(|_| Fault::Load("env.memory is too large".into()));
        Ok(Self {
            engine: engine.clone(),
            module: module.clone(),
            linker: host::linker(engine)?,
            memory: MemoryType::new(pages(ty.minimum())?, Some(pages(max)?)),
            name: Arc::clone(name),
            max_memory,
        })
    }
}

/// A set-up instance: `data` is an empty object, `base_heap` the heap
/// pointer after it, to which every evaluation rewinds.
pub(super) struct Instance {
    store: Store<OpaState>,
    instance: wasmtime::Instance,
    guest: Guest,
    heap_get: TypedFunc<(), i32>,
    heap_set: TypedFunc<i32, ()>,
    eval: OpaEval,
    data: i32,
    base_heap: i32,
}

impl Instance {
    /// Instantiates, checks the ABI version (1.2+: `opa_eval`) and parses
    /// the empty `data` document, all within `ticks`.
    pub(super) fn new(bp: &Blueprint, builtins: Arc<Table>, ticks: u64) -> Result<Self, Fault> {
        let state = OpaState {
            limits: abi::store_limits(bp.max_memory),
            module: Arc::clone(&bp.name),
            builtins,
            memory: None,
            guest: None,
            now_ns: None,
        };
        let mut store = Store::new(&bp.engine, state);
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(ticks);
        let memory = Memory::new(&mut store, bp.memory.clone()).map_err(Fault::from_call)?;
        store.data_mut().memory = Some(memory);
        let mut linker = bp.linker.clone();
        linker
            .define(&store, "env", "memory", memory)
            .map_err(|e| Fault::Load(format!("{e:#}")))?;
        let instance = linker.instantiate(&mut store, &bp.module).map_err(|e| {
            if e.downcast_ref::<wasmtime::Trap>().is_some() {
                Fault::from_call(e)
            } else {
                Fault::Load(format!("cannot instantiate the OPA module: {e:#}"))
            }
        })?;
        let version = |store: &mut Store<OpaState>, name| match instance
            .get_global(&mut *store, name)
            .map(|g| g.get(&mut *store))
        {
            Some(Val::I32(v)) => Some(v),
            _ => None,
        };
        match (
            version(&mut store, "opa_wasm_abi_version"),
            version(&mut store, "opa_wasm_abi_minor_version"),
        ) {
            (Some(1), Some(minor)) if minor >= 2 => {}
            (major, minor) => {
                let show = |v: Option<i32>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
                return Err(Fault::Load(format!(
                    "OPA module speaks Wasm ABI {}.{}; toolgate needs 1.2 or later (opa_eval): rebuild it with a newer opa",
                    show(major),
                    show(minor)
                )));
            }
        }
        let guest = Guest {
            memory,
            malloc: typed(&instance, &mut store, "opa_malloc")?,
            json_parse: typed(&instance, &mut store, "opa_json_parse")?,
            json_dump: typed(&instance, &mut store, "opa_json_dump")?,
        };
        store.data_mut().guest = Some(guest.clone());
        let heap_get = typed::<(), i32>(&instance, &mut store, "opa_heap_ptr_get")?;
        let heap_set = typed(&instance, &mut store, "opa_heap_ptr_set")?;
        let eval = typed(&instance, &mut store, "opa_eval")?;
        let data = host::write_value(&mut store, &guest, b"{}").map_err(Fault::from_call)?;
        let base_heap = heap_get.call(&mut store, ()).map_err(Fault::from_call)?;
        Ok(Self {
            store,
            instance,
            guest,
            heap_get,
            heap_set,
            eval,
            data,
            base_heap,
        })
    }

    pub(super) fn set_builtins(&mut self, builtins: Arc<Table>) {
        self.store.data_mut().builtins = builtins;
    }

    /// Calls a `() -> value_addr` export (`builtins`, `entrypoints`) and
    /// reads the value as JSON.
    pub(super) fn dump_export(&mut self, name: &'static str) -> Result<Value, Fault> {
        let export = typed::<(), i32>(&self.instance, &mut self.store, name)?;
        let value = export.call(&mut self.store, ()).map_err(Fault::from_call)?;
        let text = self
            .guest
            .json_dump
            .call(&mut self.store, value)
            .map_err(Fault::from_call)?;
        let json = self.read_output(text)?;
        serde_json::from_slice(&json)
            .map_err(|e| Fault::Malformed(format!("{name}() is not JSON: {e}")))
    }

    /// One `opa_eval`: rewinds the heap to just after `data` (so memory does
    /// not grow from call to call), writes the input, returns the result
    /// set's JSON text.
    pub(super) fn eval(
        &mut self,
        entrypoint: i32,
        input: &[u8],
        ticks: u64,
    ) -> Result<Vec<u8>, Fault> {
        self.store.set_epoch_deadline(ticks);
        self.store.data_mut().now_ns = None;
        self.heap_set
            .call(&mut self.store, self.base_heap)
            .map_err(Fault::from_call)?;
        let len = i32::try_from(input.len())
            .map_err(|_| Fault::Malformed("input larger than 2 GiB".into()))?;
        let addr = self
            .guest
            .malloc
            .call(&mut self.store, len)
            .map_err(Fault::from_call)?;
        let at = usize::try_from(addr)
            .map_err(|_| Fault::Malformed("opa_malloc returned a negative address".into()))?;
        self.guest
            .memory
            .write(&mut self.store, at, input)
            .map_err(|_| Fault::Malformed("opa_malloc returned a buffer outside memory".into()))?;
        let heap = self
            .heap_get
            .call(&mut self.store, ())
            .map_err(Fault::from_call)?;
        let result = self
            .eval
            .call(
                &mut self.store,
                (0, entrypoint, self.data, addr, len, heap, 0),
            )
            .map_err(Fault::from_call)?;
        if result == 0 {
            return Err(Fault::Malformed("opa_eval returned no result".into()));
        }
        self.read_output(result)
    }

    /// Bytes of linear memory the instance holds now.
    #[cfg(test)]
    pub(super) fn memory_size(&self) -> usize {
        self.guest.memory.data_size(&self.store)
    }

    fn read_output(&self, addr: i32) -> Result<Vec<u8>, Fault> {
        let memory = self.guest.memory.data(&self.store);
        match host::c_string(memory, addr, abi::MAX_OUTPUT) {
            Ok(bytes) => Ok(bytes.to_vec()),
            Err(CString::TooLong) => {
                let len =
                    host::c_string(memory, addr, usize::MAX).map_or(memory.len(), <[u8]>::len);
                Err(Fault::OutputTooLarge(len))
            }
            Err(CString::Outside) => Err(Fault::Malformed(
                "result is outside memory or not NUL-terminated".into(),
            )),
        }
    }
}

fn typed<P, R>(
    instance: &wasmtime::Instance,
    store: &mut Store<OpaState>,
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
