//! Decide stage: the decision input as policy modules receive it — version 1
//! of the JSON document in policy-modules/ABI.md. Encoded lazily, once per
//! decision for each distinct declaration of input fields (the trimmed
//! document, or the fields' values; a module that declares none gets the
//! whole document), into buffers reused between decisions.

mod fields;
mod values;
mod wire;

use std::cell::{OnceCell, RefCell};
use std::sync::Arc;

pub use fields::{Declared, Fields};

use super::DecisionInput;

/// Buffers kept per thread for the next decisions.
const SPARE_BUFFERS: usize = 4;
/// A buffer grown past this is freed, not kept.
const MAX_SPARE_CAPACITY: usize = 64 * 1024;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One encoded input: for whom (`None`: the whole document), and its bytes.
type Doc = (Option<Arc<Declared>>, Vec<u8>);

/// One decision's input, encoded on demand and shared by every module.
pub struct Encoded<'a> {
    input: DecisionInput<'a>,
    /// One clock reading for every document of the decision.
    now_ms: OnceCell<u64>,
    /// The inputs made so far, by declaration (`None`: the whole document).
    docs: RefCell<Vec<Doc>>,
}

impl std::fmt::Debug for Encoded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded")
            .field("tool", &self.input.tool)
            .finish_non_exhaustive()
    }
}

/// The input of one decision, ready to encode for each module.
pub fn encode<'a>(input: &DecisionInput<'a>) -> Encoded<'a> {
    Encoded {
        input: *input,
        now_ms: OnceCell::new(),
        docs: RefCell::new(Vec::new()),
    }
}

impl Encoded<'_> {
    /// Calls `f` with the input for a module that made `declared` (`None`:
    /// the whole document), encoding it on first use.
    pub fn with<R>(&self, declared: Option<&Arc<Declared>>, f: impl FnOnce(&[u8]) -> R) -> R {
        let wanted = declared.map(|d| &**d);
        let Ok(mut docs) = self.docs.try_borrow_mut() else {
            // Only reachable if `f` re-entered: encode afresh, uncached.
            let mut doc = Vec::new();
            self.write(wanted, &mut doc);
            return f(&doc);
        };
        let index = match docs.iter().position(|(k, _)| k.as_deref() == wanted) {
            Some(index) => index,
            None => {
                let mut doc = spare_buffer();
                self.write(wanted, &mut doc);
                docs.push((declared.cloned(), doc));
                docs.len() - 1
            }
        };
        f(&docs[index].1)
    }

    /// Appends the input for a module that made `declared` (`None`: the
    /// whole document) to `out`.
    pub fn write(&self, declared: Option<&Declared>, out: &mut Vec<u8>) {
        let now = || *self.now_ms.get_or_init(now_ms);
        match declared {
            None => wire::write(&self.input, &now, None, out),
            Some(declared) => match declared.leaves() {
                Some(leaves) => values::write(&self.input, &now, leaves, out),
                None => wire::write(&self.input, &now, Some(declared.fields()), out),
            },
        }
    }
}

/// An input document a module can be asked about: a decision's
/// [`Encoded`] input, or bytes encoded elsewhere (tests), sent as they are —
/// at least every declared field.
pub trait Document {
    /// Calls `f` with the input for a module that made `declared`.
    fn with_fields<R>(&self, declared: Option<&Arc<Declared>>, f: impl FnOnce(&[u8]) -> R) -> R;
}

impl Document for Encoded<'_> {
    fn with_fields<R>(&self, declared: Option<&Arc<Declared>>, f: impl FnOnce(&[u8]) -> R) -> R {
        self.with(declared, f)
    }
}

impl Document for [u8] {
    fn with_fields<R>(&self, _: Option<&Arc<Declared>>, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self)
    }
}

impl Document for Vec<u8> {
    fn with_fields<R>(&self, _: Option<&Arc<Declared>>, f: impl FnOnce(&[u8]) -> R) -> R {
        f(self)
    }
}

impl Drop for Encoded<'_> {
    fn drop(&mut self) {
        for (_, doc) in self.docs.get_mut().drain(..) {
            keep_spare(doc);
        }
    }
}

thread_local! {
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn spare_buffer() -> Vec<u8> {
    SPARE
        .try_with(|spare| spare.try_borrow_mut().ok().and_then(|mut s| s.pop()))
        .ok()
        .flatten()
        .unwrap_or_else(|| Vec::with_capacity(1024))
}

fn keep_spare(mut doc: Vec<u8>) {
    if doc.capacity() > MAX_SPARE_CAPACITY {
        return;
    }
    doc.clear();
    // During thread teardown the pool is gone: the buffer is just freed.
    let _ = SPARE.try_with(|spare| {
        if let Ok(mut spare) = spare.try_borrow_mut()
            && spare.len() < SPARE_BUFFERS
        {
            spare.push(doc);
        }
    });
}

#[cfg(test)]
mod tests;
