//! Record stage: the records the request path leaves for the writer
//! thread. A decision's is built on the request path — a few strings
//! copied into one buffer, a few reference counts; no formatting, no
//! serialization, no hashing — and its facts are copied into the outbox
//! (`outbox.rs`); the other kinds move there whole.

use std::time::Duration;

use serde_json::Value;

use crate::decide::{Evidence, Phase, Reason, Verdict};
use crate::identify::Identity;

/// One thing to write other than a decision (those go to the outbox as
/// [`DecisionEntry`] facts). Every kind is boxed: the outbox moves a
/// pointer.
#[derive(Debug)]
pub enum Entry {
    Event(Box<EventEntry>),
    Admin(Box<AdminEntry>),
    /// Seal the file and stop; the sender is told when done.
    Stop(std::sync::mpsc::Sender<()>),
}

/// One decided call (or grant request), as the request path knew it.
#[derive(Debug)]
pub struct DecisionEntry {
    pub at_ms: u64,
    pub phase: Phase,
    /// Route, method, tool, task, message, grant, approval, arguments
    /// (as JSON, when no mask applies), trace id.
    pub text: Texts,
    /// The arguments when `audit.mask` rules apply, unmasked: the writer
    /// masks them before anything else sees them. Without rules they are
    /// serialized on the request path instead (`Text::Arguments`): a
    /// string, where a copy of the value would be a tree of allocations
    /// made on one thread and freed on another.
    pub arguments: Option<Value>,
    pub identity: Identity,
    pub verdict: Verdict,
    pub reason: Reason,
    pub evidence: std::sync::Arc<[Evidence]>,
    pub identify: Duration,
    pub decide: Duration,
    /// From the start of the request until the record was handed over.
    pub total: Duration,
    pub upstream: Option<Upstream>,
}

impl DecisionEntry {
    pub fn route(&self) -> &str {
        self.text.get(Text::Route).unwrap_or_default()
    }
    pub fn method(&self) -> &str {
        self.text.get(Text::Method).unwrap_or_default()
    }
    pub fn tool(&self) -> &str {
        self.text.get(Text::Tool).unwrap_or_default()
    }
    pub fn task(&self) -> Option<&str> {
        self.text.get(Text::Task)
    }
    /// The decision's message; empty when it has none.
    pub fn message(&self) -> &str {
        self.text.get(Text::Message).unwrap_or_default()
    }
    pub fn grant(&self) -> Option<&str> {
        self.text.get(Text::Grant)
    }
    pub fn approval(&self) -> Option<&str> {
        self.text.get(Text::Approval)
    }
    /// The arguments as JSON text, when no mask applies.
    pub fn arguments_json(&self) -> Option<&str> {
        self.text.get(Text::Arguments)
    }
    /// The call's trace id; empty when it has none.
    pub fn trace_id(&self) -> &str {
        self.text.get(Text::TraceId).unwrap_or_default()
    }
}

/// How many strings a [`DecisionEntry`] holds: one per [`Text`].
pub const TEXTS: usize = Text::TraceId as usize + 1;
// Each string has a bit in `Texts::present`.
const _: () = assert!(TEXTS <= u16::BITS as usize);

/// Which of a record's strings, in the order [`Texts::new`] takes them
/// (`TraceId` last: [`TEXTS`] counts from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Text {
    Route,
    Method,
    Tool,
    Task,
    Message,
    Grant,
    Approval,
    Arguments,
    TraceId,
}

/// A record's strings in one buffer, where a string each would be nine
/// allocations and nine places to miss the cache on. The request path
/// keeps its buffers for its next records; the writer has one of its own.
#[derive(Debug, Default)]
pub struct Texts {
    text: String,
    /// Where each string ends in `text` (each starts where the one before ends).
    ends: [usize; TEXTS],
    /// Bit `i`: string `i` is present (else it reads as `None`).
    present: u16,
}

impl Texts {
    /// The strings in [`Text`] order; `None` for one that is absent.
    pub fn new(strings: [Option<&str>; TEXTS]) -> Self {
        let mut out = Self::default();
        out.set(strings);
        out
    }

    /// Replaces every string (as [`Texts::new`] takes them), in the
    /// allocation already held when it is big enough: a kept buffer's.
    pub fn set(&mut self, strings: [Option<&str>; TEXTS]) {
        let len = strings.iter().flatten().map(|s| s.len()).sum();
        self.text.clear();
        self.text.reserve(len);
        self.present = 0;
        for (i, s) in strings.iter().enumerate() {
            if let Some(s) = s {
                self.text.push_str(s);
                self.present |= 1 << i;
            }
            self.ends[i] = self.text.len();
        }
    }

    /// Bytes allocated for the strings.
    pub fn capacity(&self) -> usize {
        self.text.capacity()
    }

    /// The strings back to back, where each ends, which are present: what
    /// the hand-off copies.
    pub(super) fn parts(&self) -> (&str, &[usize; TEXTS], u16) {
        (&self.text, &self.ends, self.present)
    }

    /// Replaces every string with `text` cut at `ends` (as [`Texts::parts`]
    /// gave them), in the allocation already held when it is big enough.
    pub(super) fn set_parts(&mut self, text: &str, ends: &[usize; TEXTS], present: u16) {
        self.text.clear();
        self.text.push_str(text);
        for (to, end) in self.ends.iter_mut().zip(ends) {
            // A cut inside a character reads as absent, never as a panic.
            *to = (*end).min(text.len());
        }
        self.present = present;
    }

    pub fn get(&self, which: Text) -> Option<&str> {
        let i = which as usize;
        if self.present & (1 << i) == 0 {
            return None;
        }
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        self.text.get(start..self.ends[i])
    }
}

/// What the upstream answered an allowed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream {
    /// Its response status, after this long (to the response headers).
    Status(u16, Duration),
    /// No answer: the problem code (`upstream_timeout`, …).
    Failed(&'static str, Duration),
}

/// A task, grant or approval change (`tasks::events`).
#[derive(Debug)]
pub struct EventEntry {
    pub at_ms: u64,
    /// `task_created`, `grant_issued`, … (`tasks::events::Event::as_str`).
    pub event: &'static str,
    /// The task, grant or approval changed; empty for a sweep's count.
    pub id: String,
    pub task: String,
    pub actor: String,
    /// For sweeps: how many expired at once (no ids known).
    pub count: Option<u64>,
}

/// A change requested through the admin API (or refused there).
#[derive(Debug)]
pub struct AdminEntry {
    pub at_ms: u64,
    pub actor: String,
    pub role: &'static str,
    pub action: String,
    pub target: Option<String>,
    /// `ok` or the error code.
    pub outcome: String,
    pub remote: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_keep_each_string_and_tell_absent_from_empty() {
        let t = Texts::new([
            Some("tools"),
            Some("tools/call"),
            Some(""),
            None,
            Some("denied: no grant"),
            Some("grant_1"),
            None,
            Some(r#"{"a":1}"#),
            Some("ab12"),
        ]);
        assert_eq!(t.get(Text::Route), Some("tools"));
        assert_eq!(t.get(Text::Method), Some("tools/call"));
        assert_eq!(t.get(Text::Tool), Some(""));
        assert_eq!(t.get(Text::Task), None);
        assert_eq!(t.get(Text::Message), Some("denied: no grant"));
        assert_eq!(t.get(Text::Grant), Some("grant_1"));
        assert_eq!(t.get(Text::Approval), None);
        assert_eq!(t.get(Text::Arguments), Some(r#"{"a":1}"#));
        assert_eq!(t.get(Text::TraceId), Some("ab12"));
        let none = Texts::new([None; TEXTS]);
        assert!(
            [Text::Route, Text::TraceId, Text::Approval]
                .iter()
                .all(|&w| none.get(w).is_none())
        );
    }

    #[test]
    fn set_replaces_every_string_and_keeps_the_allocation() {
        let mut t = Texts::new([
            Some("a long route name"),
            Some("tools/call"),
            Some("echo"),
            Some("task_1"),
            Some("a message"),
            Some("grant_1"),
            Some("appr_1"),
            Some(r#"{"text":"hello"}"#),
            Some("0af7651916cd43dd8448eb211c80319c"),
        ]);
        let held = t.capacity();
        t.set([
            Some("r"),
            Some("tools/call"),
            Some("t"),
            None,
            Some(""),
            None,
            None,
            Some("{}"),
            None,
        ]);
        assert_eq!(t.capacity(), held, "no new allocation for shorter strings");
        assert_eq!(t.get(Text::Route), Some("r"));
        assert_eq!(t.get(Text::Tool), Some("t"));
        assert_eq!(t.get(Text::Task), None, "a string absent now is absent");
        assert_eq!(t.get(Text::Message), Some(""));
        assert_eq!(t.get(Text::Grant), None);
        assert_eq!(t.get(Text::Approval), None);
        assert_eq!(t.get(Text::Arguments), Some("{}"));
        assert_eq!(t.get(Text::TraceId), None);
    }
}
