//! Decide stage: one live instance of a toolgate-ABI policy module (see
//! policy-modules/ABI.md) — configured once, then asked for decisions —
//! the host imports it may use, and its answers read as decisions.

use std::borrow::Cow;

use serde_json::Value;
use wasmtime::{
    Caller, Instance, InstancePre, Linker, Memory, Store, StoreLimits, StoreLimitsBuilder,
    TypedFunc,
};

use super::Verdict;
use super::engine::PolicyEngine;
use super::input::Declared;
use super::module::{Fault, HostState};

/// Largest decision JSON a module may return.
pub const MAX_OUTPUT: usize = 1 << 20;

/// A toolgate-ABI instance ready for `decide`.
pub struct Warm {
    pub store: Store<HostState>,
    instance: Instance,
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    decide: TypedFunc<(i32, i32), i64>,
}

impl std::fmt::Debug for Warm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Warm").finish_non_exhaustive()
    }
}

/// What a module says about itself (read once, when it loads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct About {
    /// `toolgate_module_version`, or `unversioned`.
    pub version: String,
    /// `toolgate_input_fields`; `None`: the whole input.
    pub fields: Option<Declared>,
}

/// One module's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub verdict: Verdict,
    pub reason: Option<String>,
    pub annotations: Option<Value>,
}

impl Answer {
    /// The grant the answer names in `annotations.grant` (a string), if any.
    pub fn named_grant(&self) -> Option<String> {
        let id = self.annotations.as_ref()?.get("grant")?.as_str()?;
        Some(id.to_owned())
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
    ) -> Result<Self, Fault> {
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
            instance,
            memory,
            alloc,
            decide,
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
            let answer: Value = serde_json::from_slice(warm.output(packed)?)
                .map_err(|e| Fault::Malformed(format!("configure answered non-JSON: {e}")))?;
            if let Some(why) = answer.get("error") {
                let why = why.as_str().map_or_else(|| why.to_string(), str::to_owned);
                return Err(Fault::Configure(why));
            }
        }
        Ok(warm)
    }

    /// The module's version and declared input fields (optional exports).
    pub fn about(&mut self) -> Result<About, Fault> {
        let version = match self.call_optional("toolgate_module_version")? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => "unversioned".to_owned(),
        };
        let fields = match self.call_optional("toolgate_input_fields")? {
            Some(bytes) => Declared::parse(&bytes)
                .map_err(|e| Fault::Load(format!("toolgate_input_fields: {e}")))?,
            None => None,
        };
        Ok(About { version, fields })
    }

    /// One decision: input JSON in, the answer read in place, under `ticks`.
    pub fn decide(&mut self, input: &[u8], ticks: u64) -> Result<Answer, Fault> {
        self.store.set_epoch_deadline(ticks);
        let (ptr, len) = self.write(input)?;
        let packed = self
            .decide
            .call(&mut self.store, (ptr, len))
            .map_err(Fault::from_call)?;
        parse_answer(self.output(packed)?)
    }

    /// Calls an optional `() -> i64` export; its output copied out.
    fn call_optional(&mut self, name: &str) -> Result<Option<Vec<u8>>, Fault> {
        let Ok(f) = self
            .instance
            .get_typed_func::<(), i64>(&mut self.store, name)
        else {
            return Ok(None);
        };
        let packed = f.call(&mut self.store, ()).map_err(Fault::from_call)?;
        self.output(packed).map(|o| Some(o.to_vec()))
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

    /// The output a packed pointer/length names, borrowed from memory.
    fn output(&self, packed: i64) -> Result<&[u8], Fault> {
        // The i64 is a bit pattern: (ptr << 32) | len, both u32.
        let packed = packed as u64;
        let (ptr, len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        if len > MAX_OUTPUT {
            return Err(Fault::OutputTooLarge(len));
        }
        self.memory
            .data(&self.store)
            .get(ptr..ptr.saturating_add(len))
            .ok_or_else(|| Fault::Malformed("output points outside memory".into()))
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

/// A module's output as it arrives (borrowed: read on every decision).
#[derive(serde::Deserialize)]
struct WireAnswer<'a> {
    #[serde(borrow, default)]
    decision: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(default)]
    annotations: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// Reads a module's output JSON as a decision.
pub fn parse_answer(output: &[u8]) -> Result<Answer, Fault> {
    let wire: WireAnswer<'_> = serde_json::from_slice(output)
        .map_err(|e| Fault::Malformed(format!("not a decision object ({e})")))?;
    if let Some(error) = wire.error {
        let error = error
            .as_str()
            .map_or_else(|| error.to_string(), str::to_owned);
        return Err(Fault::Malformed(format!(
            "module reported an error: {error}"
        )));
    }
    let verdict = match wire.decision.as_deref() {
        Some("allow") => Verdict::Allow,
        Some("deny") => Verdict::Deny,
        Some("needs_approval") => Verdict::NeedsApproval,
        Some(other) => return Err(Fault::Malformed(format!("unknown decision {other:?}"))),
        None => return Err(Fault::Malformed("no \"decision\" field".into())),
    };
    let reason = wire.reason.as_deref().map(|r| truncate(r, 1024));
    if verdict != Verdict::Allow && reason.as_deref().is_none_or(str::is_empty) {
        return Err(Fault::Malformed(format!(
            "a {} needs a reason",
            verdict.as_str()
        )));
    }
    let annotations = wire.annotations.filter(Value::is_object);
    Ok(Answer {
        verdict,
        reason,
        annotations,
    })
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_strictly() {
        assert_eq!(
            parse_answer(br#"{"decision":"allow"}"#).unwrap().verdict,
            Verdict::Allow
        );
        let a =
            parse_answer(br#"{"decision":"deny","reason":"no","annotations":{"r":1}}"#).unwrap();
        assert_eq!(a.reason.as_deref(), Some("no"));
        for bad in [
            &b"garbage"[..],
            br#"{}"#,
            br#"{"decision":"maybe"}"#,
            br#"{"decision":"deny"}"#,
            br#"{"error":"bad input"}"#,
        ] {
            assert!(
                matches!(parse_answer(bad), Err(Fault::Malformed(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn the_named_grant_is_a_string_under_annotations_grant() {
        let named = |json: &str| parse_answer(json.as_bytes()).unwrap().named_grant();
        assert_eq!(
            named(r#"{"decision":"allow","annotations":{"grant":"grant_1","rule":"r"}}"#),
            Some("grant_1".to_owned())
        );
        assert_eq!(
            named(r#"{"decision":"allow","annotations":{"grant":7}}"#),
            None
        );
        assert_eq!(
            named(r#"{"decision":"allow","annotations":{"rule":"r"}}"#),
            None
        );
        assert_eq!(
            named(r#"{"decision":"allow","annotations":["grant"]}"#),
            None
        );
        assert_eq!(named(r#"{"decision":"allow"}"#), None);
    }
}
