//! Record stage, on the writer thread: an [`Entry`] becomes a [`Line`] —
//! arguments masked, masked values scrubbed from free text, task purpose
//! and labels, grant and approval facts looked up in the store — and is
//! serialized into the batch buffer.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::entry::{AdminEntry, DecisionEntry, Entry, EventEntry, Upstream};
use super::line::{
    AdminLine, ApprovalLine, Arguments, Body, DecisionLine, EventLine, GrantLine, IdentityLine,
    LatencyLine, Line, LogLine, ModuleLine, TaskLine, UpstreamLine, VERSION,
};
use super::mask::Masks;
use crate::decide::{Evidence, Reason, Verdict};
use crate::identify::Identity;
use crate::store::{ApprovalKind, GrantSource, Store};

pub(crate) mod json;

/// Task facts cached per task id: `None` when the store does not know it.
type TaskFacts = Option<Arc<TaskMemo>>;

/// What the store says of a task, and its lines' `task` object, made once.
#[derive(Debug)]
struct TaskMemo {
    purpose: String,
    labels: BTreeMap<String, String>,
    json: Box<[u8]>,
}

/// A loaded module's `{"name":…,"version":…,"sha256":…`, made once. Its
/// strings are the module's own, shared with every decision's evidence:
/// the memo holds them, so a pointer seen again is the same module.
#[derive(Debug)]
struct ModuleMemo {
    name: Arc<str>,
    version: Arc<str>,
    hash: Arc<str>,
    head: Box<[u8]>,
}

/// Cached task facts past this many are forgotten at once.
const TASK_CACHE: usize = 4096;

/// Module memos past this many (reloads make new ones) are forgotten at once.
const MODULE_CACHE: usize = 64;

/// Turns entries into lines.
pub(crate) struct Renderer {
    /// The millisecond of the last id, and the ids given within it.
    id_ms: u64,
    id_seq: u16,
    /// The millisecond of the last line and its RFC 3339 text.
    ts: (u64, String),
    masks: Arc<Masks>,
    store: Option<Arc<dyn Store>>,
    tasks: HashMap<String, TaskFacts>,
    /// The last task looked up: busy logs name the same task line after line.
    last_task: Option<(String, TaskFacts)>,
    modules: Vec<ModuleMemo>,
    /// The last grant whose approval was looked up, and the answer (a
    /// grant's approval and approver never change).
    last_grant: Option<(String, Option<(String, String)>)>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

impl Renderer {
    pub(crate) fn new(masks: Arc<Masks>, store: Option<Arc<dyn Store>>) -> Self {
        Self {
            id_ms: 0,
            id_seq: 0,
            ts: (0, String::new()),
            masks,
            store,
            tasks: HashMap::new(),
            last_task: None,
            modules: Vec::new(),
            last_grant: None,
        }
    }

    /// Appends `entry` as line `seq` (without its hash) to `buf`; returns its kind.
    pub(crate) fn entry(
        &mut self,
        entry: &Entry,
        seq: u64,
        prev: &str,
        buf: &mut Vec<u8>,
    ) -> &'static str {
        let (at_ms, body) = match entry {
            Entry::Event(e) => (e.at_ms, self.event(e)),
            Entry::Admin(a) => (a.at_ms, admin(a)),
            // Never rendered: the writer stops at it.
            Entry::Stop(_) => (super::now_ms(), log("stop", None)),
        };
        let kind = kind_of(&body);
        self.write(at_ms, seq, prev, body, buf);
        kind
    }

    /// Appends one of the log's own lines.
    pub(crate) fn log(&mut self, line: LogLine<'_>, seq: u64, prev: &str, buf: &mut Vec<u8>) {
        self.write(super::now_ms(), seq, prev, Body::Log(line), buf);
    }

    /// A decision: the line nearly every line of a busy log is, written
    /// without serde and with its identity, task and modules' parts copied
    /// from what earlier lines made of them.
    pub(super) fn write_decision(
        &mut self,
        d: &DecisionEntry,
        seq: u64,
        prev: &str,
        buf: &mut Vec<u8>,
    ) {
        // The task's facts are held here, so that the line borrows them
        // rather than copying the purpose and labels for every call.
        let facts = d.task().map(|id| self.task_facts(id));
        let approved_by = self.approved_by(d);
        self.remember_modules(&d.evidence);
        self.stamp(d.at_ms);
        let id = self.next_id(d.at_ms, seq);
        let mut id_buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let head = json::Head {
            v: VERSION,
            seq,
            id: id.hyphenated().encode_lower(&mut id_buf),
            ts: self.ts.1.as_str(),
        };
        let line = self.decision(d, facts.as_ref(), approved_by);
        let mut made = json::Made {
            identity: match &d.identity {
                Identity::Workload(w) => Some(w.log_json(|| json::identity_json(&line.identity))),
                Identity::Anonymous => None,
            },
            task: facts.as_ref().and_then(Option::as_ref).map(|m| &*m.json),
            ..json::Made::default()
        };
        for (slot, e) in made.modules.iter_mut().zip(d.evidence.iter()) {
            *slot = self.module_memo(e).map(|m| &*m.head);
        }
        json::decision(buf, &head, &line, &made, prev);
    }

    fn write(&mut self, at_ms: u64, seq: u64, prev: &str, body: Body<'_>, buf: &mut Vec<u8>) {
        self.stamp(at_ms);
        let id = self.next_id(at_ms, seq);
        let mut id_buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = id.hyphenated().encode_lower(&mut id_buf);
        let line = Line {
            v: VERSION,
            seq,
            id: Cow::Borrowed(id),
            ts: Cow::Borrowed(self.ts.1.as_str()),
            body,
            prev: Cow::Borrowed(prev),
            hash: String::new(),
        };
        // Plain data always serializes; a failure would leave no line.
        if serde_json::to_writer(&mut *buf, &line).is_err() {
            tracing::error!("a decision-log line could not be serialized");
        }
    }

    /// Makes `ts` the text of `at_ms`: under load many lines share a
    /// millisecond, and its text is made once.
    fn stamp(&mut self, at_ms: u64) {
        if self.ts.0 != at_ms || self.ts.1.is_empty() {
            self.ts = (at_ms, timestamp(at_ms));
        }
    }

    /// A UUIDv7 for line `seq` stamped `at_ms`: the millisecond, a 12-bit
    /// count of the ids given within it (ids of one millisecond sort in the
    /// order written), and 62 random bits from [`crate::random`] — no
    /// system call per line. Without randomness the line's `seq` stands in:
    /// unique within the log still.
    fn next_id(&mut self, at_ms: u64, seq: u64) -> uuid::Uuid {
        if at_ms == self.id_ms {
            self.id_seq = self.id_seq.wrapping_add(1);
        } else {
            (self.id_ms, self.id_seq) = (at_ms, 0);
        }
        let mut bytes = [0u8; 10];
        bytes[..2].copy_from_slice(&(self.id_seq & 0x0fff).to_be_bytes());
        if !crate::random::fill(&mut bytes[2..]) {
            bytes[2..].copy_from_slice(&seq.to_be_bytes());
        }
        uuid::Builder::from_unix_timestamp_millis(at_ms, &bytes).into_uuid()
    }

    fn decision<'e>(
        &self,
        d: &'e DecisionEntry,
        facts: Option<&'e TaskFacts>,
        approved_by: Option<(String, String)>,
    ) -> DecisionLine<'e> {
        let mut seen = Vec::new();
        let arguments = match (&d.arguments, d.arguments_json()) {
            (Some(args), _) => {
                let mut args = args.clone();
                self.masks.apply(&mut args, &mut seen);
                Arguments::Value(Cow::Owned(args))
            }
            (None, Some(json)) => Arguments::Json(Cow::Borrowed(json)),
            // Never: the request path fills one or the other.
            (None, None) => Arguments::Value(Cow::Owned(serde_json::Value::Null)),
        };
        let modules = d
            .evidence
            .iter()
            .map(|e| {
                let (verdict, reason) = match e.outcome {
                    Ok(v) => (
                        v.as_str(),
                        e.reason.as_deref().map(|r| Masks::scrub(r, &seen)),
                    ),
                    Err(fault) => ("fault", Some(Cow::Borrowed(fault))),
                };
                ModuleLine {
                    name: Cow::Borrowed(&e.module),
                    version: Cow::Borrowed(&e.version),
                    sha256: Cow::Borrowed(&e.hash),
                    verdict: Cow::Borrowed(verdict),
                    reason,
                }
            })
            .collect();
        let mut grants: Vec<Cow<'e, str>> = Vec::new();
        if d.verdict == Verdict::Allow {
            for id in crate::decide::named_grants(&d.evidence).chain(d.grant()) {
                if !grants.iter().any(|g| g == id) {
                    grants.push(Cow::Borrowed(id));
                }
            }
        }
        // A grant from an approval names who approved: the approver acted
        // for this call, whichever module allowed it by that grant.
        let mut approval = d.approval().map(Cow::Borrowed);
        let approver = if let Some((id, by)) = approved_by {
            approval.get_or_insert(Cow::Owned(id));
            Some(by)
        } else if d.reason == Reason::ApprovalDenied {
            d.approval()
                .and_then(|id| self.store.as_ref()?.approval(id)?.decided)
                .map(|e| e.by)
        } else {
            None
        };
        let (upstream, upstream_us) = match d.upstream {
            None => (None, None),
            Some(Upstream::Status(status, t)) => (
                Some(UpstreamLine {
                    status: Some(status),
                    error: None,
                }),
                Some(micros(t)),
            ),
            Some(Upstream::Failed(code, t)) => (
                Some(UpstreamLine {
                    status: None,
                    error: Some(Cow::Borrowed(code)),
                }),
                Some(micros(t)),
            ),
        };
        let message = (!d.message().is_empty()).then(|| Masks::scrub(d.message(), &seen));
        DecisionLine {
            phase: Cow::Borrowed(d.phase.as_str()),
            route: Cow::Borrowed(d.route()),
            method: Cow::Borrowed(d.method()),
            tool: Cow::Borrowed(d.tool()),
            arguments,
            identity: identity(&d.identity),
            task: d.task().map(|id| task_line(id, facts)),
            grants,
            approval,
            approver: approver.map(Cow::Owned),
            modules,
            decision: Cow::Borrowed(d.verdict.as_str()),
            reason: Cow::Borrowed(d.reason.as_str()),
            message,
            latency_us: LatencyLine {
                identify: micros(d.identify),
                decide: micros(d.decide),
                upstream: upstream_us,
                total: micros(d.total),
            },
            upstream,
            trace_id: (!d.trace_id().is_empty()).then_some(Cow::Borrowed(d.trace_id())),
        }
    }

    /// The approval, and who answered it, of the first grant that allowed
    /// `d` and came from one (the last grant asked about is remembered).
    fn approved_by(&mut self, d: &DecisionEntry) -> Option<(String, String)> {
        if d.verdict != Verdict::Allow {
            return None;
        }
        for id in crate::decide::named_grants(&d.evidence).chain(d.grant()) {
            let found = match &self.last_grant {
                Some((last, found)) if last == id => found.clone(),
                _ => {
                    let found = self.store.as_ref().and_then(|s| s.grant_approval(id));
                    self.last_grant = Some((id.to_owned(), found.clone()));
                    found
                }
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }

    /// Makes a memo for each module of `evidence` not seen before.
    fn remember_modules(&mut self, evidence: &[Evidence]) {
        for e in evidence {
            if self.module_memo(e).is_some() {
                continue;
            }
            if self.modules.len() >= MODULE_CACHE {
                self.modules.clear();
            }
            self.modules.push(ModuleMemo {
                name: Arc::clone(&e.module),
                version: Arc::clone(&e.version),
                hash: Arc::clone(&e.hash),
                head: json::module_head(&e.module, &e.version, &e.hash).into_boxed_slice(),
            });
        }
    }

    fn module_memo(&self, e: &Evidence) -> Option<&ModuleMemo> {
        self.modules.iter().find(|m| {
            Arc::ptr_eq(&m.hash, &e.hash)
                && Arc::ptr_eq(&m.name, &e.module)
                && Arc::ptr_eq(&m.version, &e.version)
        })
    }

    /// What the store says of task `id` (cached; `None` if it does not
    /// know it).
    fn task_facts(&mut self, id: &str) -> TaskFacts {
        if let Some((last, facts)) = &self.last_task
            && last == id
        {
            return facts.clone();
        }
        let facts = match self.tasks.get(id) {
            Some(facts) => facts.clone(),
            None => {
                if self.tasks.len() > TASK_CACHE {
                    self.tasks.clear();
                }
                let facts = self.store.as_ref().and_then(|s| s.task(id)).map(|t| {
                    let line = TaskLine {
                        id: Cow::Borrowed(id),
                        purpose: Some(Cow::Borrowed(t.purpose.as_str())),
                        labels: Cow::Borrowed(&t.labels),
                    };
                    let json = json::task_json(&line).into_boxed_slice();
                    Arc::new(TaskMemo {
                        purpose: t.purpose,
                        labels: t.labels,
                        json,
                    })
                });
                self.tasks.insert(id.to_owned(), facts.clone());
                facts
            }
        };
        self.last_task = Some((id.to_owned(), facts.clone()));
        facts
    }

    fn event<'e>(&mut self, e: &'e EventEntry) -> Body<'e> {
        let store = self.store.clone();
        let mut line = EventLine {
            event: Cow::Borrowed(e.event),
            target: (!e.id.is_empty()).then_some(Cow::Borrowed(e.id.as_str())),
            // Events are few: their task line owns a copy of the facts.
            task: (!e.task.is_empty()).then(|| {
                let facts = self.task_facts(&e.task);
                let (purpose, labels) = facts
                    .as_deref()
                    .map(|m| (m.purpose.clone(), m.labels.clone()))
                    .unzip();
                TaskLine {
                    id: Cow::Borrowed(e.task.as_str()),
                    purpose: purpose.map(Cow::Owned),
                    labels: Cow::Owned(labels.unwrap_or_default()),
                }
            }),
            actor: (!e.actor.is_empty()).then_some(Cow::Borrowed(e.actor.as_str())),
            count: e.count,
            grant: None,
            approval: None,
        };
        if e.event.starts_with("grant_") {
            line.grant = store.as_ref().and_then(|s| s.grant(&e.id)).map(grant);
            return Body::Grant(line);
        }
        if e.event.starts_with("task_") {
            return Body::Task(line);
        }
        // Facts as of the event: a parked approval is not answered yet,
        // even if the writer looks it up after an operator did.
        let answered = e.event != "approval_parked";
        if let Some(a) = store.as_ref().and_then(|s| s.approval(&e.id)) {
            let mut arguments = a.arguments;
            // A reason may quote the arguments it judged.
            let seen = self.masks.values(&arguments);
            let why = Masks::scrub(&a.why, &seen).into_owned();
            self.masks.apply(&mut arguments, &mut Vec::new());
            line.approval = Some(ApprovalLine {
                kind: Cow::Borrowed(match a.kind {
                    ApprovalKind::Call => "call",
                    ApprovalKind::Request => "request",
                }),
                route: Cow::Owned(a.route),
                tool: Cow::Owned(a.tool),
                agent: Cow::Owned(a.agent),
                arguments: Cow::Owned(arguments),
                why: (!why.is_empty()).then_some(Cow::Owned(why)),
                decided_by: a.decided.filter(|_| answered).map(|d| Cow::Owned(d.by)),
                grant: a.grant_id.filter(|_| answered).map(Cow::Owned),
            });
        }
        Body::Approval(line)
    }
}

fn grant(g: crate::store::Grant) -> GrantLine<'static> {
    let (source, approval, evidence) = match g.source {
        GrantSource::Operator => ("operator", None, Vec::new()),
        GrantSource::Approval { approval_id } => ("approval", Some(approval_id), Vec::new()),
        GrantSource::Policy {
            approval_id,
            evidence,
        } => ("policy", Some(approval_id), evidence),
    };
    GrantLine {
        tool: Cow::Owned(g.tool),
        route: g.route.map(Cow::Owned),
        constraints: g.constraints.len(),
        expires_at_ms: g.expires_at_ms,
        max_uses: g.max_uses,
        granted_by: Cow::Owned(g.granted_by),
        source: Cow::Borrowed(source),
        approval: approval.map(Cow::Owned),
        evidence: evidence.into_iter().map(Cow::Owned).collect(),
        reason: Cow::Owned(g.reason),
    }
}

/// The `task` of a line: its id, and its purpose and labels when known.
fn task_line<'e>(id: &'e str, facts: Option<&'e TaskFacts>) -> TaskLine<'e> {
    match facts.and_then(Option::as_ref) {
        Some(f) => TaskLine {
            id: Cow::Borrowed(id),
            purpose: Some(Cow::Borrowed(f.purpose.as_str())),
            labels: Cow::Borrowed(&f.labels),
        },
        None => TaskLine {
            id: Cow::Borrowed(id),
            purpose: None,
            labels: Cow::Owned(BTreeMap::new()),
        },
    }
}

fn admin(a: &AdminEntry) -> Body<'_> {
    Body::Admin(AdminLine {
        actor: Cow::Borrowed(&a.actor),
        role: Cow::Borrowed(a.role),
        action: Cow::Borrowed(&a.action),
        target: a.target.as_deref().map(Cow::Borrowed),
        outcome: Cow::Borrowed(&a.outcome),
        remote: a.remote.as_deref().map(Cow::Borrowed),
    })
}

fn log(event: &'static str, cause: Option<&'static str>) -> Body<'static> {
    Body::Log(LogLine {
        event: Cow::Borrowed(event),
        cause: cause.map(Cow::Borrowed),
        previous: None,
        count: None,
    })
}

fn identity(identity: &Identity) -> IdentityLine<'_> {
    match identity {
        Identity::Anonymous => IdentityLine {
            subject: Cow::Borrowed("anonymous"),
            issuer: None,
            user: None,
            agent: None,
            chain: Vec::new(),
        },
        Identity::Workload(w) => IdentityLine {
            subject: Cow::Borrowed(&w.subject),
            issuer: Some(Cow::Borrowed(&w.issuer)),
            user: w.delegation.user.as_deref().map(Cow::Borrowed),
            agent: w.delegation.agent.as_deref().map(Cow::Borrowed),
            chain: w
                .delegation
                .intermediaries
                .iter()
                .map(|s| Cow::Borrowed(s.as_str()))
                .collect(),
        },
    }
}

/// The `kind` of a body, for metrics.
pub(crate) fn kind_of(body: &Body<'_>) -> &'static str {
    match body {
        Body::Decision(_) => "decision",
        Body::Task(_) => "task",
        Body::Grant(_) => "grant",
        Body::Approval(_) => "approval",
        Body::Admin(_) => "admin",
        Body::Log(_) => "log",
    }
}

/// `at_ms` as an RFC 3339 UTC timestamp with milliseconds.
fn timestamp(at_ms: u64) -> String {
    let ms = i64::try_from(at_ms).unwrap_or(i64::MAX);
    let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    format!("{ts:.3}")
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_stamped_with_the_line_and_ordered_within_a_millisecond() {
        let mut r = Renderer::new(Arc::new(Masks::new(&[], None)), None);
        let at = 1_764_843_072_005;
        let ids: Vec<uuid::Uuid> = (1..=5).map(|seq| r.next_id(at, seq)).collect();
        for id in &ids {
            assert_eq!(id.get_version_num(), 7);
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            assert_eq!(secs * 1000 + u64::from(nanos / 1_000_000), at);
        }
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // A new millisecond starts its count again, after the last one.
        let next = r.next_id(at + 1, 6);
        assert!(next > ids[4]);
        let mut line = Vec::new();
        r.log(log_line(), 7, crate::audit::chain::GENESIS, &mut line);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let ts = v["ts"].as_str().unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z'), "{ts}");
        assert_eq!(v["id"].as_str().unwrap().len(), 36);
    }

    fn log_line() -> LogLine<'static> {
        LogLine {
            event: "opened".into(),
            cause: None,
            previous: None,
            count: None,
        }
    }

    #[test]
    fn timestamps_have_milliseconds() {
        assert_eq!(timestamp(1_764_843_072_005), "2025-12-04T10:11:12.005Z");
        assert_eq!(timestamp(1_764_843_072_000), "2025-12-04T10:11:12.000Z");
    }

    #[test]
    fn each_line_is_stamped_with_its_own_millisecond() {
        let mut r = Renderer::new(Arc::new(Masks::new(&[], None)), None);
        let mut stamps = Vec::new();
        for (seq, at_ms) in [
            (1, 1_764_843_072_005),
            (2, 1_764_843_072_005),
            (3, 1_764_843_072_006),
            (4, 5),
        ] {
            let mut line = Vec::new();
            r.write(
                at_ms,
                seq,
                crate::audit::chain::GENESIS,
                log("opened", None),
                &mut line,
            );
            let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
            stamps.push(v["ts"].as_str().unwrap().to_owned());
        }
        assert_eq!(
            stamps,
            [
                "2025-12-04T10:11:12.005Z",
                "2025-12-04T10:11:12.005Z",
                "2025-12-04T10:11:12.006Z",
                "1970-01-01T00:00:00.005Z"
            ]
        );
    }
}
