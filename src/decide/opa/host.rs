//! Decide stage: the host side of an OPA module's imports — `opa_abort`,
//! `opa_println` and `opa_builtin0..4` — and the per-store state they use.

use std::sync::Arc;

use serde_json::Value;
use wasmtime::{AsContextMut, Caller, Engine, Linker, Memory, StoreLimits, TypedFunc};

use super::builtins::{self, Table};
use crate::decide::module::Fault;

/// Largest value a builtin may read out of the module (its JSON text).
const MAX_BUILTIN_ARG: usize = 8 << 20;
/// Longest `opa_println` / `opa_abort` message kept.
const MAX_MESSAGE: usize = 1024;
/// The functions an OPA module may import from `env`, besides `memory`.
pub(super) const HOST_FUNCS: [&str; 7] = [
    "opa_abort",
    "opa_println",
    "opa_builtin0",
    "opa_builtin1",
    "opa_builtin2",
    "opa_builtin3",
    "opa_builtin4",
];

/// What the store of every OPA instance carries.
pub(super) struct OpaState {
    pub(super) limits: StoreLimits,
    pub(super) module: Arc<str>,
    pub(super) builtins: Arc<Table>,
    pub(super) memory: Option<Memory>,
    pub(super) guest: Option<Guest>,
    /// `time.now_ns` for the evaluation under way.
    pub(super) now_ns: Option<i64>,
}

/// The exports a builtin call needs to read its arguments and write its
/// result.
#[derive(Clone)]
pub(super) struct Guest {
    pub(super) memory: Memory,
    pub(super) malloc: TypedFunc<i32, i32>,
    pub(super) json_parse: TypedFunc<(i32, i32), i32>,
    pub(super) json_dump: TypedFunc<i32, i32>,
}

/// The host imports: the same functions for every store (the memory is
/// defined per store).
pub(super) fn linker(engine: &Engine) -> Result<Linker<OpaState>, Fault> {
    let mut linker = Linker::new(engine);
    let load = |e: wasmtime::Error| Fault::Load(format!("{e:#}"));
    linker
        .func_wrap(
            "env",
            "opa_abort",
            |mut caller: Caller<'_, OpaState>, addr: i32| -> wasmtime::Result<()> {
                Err(wasmtime::Error::msg(format!(
                    "opa_abort: {}",
                    message(&mut caller, addr)
                )))
            },
        )
        .map_err(load)?;
    linker
        .func_wrap(
            "env",
            "opa_println",
            |mut caller: Caller<'_, OpaState>, addr: i32| {
                let line = message(&mut caller, addr);
                let module = Arc::clone(&caller.data().module);
                tracing::info!(target: "toolgate::policy", module = %module, "{line}");
            },
        )
        .map_err(load)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin0",
            |mut c: Caller<'_, OpaState>, id: i32, _ctx: i32| dispatch(&mut c, id, &[]),
        )
        .map_err(load)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin1",
            |mut c: Caller<'_, OpaState>, id: i32, _ctx: i32, a: i32| dispatch(&mut c, id, &[a]),
        )
        .map_err(load)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin2",
            |mut c: Caller<'_, OpaState>, id: i32, _ctx: i32, a: i32, b: i32| {
                dispatch(&mut c, id, &[a, b])
            },
        )
        .map_err(load)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin3",
            |mut c: Caller<'_, OpaState>, id: i32, _ctx: i32, a: i32, b: i32, d: i32| {
                dispatch(&mut c, id, &[a, b, d])
            },
        )
        .map_err(load)?;
    linker
        .func_wrap(
            "env",
            "opa_builtin4",
            |mut c: Caller<'_, OpaState>, id: i32, _ctx: i32, a: i32, b: i32, d: i32, e: i32| {
                dispatch(&mut c, id, &[a, b, d, e])
            },
        )
        .map_err(load)?;
    Ok(linker)
}

/// One builtin call: each argument dumped to JSON by the module, computed
/// here, the result parsed back by the module (0: undefined). Errors from
/// the calls back into the module pass through unchanged, so a deadline
/// hit inside them is still a deadline.
fn dispatch(caller: &mut Caller<'_, OpaState>, id: i32, args: &[i32]) -> wasmtime::Result<i32> {
    let state = caller.data();
    let builtin = state.builtins.get(&id).copied().ok_or_else(|| {
        wasmtime::Error::msg(format!(
            "the module called builtin {id}, which its builtins() does not list"
        ))
    })?;
    let guest = state.guest.clone().ok_or_else(|| {
        wasmtime::Error::msg("a builtin was called before the instance was set up")
    })?;
    let mut values = Vec::with_capacity(args.len());
    for &arg in args {
        let text = guest.json_dump.call(&mut *caller, arg)?;
        let bytes = c_string(guest.memory.data(&*caller), text, MAX_BUILTIN_ARG)
            .map_err(|e| wasmtime::Error::msg(format!("builtin argument {e}")))?;
        values.push(serde_json::from_slice::<Value>(bytes)?);
    }
    let module = Arc::clone(&caller.data().module);
    let out = builtins::call(builtin, &values, &mut caller.data_mut().now_ns, &module)
        .map_err(wasmtime::Error::msg)?;
    match out {
        None => Ok(0),
        Some(value) => write_value(&mut *caller, &guest, &serde_json::to_vec(&value)?),
    }
}

/// Copies JSON text into the module and parses it there into a value.
pub(super) fn write_value(
    mut ctx: impl AsContextMut<Data = OpaState>,
    guest: &Guest,
    json: &[u8],
) -> wasmtime::Result<i32> {
    let len = i32::try_from(json.len())?;
    let addr = guest.malloc.call(&mut ctx, len)?;
    guest.memory.write(&mut ctx, usize::try_from(addr)?, json)?;
    let value = guest.json_parse.call(&mut ctx, (addr, len))?;
    if value == 0 {
        return Err(wasmtime::Error::msg("opa_json_parse refused a value"));
    }
    Ok(value)
}

/// A NUL-terminated message from the module, cut at [`MAX_MESSAGE`].
fn message(caller: &mut Caller<'_, OpaState>, addr: i32) -> String {
    let Some(memory) = caller.data().memory else {
        return String::new();
    };
    let data = memory.data(&*caller);
    let start = usize::try_from(addr).unwrap_or(usize::MAX).min(data.len());
    let window = &data[start..data.len().min(start.saturating_add(MAX_MESSAGE))];
    let end = window.iter().position(|&b| b == 0).unwrap_or(window.len());
    String::from_utf8_lossy(&window[..end]).into_owned()
}

#[derive(Debug)]
pub(super) enum CString {
    Outside,
    TooLong,
}

impl std::fmt::Display for CString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Outside => "is outside memory or not NUL-terminated",
            Self::TooLong => "is over the size limit",
        })
    }
}

/// The bytes at `addr` up to the NUL, at most `limit` of them.
pub(super) fn c_string(memory: &[u8], addr: i32, limit: usize) -> Result<&[u8], CString> {
    let start = usize::try_from(addr).map_err(|_| CString::Outside)?;
    let tail = memory.get(start..).ok_or(CString::Outside)?;
    // A string of exactly `limit` bytes has its NUL at `limit`.
    let window = &tail[..tail.len().min(limit.saturating_add(1))];
    match window.iter().position(|&b| b == 0) {
        Some(end) => Ok(&window[..end]),
        None if tail.len() > limit => Err(CString::TooLong),
        None => Err(CString::Outside),
    }
}
