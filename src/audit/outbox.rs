//! Record stage, the hand-off: where the request path leaves its records
//! for the writer thread. A decision record is not moved across as an
//! object; its facts are copied into the current *mail* — a few flat
//! vectors: fixed-size facts, module verdicts, one run of bytes for every
//! string — and the writer swaps the whole mail for an empty one once a
//! batch interval. The request path appends to memory it has just
//! written and keeps its own buffers; the writer reads the mail front to
//! back into one record of its own. What moves across whole — a record's
//! identity and masked arguments, a grant event or admin change — is
//! freed by the writer.
//!
//! A place in the outbox is held from the reservation until the record
//! is written (not merely taken), so at most `capacity` records wait in
//! memory, in the outbox or in the writer's hands.
//!
//! Order is kept: other entries (grant events, admin changes, stop) ride
//! along with how many decisions came before them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::entry::{DecisionEntry, Entry, TEXTS, Upstream};
use crate::decide::{Evidence, Phase, Reason, Verdict};
use crate::identify::Identity;

/// Where records wait for the writer: at most `capacity` of them,
/// counting those reserved and not yet posted and those taken and not yet
/// written.
pub(super) struct Outbox {
    mail: Mutex<Mail>,
    /// The writer waits here while the mail is empty.
    arrived: Condvar,
    /// Records reserved, posted, or taken and not yet written.
    held: AtomicUsize,
    capacity: usize,
    /// Set (under the mail's lock) once the writer has stopped: nothing
    /// more is taken.
    shut: AtomicBool,
    /// Told how many records were posted or waiting when nothing would
    /// write them any more, so that no loss goes uncounted.
    lost: Box<dyn Fn(u64) + Send + Sync>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("held", &self.held)
            .field("capacity", &self.capacity)
            .field("shut", &self.shut)
            .finish_non_exhaustive()
    }
}

/// A reserved place for one record: posting on it is never refused for
/// room (once the writer has gone, the record is counted as lost). Dropped
/// unused, it gives the place back.
#[derive(Debug)]
pub struct Permit {
    outbox: Arc<Outbox>,
    used: bool,
}

impl Outbox {
    /// An outbox for `capacity` records; `lost` counts those posted after
    /// the writer stopped (see [`Outbox::shut`]).
    pub(super) fn new(capacity: usize, lost: impl Fn(u64) + Send + Sync + 'static) -> Self {
        Self {
            mail: Mutex::new(Mail::default()),
            arrived: Condvar::new(),
            held: AtomicUsize::new(0),
            capacity,
            shut: AtomicBool::new(false),
            lost: Box::new(lost),
        }
    }

    /// A place for one record, or `None` when `capacity` are held or the
    /// writer has stopped.
    pub(super) fn reserve(self: &Arc<Self>) -> Option<Permit> {
        let mut held = self.held.load(Ordering::Relaxed);
        loop {
            if held >= self.capacity || self.shut.load(Ordering::Relaxed) {
                return None;
            }
            match self.held.compare_exchange_weak(
                held,
                held + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(Permit {
                        outbox: Arc::clone(self),
                        used: false,
                    });
                }
                Err(now) => held = now,
            }
        }
    }

    /// Whether the writer has gone (see [`Outbox::shut`]).
    pub(super) fn is_shut(&self) -> bool {
        self.shut.load(Ordering::Relaxed)
    }

    /// Whether a record would be taken now.
    pub(super) fn has_room(&self) -> bool {
        self.held.load(Ordering::Relaxed) < self.capacity && !self.shut.load(Ordering::Relaxed)
    }

    /// The writer has stopped (or died): nothing is taken from now on.
    /// Records waiting, or posted later on a permit already held, are
    /// counted as lost; a stop waiting in the mail is answered at once
    /// (its sender dropped), so no `close` waits for a writer that is gone.
    pub(super) fn shut(&self) {
        let mut mail = self
            .mail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.shut.store(true, Ordering::Relaxed);
        let left = std::mem::take(&mut *mail);
        drop(mail);
        (self.lost)(left.records_left(&Cursor::default()) as u64);
    }

    /// Records reserved, waiting, or taken and not yet written.
    pub(super) fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Gives back the places of `n` records the writer has written (or
    /// read past: a stop).
    pub(super) fn written(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }

    /// Posts the writer's stop, whatever the capacity. Not a record: after
    /// the writer has gone it is not counted as lost.
    pub(super) fn post_stop(&self, ack: std::sync::mpsc::Sender<()>) {
        self.held.fetch_add(1, Ordering::Relaxed);
        self.put(0, |mail| mail.push_entry(Entry::Stop(ack)));
    }

    /// Runs `f` on the mail, which gains `records` records; once shut,
    /// counts them as lost instead.
    fn put(&self, records: u64, f: impl FnOnce(&mut Mail)) {
        // A panic holding the lock can only come from a bug in the copy;
        // the mail is still whole (a record's facts are pushed last).
        let mut mail = self
            .mail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if self.shut.load(Ordering::Relaxed) {
            drop(mail);
            (self.lost)(records);
            return;
        }
        let was_empty = mail.is_empty();
        f(&mut mail);
        drop(mail);
        // Only the first record of a mail can find the writer waiting.
        if was_empty {
            self.arrived.notify_one();
        }
    }

    /// Swaps the mail for `empty` (which must be empty), at once if the
    /// mail holds something, else after waiting up to `wait` for it.
    /// Returns whether `empty` now holds mail. Its records keep their
    /// places until [`Outbox::written`].
    pub(super) fn take(&self, empty: &mut Mail, wait: Duration) -> bool {
        let mut mail = self
            .mail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if mail.is_empty() && !wait.is_zero() {
            mail = match self.arrived.wait_timeout(mail, wait) {
                Ok((mail, _)) => mail,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if mail.is_empty() {
            return false;
        }
        std::mem::swap(&mut *mail, empty);
        true
    }
}

impl Permit {
    /// Posts `entry` in the place reserved.
    pub fn send(mut self, entry: Entry) {
        self.used = true;
        self.outbox.put(1, |mail| mail.push_entry(entry));
    }

    /// Posts a copy of `record`'s facts in the place reserved. Its
    /// identity and masked arguments move into the mail; the rest of it
    /// (its strings' buffer, its evidence) stays with the caller to reuse
    /// or free on its own thread.
    pub fn send_decision(mut self, record: &mut DecisionEntry) {
        self.used = true;
        self.outbox.put(1, |mail| mail.push_decision(record));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.used {
            self.outbox.held.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Records as the writer takes them: flat vectors, appended to in order.
#[derive(Debug, Default)]
pub(super) struct Mail {
    /// One per decision record.
    facts: Vec<Facts>,
    /// One per module verdict, the records' in their order.
    verdicts: Vec<ModuleFacts>,
    /// Every string of every decision record, back to back: the record's
    /// texts, then each module's name, version, hash, reason and grant.
    text: Vec<u8>,
    /// One per decision record.
    identities: Vec<Identity>,
    /// One per decision record whose arguments are masked.
    arguments: Vec<Value>,
    /// The other entries, each with how many decision records came first.
    others: Vec<(usize, Entry)>,
}

/// A decision record's fixed-size facts.
#[derive(Debug, Clone, Copy)]
struct Facts {
    at_ms: u64,
    phase: Phase,
    verdict: Verdict,
    reason: Reason,
    identify: Duration,
    decide: Duration,
    total: Duration,
    upstream: Option<Upstream>,
    /// The record's texts: their ends in its run of bytes, which are present.
    ends: [usize; TEXTS],
    present: u16,
    masked: bool,
    modules: usize,
}

/// One module's verdict; its strings' lengths (name, version, hash,
/// reason, grant) in the run of bytes.
#[derive(Debug, Clone, Copy)]
struct ModuleFacts {
    outcome: Result<Verdict, &'static str>,
    lens: [usize; 5],
    /// Bit 0: a reason; bit 1: a grant.
    present: u8,
}

impl Mail {
    pub(super) fn is_empty(&self) -> bool {
        self.facts.is_empty() && self.others.is_empty()
    }

    /// Records held (decisions and other entries).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.facts.len() + self.others.len()
    }

    /// Records from `at` on that would be lines of the log: a stop is not.
    pub(super) fn records_left(&self, at: &Cursor) -> usize {
        let facts = self.facts.len() - at.fact.min(self.facts.len());
        let others = self
            .others
            .get(at.other..)
            .unwrap_or_default()
            .iter()
            .filter(|(_, e)| !matches!(e, Entry::Stop(_)))
            .count();
        facts + others
    }

    /// Adds `entry` after the decisions so far.
    pub(super) fn push_entry(&mut self, entry: Entry) {
        self.others.push((self.facts.len(), entry));
    }

    fn push_decision(&mut self, d: &mut DecisionEntry) {
        let (text, ends, present) = d.text.parts();
        let base = self.text.len();
        self.text.extend_from_slice(text.as_bytes());
        let mut facts = Facts {
            at_ms: d.at_ms,
            phase: d.phase,
            verdict: d.verdict,
            reason: d.reason,
            identify: d.identify,
            decide: d.decide,
            total: d.total,
            upstream: d.upstream,
            ends: [0; TEXTS],
            present,
            masked: false,
            modules: d.evidence.len(),
        };
        facts.ends.copy_from_slice(ends);
        debug_assert_eq!(self.text.len() - base, ends[TEXTS - 1]);
        for e in d.evidence.iter() {
            let mut lens = [0; 5];
            let mut present = 0;
            let reason = e.reason.as_deref();
            let grant = e.grant.as_deref();
            for (i, s) in [
                Some(&*e.module),
                Some(&*e.version),
                Some(&*e.hash),
                reason,
                grant,
            ]
            .into_iter()
            .enumerate()
            {
                if let Some(s) = s {
                    self.text.extend_from_slice(s.as_bytes());
                    lens[i] = s.len();
                }
            }
            present |= u8::from(reason.is_some());
            present |= u8::from(grant.is_some()) << 1;
            self.verdicts.push(ModuleFacts {
                outcome: e.outcome,
                lens,
                present,
            });
        }
        if let Some(value) = d.arguments.take() {
            self.arguments.push(value);
            facts.masked = true;
        }
        self.identities
            .push(std::mem::replace(&mut d.identity, Identity::Anonymous));
        self.facts.push(facts);
    }

    /// Empties the mail, keeping its vectors' room — but not a burst's worth.
    pub(super) fn clear(&mut self) {
        if self.text.capacity() > KEEP_TEXT
            || self.facts.capacity() + self.others.capacity() > KEEP_RECORDS
        {
            *self = Self::default();
            return;
        }
        self.facts.clear();
        self.verdicts.clear();
        self.text.clear();
        self.identities.clear();
        self.arguments.clear();
        self.others.clear();
    }

    /// The entry at `at` (see [`Cursor`]), after it.
    pub(super) fn next<'m>(&'m self, at: &mut Cursor, out: &mut Decoder) -> Option<Item<'m>> {
        if let Some((before, entry)) = self.others.get(at.other)
            && *before == at.fact
        {
            at.other += 1;
            return Some(Item::Other(entry));
        }
        let facts = self.facts.get(at.fact)?;
        at.fact += 1;
        let d = &mut out.record;
        let take = |at: &mut Cursor, n: usize| {
            let start = at.text;
            at.text += n;
            self.text
                .get(start..at.text)
                .and_then(|b| std::str::from_utf8(b).ok())
                .unwrap_or_default()
        };
        let end = facts.ends[TEXTS - 1];
        let text = take(at, end);
        d.text.set_parts(text, &facts.ends, facts.present);
        d.at_ms = facts.at_ms;
        d.phase = facts.phase;
        d.verdict = facts.verdict;
        d.reason = facts.reason;
        d.identify = facts.identify;
        d.decide = facts.decide;
        d.total = facts.total;
        d.upstream = facts.upstream;
        d.identity = self
            .identities
            .get(at.fact - 1)
            .cloned()
            .unwrap_or(Identity::Anonymous);
        d.arguments = if facts.masked {
            at.argument += 1;
            self.arguments.get(at.argument - 1).cloned()
        } else {
            None
        };
        let mut evidence = Vec::with_capacity(facts.modules);
        for m in self
            .verdicts
            .get(at.module..at.module + facts.modules)
            .unwrap_or_default()
        {
            let [name, version, hash, reason, grant] = m.lens.map(|n| take(at, n));
            let (module, version, hash) = out.modules.get(name, version, hash);
            evidence.push(Evidence {
                module,
                version,
                hash,
                outcome: m.outcome,
                reason: (m.present & 1 != 0).then(|| reason.to_owned()),
                grant: (m.present & 2 != 0).then(|| grant.to_owned()),
            });
        }
        at.module += facts.modules;
        d.evidence = Arc::from(evidence);
        Some(Item::Decision)
    }
}

/// A mail whose strings held more than this is not kept for reuse…
const KEEP_TEXT: usize = 4 << 20;
/// … nor one with room for more records than this.
const KEEP_RECORDS: usize = 16 * 1024;

/// Where the writer stands in a mail. Copied before a batch, so that a
/// failed batch is read again from its start.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Cursor {
    fact: usize,
    module: usize,
    text: usize,
    argument: usize,
    other: usize,
}

impl Cursor {
    /// Whether every entry of `mail` has been read.
    pub(super) fn done(&self, mail: &Mail) -> bool {
        self.fact >= mail.facts.len() && self.other >= mail.others.len()
    }

    /// Entries read so far (a stop among them too).
    pub(super) fn read(&self) -> usize {
        self.fact + self.other
    }

    /// Entries of `mail` not yet read (a stop among them too).
    pub(super) fn left(&self, mail: &Mail) -> usize {
        (mail.facts.len() - self.fact.min(mail.facts.len()))
            + (mail.others.len() - self.other.min(mail.others.len()))
    }
}

/// What [`Mail::next`] read.
#[derive(Debug)]
pub(super) enum Item<'m> {
    /// A decision record, now in the decoder's record.
    Decision,
    Other(&'m Entry),
}

/// The writer's side of reading mail: the record each decision is read
/// into, and the modules seen, so that one module's strings are one
/// `Arc` each however many records name it (what the renderer's memo of
/// a module's line is keyed on).
#[derive(Debug)]
pub(super) struct Decoder {
    pub(super) record: DecisionEntry,
    modules: Modules,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            record: DecisionEntry {
                at_ms: 0,
                phase: Phase::Call,
                text: super::entry::Texts::default(),
                arguments: None,
                identity: Identity::Anonymous,
                verdict: Verdict::Deny,
                reason: Reason::NoPolicy,
                evidence: Arc::from(Vec::new()),
                identify: Duration::ZERO,
                decide: Duration::ZERO,
                total: Duration::ZERO,
                upstream: None,
            },
            modules: Modules::default(),
        }
    }
}

/// Most modules remembered; past it the list starts again.
const MODULES: usize = 64;

#[derive(Debug, Default)]
struct Modules(Vec<[Arc<str>; 3]>);

impl Modules {
    fn get(&mut self, name: &str, version: &str, hash: &str) -> (Arc<str>, Arc<str>, Arc<str>) {
        let found = self
            .0
            .iter()
            .find(|[n, v, h]| **h == *hash && **n == *name && **v == *version);
        let [n, v, h] = match found {
            Some(m) => m.clone(),
            None => {
                if self.0.len() >= MODULES {
                    self.0.clear();
                }
                let m: [Arc<str>; 3] = [name.into(), version.into(), hash.into()];
                self.0.push(m.clone());
                m
            }
        };
        (n, v, h)
    }
}

#[cfg(test)]
#[path = "outbox_tests.rs"]
mod tests;
