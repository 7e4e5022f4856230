//! The generic half of the exports [`toolgate_policy!`](crate::toolgate_policy)
//! generates: the buffers the host writes into, the configuration state, and
//! JSON in and out. Module authors use the macro, not this.
//!
//! Errors never cross the boundary as traps: anything wrong with the input or
//! the config comes back as `{"error": "…"}`, which is not a decision, so the
//! host denies the call with `policy_error` (fail closed) and logs the text.

use serde::Deserialize as _;
use serde_json::Value;

use crate::values::{self, MAX_FIELDS};
use crate::{Decision, Field, Input, Policy, fields};

/// One instance's state. The macro keeps one in a `thread_local` (a plain
/// static on `wasm32-unknown-unknown`, which has one thread).
#[derive(Debug)]
pub struct Runtime<P> {
    state: State<P>,
    /// Buffers handed out by `toolgate_alloc` that no call has consumed yet.
    pending: Vec<Vec<u8>>,
    /// The last output; the ABI keeps it valid until the next call.
    out: Vec<u8>,
    /// The last input buffer, kept for the next `alloc` (one per call otherwise).
    spare: Vec<u8>,
}

#[derive(Debug)]
enum State<P> {
    /// `toolgate_configure` not called yet: the first decide uses the default.
    Unconfigured,
    Ready(P),
    /// Configuration failed; every decide answers with this error.
    Failed(String),
}

impl<P> Runtime<P> {
    /// An unconfigured instance (`const` so the macro's static needs no lazy init).
    pub const fn new() -> Self {
        Self {
            state: State::Unconfigured,
            pending: Vec::new(),
            out: Vec::new(),
            spare: Vec::new(),
        }
    }
}

impl<P> Default for Runtime<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Policy> Runtime<P> {
    /// `toolgate_alloc`: a zeroed buffer of `len` bytes for the host to fill.
    /// It stays owned here, so reading it back later needs no `unsafe`.
    pub fn alloc(&mut self, len: i32) -> i32 {
        let Ok(len) = usize::try_from(len) else {
            return 0;
        };
        let mut buffer = std::mem::take(&mut self.spare);
        buffer.clear();
        buffer.resize(len, 0);
        let ptr = address(buffer.as_mut_ptr());
        self.pending.push(buffer);
        ptr
    }

    /// `toolgate_configure`: packed pointer/length of `{"ok": true}` or `{"error": …}`.
    pub fn configure(&mut self, ptr: i32, len: i32) -> i64 {
        match self.take(ptr, len) {
            Ok(bytes) => {
                self.configure_json(&bytes);
            }
            Err(why) => {
                // Never fall back to the default config after a failed
                // configure: the default may be more permissive.
                self.out = error_json(&why);
                self.state = State::Failed(why);
            }
        }
        pack(&self.out)
    }

    /// `toolgate_input_fields`: packed pointer/length of the declared input
    /// fields (a JSON array of pointers, or `null` for the whole document).
    pub fn input_fields(&mut self) -> i64 {
        self.out = fields::declaration(P::INPUT_FIELDS, P::INPUT_VALUES);
        pack(&self.out)
    }

    /// `toolgate_decide`: packed pointer/length of the decision (or `{"error": …}`).
    pub fn decide(&mut self, ptr: i32, len: i32) -> i64 {
        match self.take(ptr, len) {
            Ok(bytes) => {
                self.decide_json(&bytes);
                self.spare = bytes;
            }
            Err(why) => self.out = error_json(&why),
        }
        pack(&self.out)
    }

    /// Configures from config JSON; `null` or nothing means `Config::default()`.
    pub fn configure_json(&mut self, config: &[u8]) -> &[u8] {
        let blank = config.iter().all(u8::is_ascii_whitespace);
        let parsed = if blank {
            Ok(P::Config::default())
        } else {
            match serde_json::from_slice::<Option<P::Config>>(config) {
                Ok(config) => Ok(config.unwrap_or_default()),
                Err(e) => Err(format!("module config is invalid: {e}")),
            }
        };
        self.state = match parsed.and_then(P::configure) {
            Ok(policy) => State::Ready(policy),
            Err(why) => State::Failed(why),
        };
        self.out = match &self.state {
            State::Failed(why) => error_json(why),
            _ => br#"{"ok":true}"#.to_vec(),
        };
        &self.out
    }

    /// Decides one input document; the bytes are the output JSON. The
    /// output buffer is reused from call to call.
    pub fn decide_json(&mut self, input: &[u8]) -> &[u8] {
        let decision = self.decide_value(input);
        self.out.clear();
        match decision {
            Ok(decision) => {
                if let Err(e) = decision.write_json(&mut self.out) {
                    self.out = error_json(&format!("decision could not be encoded: {e}"));
                }
            }
            Err(error) => self.out = error,
        }
        &self.out
    }

    /// The decision, or the error JSON to answer instead.
    fn decide_value(&mut self, input: &[u8]) -> Result<Decision, Vec<u8>> {
        if matches!(self.state, State::Unconfigured) {
            self.configure_json(b"");
        }
        if values::is_values(input) {
            return self.decide_values(input);
        }
        if let State::Ready(policy) = &self.state
            && let Some(decision) = policy.decide_fast(input)
        {
            return Ok(decision);
        }
        // One typed pass unless the module asked for the raw document too.
        let parsed = if P::RAW_INPUT {
            match serde_json::from_slice::<Value>(input) {
                Ok(raw) => Input::from_value(raw),
                Err(e) => return Err(error_json(&format!("policy input is not valid JSON: {e}"))),
            }
        } else {
            serde_json::from_slice::<Input>(input)
        };
        self.decide_typed(parsed)
    }

    /// Decides input in the values form: the module's fast path, else the
    /// typed path on the document the values stand for.
    fn decide_values(&self, input: &[u8]) -> Result<Decision, Vec<u8>> {
        let fields = P::INPUT_FIELDS.unwrap_or_default();
        let mut slots = [Field::Absent; MAX_FIELDS];
        let values = values::read(input, fields.len(), &mut slots).map_err(|e| error_json(&e))?;
        if let State::Ready(policy) = &self.state
            && let Some(decision) = policy.decide_values(values)
        {
            return Ok(decision);
        }
        let document = values::document(fields, values).map_err(|e| error_json(&e))?;
        self.decide_typed(if P::RAW_INPUT {
            Input::from_value(document)
        } else {
            Input::deserialize(&document)
        })
    }

    /// The typed path, once the input is read (or failed to be).
    fn decide_typed(&self, parsed: Result<Input, serde_json::Error>) -> Result<Decision, Vec<u8>> {
        let input = match parsed {
            Ok(input) => input,
            Err(e) if e.is_data() => {
                return Err(error_json(&format!(
                    "policy input does not match ABI version 1: {e}"
                )));
            }
            Err(e) => return Err(error_json(&format!("policy input is not valid JSON: {e}"))),
        };
        match &self.state {
            State::Ready(policy) => Ok(policy.decide(&input)),
            State::Failed(why) => Err(error_json(&format!("module is not configured: {why}"))),
            State::Unconfigured => Err(error_json("module is not configured")),
        }
    }

    /// Takes back a buffer from `alloc`, cut to the `len` bytes the host wrote.
    fn take(&mut self, ptr: i32, len: i32) -> Result<Vec<u8>, String> {
        let index = self
            .pending
            .iter()
            .position(|buffer| address(buffer.as_ptr()) == ptr)
            .ok_or_else(|| format!("pointer {ptr} did not come from toolgate_alloc"))?;
        let mut buffer = self.pending.swap_remove(index);
        match usize::try_from(len) {
            Ok(len) if len <= buffer.len() => {
                buffer.truncate(len);
                Ok(buffer)
            }
            _ => Err(format!(
                "length {len} exceeds the {} bytes allocated",
                buffer.len()
            )),
        }
    }

    #[cfg(test)]
    pub(crate) fn pending_mut(&mut self, ptr: i32) -> Option<&mut Vec<u8>> {
        self.pending
            .iter_mut()
            .find(|buffer| address(buffer.as_ptr()) == ptr)
    }

    #[cfg(test)]
    pub(crate) fn input_fields_json(&mut self) -> Vec<u8> {
        self.input_fields();
        self.out.clone()
    }

    #[cfg(test)]
    pub(crate) fn output(&self) -> &[u8] {
        &self.out
    }
}

/// `(ptr << 32) | len` as the ABI returns output. On wasm32 a pointer is
/// 32 bits; natively the address is truncated, which only tests see.
pub fn pack(bytes: &[u8]) -> i64 {
    let ptr = address(bytes.as_ptr()) as u32;
    let len = bytes.len() as u32;
    ((u64::from(ptr) << 32) | u64::from(len)) as i64
}

/// A pointer as the i32 the ABI passes (bit-for-bit on wasm32).
fn address(ptr: *const u8) -> i32 {
    ptr as usize as i32
}

fn error_json(why: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "error": why }))
        .unwrap_or_else(|_| br#"{"error":"policy error (unencodable message)"}"#.to_vec())
}

#[cfg(test)]
mod tests;
