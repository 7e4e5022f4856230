//! Record stage, per request: the decisions of one request wait here, each
//! with its reserved place in the decision log's outbox, until the request
//! is done — so their records carry the upstream's status and latency — and
//! go to the log when it drops, however the request ended (answered,
//! refused, failed, or the caller gone).

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::audit::{DecisionEntry, Masks, Permit, Texts, Upstream};
use crate::decide::{Decision, DecisionInput, Phase, Reason, Verdict};

use super::Recorder;

/// The decision records of one request.
#[derive(Debug)]
pub struct RequestLog {
    recorder: std::sync::Arc<Recorder>,
    route: String,
    started: Instant,
    identify: Duration,
    pending: Mutex<Pending<Waiting>>,
    upstream: Mutex<Option<Upstream>>,
}

/// A record waiting for its request to end, with its place in the log's
/// outbox.
type Waiting = (DecisionEntry, Permit);

/// The records a request waits with: one for a call (held in place, no
/// allocation), more for a batch.
#[derive(Debug)]
struct Pending<T> {
    first: Option<T>,
    more: Vec<T>,
}

impl<T> Default for Pending<T> {
    fn default() -> Self {
        Self {
            first: None,
            more: Vec::new(),
        }
    }
}

impl<T> Pending<T> {
    fn push(&mut self, waiting: T) {
        if self.first.is_none() {
            self.first = Some(waiting);
        } else {
            self.more.push(waiting);
        }
    }

    /// Every record, in the order pushed; empty after.
    fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.first.take().into_iter().chain(self.more.drain(..))
    }
}

impl RequestLog {
    /// For a request on `route` that started at `started` and took
    /// `identify` to identify its caller.
    pub fn new(
        recorder: std::sync::Arc<Recorder>,
        route: &str,
        started: Instant,
        identify: Duration,
    ) -> Self {
        recorder.identify_latency(route, identify);
        Self {
            recorder,
            route: route.to_owned(),
            started,
            identify,
            pending: Mutex::new(Pending::default()),
            upstream: Mutex::new(None),
        }
    }

    /// Scrubs the values of masked arguments out of a module's reason
    /// (a module may quote the arguments it judged). Done as soon as the
    /// policy answers, before the reason is kept anywhere — a parked
    /// call's approval, its grant — and again by [`Self::decision`].
    pub fn scrub(&self, input: &DecisionInput<'_>, decision: &mut Decision) {
        decision.message = self.scrubbed(input.arguments, std::mem::take(&mut decision.message));
    }

    /// `arguments` as the decision log shows them (`audit.mask`), for an
    /// answer that repeats them.
    pub fn masked(&self, arguments: &Value) -> Value {
        self.recorder
            .audit()
            .map_or_else(|| arguments.clone(), |a| a.masks().at("", arguments))
    }

    /// A grant's constraints as the decision log would show the values
    /// they compare with (`audit.mask`), for an answer that repeats them.
    pub fn mask_constraints(&self, constraints: &mut [crate::store::model::Constraint]) {
        if let Some(audit) = self.recorder.audit() {
            audit.masks().constraints(constraints);
        }
    }

    /// `text` (free text that may quote `arguments`: a reason, an agent's
    /// why) with the values of masked arguments scrubbed out.
    pub fn scrubbed(&self, arguments: &Value, text: String) -> String {
        let Some(audit) = self.recorder.audit() else {
            return text;
        };
        if audit.masks().is_empty() || text.is_empty() {
            return text;
        }
        let seen = audit.masks().values(arguments);
        match Masks::scrub(&text, &seen) {
            Cow::Owned(clean) => clean,
            Cow::Borrowed(_) => text,
        }
    }

    /// Records one decision that took `decide` in policy, and returns it as
    /// final: refused (`audit_unavailable`) if it would run unrecorded while
    /// the log fails closed; its message with masked argument values
    /// scrubbed out.
    pub fn decision(
        &self,
        input: &DecisionInput<'_>,
        mut decision: Decision,
        decide: Duration,
        trace_id: &str,
    ) -> Decision {
        let Some(audit) = self.recorder.audit() else {
            self.recorder.decision(input, &decision, trace_id);
            self.recorder.decide_latency(&self.route, decide);
            return decision;
        };
        self.scrub(input, &mut decision);
        let permit = if input.phase == Phase::List {
            None
        } else {
            let permit = audit.reserve();
            if permit.is_none() {
                audit.dropped(audit.refused_because());
                if audit.fail_closed() && input.phase == Phase::Call && decision.is_allow() {
                    decision.verdict = Verdict::Deny;
                    decision.reason = Reason::AuditUnavailable;
                    decision.message =
                        "the decision log cannot record this call; try again later".into();
                }
            }
            permit
        };
        self.recorder.decision(input, &decision, trace_id);
        self.recorder.decide_latency(&self.route, decide);
        if let Some(permit) = permit {
            // Masks need the value; without any, its JSON text will do.
            let masked = !audit.masks().is_empty();
            let mut text = spare_texts();
            with_json((!masked).then_some(input.arguments), |arguments| {
                text.set([
                    Some(&input.route.name),
                    Some(input.method),
                    Some(input.tool),
                    decision.task.as_deref(),
                    Some(&decision.message),
                    decision.grant.as_deref(),
                    decision.approval.as_deref(),
                    arguments,
                    Some(trace_id),
                ]);
            });
            let record = DecisionEntry {
                at_ms: crate::audit::now_ms(),
                phase: input.phase,
                text,
                arguments: masked.then(|| input.arguments.clone()),
                identity: input.identity.clone(),
                verdict: decision.verdict,
                reason: decision.reason,
                evidence: std::sync::Arc::clone(&decision.evidence),
                identify: self.identify,
                decide,
                total: Duration::ZERO,
                upstream: None,
            };
            if let Ok(mut pending) = self.pending.lock() {
                pending.push((record, permit));
            }
        }
        decision
    }

    /// What the upstream answered the request's allowed calls.
    pub fn upstream(&self, upstream: Upstream) {
        if let Ok(mut slot) = self.upstream.lock() {
            *slot = Some(upstream);
        }
    }
}

thread_local! {
    /// Where arguments are serialized before they are copied into a record.
    static JSON: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    /// Records' string buffers, kept for this thread's next records once
    /// their facts are in the log's outbox.
    static TEXTS_KEPT: std::cell::RefCell<Vec<Texts>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Most string buffers a thread keeps.
const KEPT: usize = 64;
/// A buffer bigger than this is freed, not kept.
const KEPT_BYTES: usize = 4096;

/// A string buffer this thread kept, or a new one.
fn spare_texts() -> Texts {
    // `try_with`: a record dropped while the thread's locals are being
    // torn down gets a new buffer, never a panic.
    TEXTS_KEPT
        .try_with(|kept| kept.try_borrow_mut().ok().and_then(|mut k| k.pop()))
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps `texts` for this thread's next record, if there is room.
fn keep_texts(texts: Texts) {
    if texts.capacity() > KEPT_BYTES {
        return;
    }
    let _ = TEXTS_KEPT.try_with(|kept| {
        if let Ok(mut kept) = kept.try_borrow_mut()
            && kept.len() < KEPT
        {
            kept.push(texts);
        }
    });
}

/// Calls `f` with `value` as JSON text (`None` for none), serialized into
/// a buffer this thread keeps.
fn with_json<R>(value: Option<&serde_json::Value>, f: impl FnOnce(Option<&str>) -> R) -> R {
    let Some(value) = value else {
        return f(None);
    };
    JSON.with(|cell| {
        let Ok(mut buf) = cell.try_borrow_mut() else {
            // Re-entered (never, in practice): a buffer of its own.
            return f(Some(&value.to_string()));
        };
        buf.clear();
        // A `Value` always serializes, into valid UTF-8.
        let _ = serde_json::to_writer(&mut *buf, value);
        let text = std::str::from_utf8(&buf).ok();
        let out = f(text);
        // A huge argument does not stay pinned in the buffer.
        if buf.capacity() > 64 * 1024 {
            *buf = Vec::new();
        }
        out
    })
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let total = self.started.elapsed();
        self.recorder.request_latency(&self.route, total);
        let upstream = self.upstream.get_mut().ok().and_then(|u| *u);
        let Ok(pending) = self.pending.get_mut() else {
            return;
        };
        for (mut record, permit) in pending.drain() {
            record.total = total;
            if record.verdict == Verdict::Allow && record.phase == Phase::Call {
                record.upstream = upstream;
            }
            permit.send_decision(&mut record);
            // Its evidence is let go here, on the thread that made it.
            keep_texts(record.text);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{KEPT, KEPT_BYTES, Pending, keep_texts, spare_texts, with_json};

    #[test]
    fn pending_records_leave_in_the_order_they_came_and_only_once() {
        let mut p = Pending::default();
        assert_eq!(p.drain().count(), 0);
        p.push(1);
        assert_eq!(p.more.capacity(), 0, "one record needs no allocation");
        p.push(2);
        p.push(3);
        assert_eq!(p.drain().collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(p.drain().count(), 0);
        p.push(4);
        assert_eq!(p.drain().collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn a_thread_keeps_small_string_buffers_for_its_next_records_only() {
        // A fresh thread: its own pool, empty.
        std::thread::spawn(|| {
            assert_eq!(
                spare_texts().capacity(),
                0,
                "nothing kept yet: a new buffer"
            );
            let mut small = crate::audit::Texts::default();
            small.set([Some("a route"); crate::audit::TEXTS]);
            let held = small.capacity();
            keep_texts(small);
            assert_eq!(spare_texts().capacity(), held, "the kept buffer comes back");
            let mut big = crate::audit::Texts::default();
            big.set([Some(&*"x".repeat(KEPT_BYTES)); crate::audit::TEXTS]);
            keep_texts(big);
            assert_eq!(
                spare_texts().capacity(),
                0,
                "a big buffer is freed, not kept"
            );
            for _ in 0..KEPT + 10 {
                keep_texts(crate::audit::Texts::new([Some("r"); crate::audit::TEXTS]));
            }
            let mut back = 0;
            while spare_texts().capacity() > 0 {
                back += 1;
            }
            assert_eq!(back, KEPT, "at most KEPT are kept");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn arguments_are_serialized_as_serde_json_writes_them_and_none_stays_none() {
        let v = json!({"q": "a \"quoted\" é\n", "n": [1, 2.5, null], "o": {}});
        let text = with_json(Some(&v), |t| t.map(str::to_owned));
        assert_eq!(text.as_deref(), Some(v.to_string().as_str()));
        // The buffer is reused: a shorter value leaves nothing of the last.
        let short = with_json(Some(&json!(1)), |t| t.map(str::to_owned));
        assert_eq!(short.as_deref(), Some("1"));
        assert_eq!(with_json(None, |t| t.map(str::to_owned)), None);
    }
}
