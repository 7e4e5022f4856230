//! Decide stage: one [`Decision`] per tool call (and per tool in a
//! `tools/list` result) from the snapshot's policy set — sandboxed WASM
//! policy modules. A denial is a value, not an error; any error while
//! deciding denies (reason `policy_error`).

pub mod abi;
pub mod cache;
pub mod engine;
pub mod input;
mod list;
pub mod module;
pub mod opa;
pub mod pool;
pub mod reload;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::config::{self, DefaultDecision};
use crate::identify::Identity;
use crate::snapshot::Route;
use engine::PolicyEngine;
use module::{Fault, PolicyModule};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("policy {name:?}: {fault}")]
    Module { name: String, fault: Fault },
    #[error("{0}")]
    Engine(#[from] engine::Error),
}

/// Why a call is being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A `tools/call` (or one request on an `http` route).
    Call,
    /// Whether to show a tool in a `tools/list` result.
    List,
    /// An agent's own request for a grant: `allow` grants it at once.
    Grant,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Call => "call",
            Self::List => "list",
            Self::Grant => "grant",
        }
    }
}

/// Request facts policy may use besides the call itself.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// `legacy` or `modern` on MCP routes.
    pub era: Option<&'static str>,
    pub protocol_version: Option<String>,
    /// A few non-secret headers (e.g. `user-agent`); never credentials.
    pub headers: Vec<(&'static str, String)>,
    /// The task id the route's `auth.task_header` names. Only a hint: it is
    /// trusted (and reaches policy) once the task record names this caller
    /// as its agent, which the task-context stage checks; until then unused.
    pub task_hint: Option<String>,
}

/// The live task context of a call, already in its wire form (ABI.md:
/// `task`, `grants`, `counters`, `recent_calls`). Built once per call by the
/// context stage; `None` fields are sent as `null` / `[]`.
#[derive(Debug, Clone, Default)]
pub struct ContextWire {
    pub task: LazyJson,
    pub grants: Option<Arc<serde_json::value::RawValue>>,
    pub counters: LazyJson,
    pub recent_calls: LazyJson,
}

impl ContextWire {
    /// No task: every field empty.
    pub fn none() -> &'static Self {
        static NONE: ContextWire = ContextWire {
            task: LazyJson::NONE,
            grants: None,
            counters: LazyJson::NONE,
            recent_calls: LazyJson::NONE,
        };
        &NONE
    }
}

/// A context field serialized when a module first reads it, once for every
/// module and decision that share it. Few modules read the task, its
/// counters or its recent calls, and serializing those was a good part of
/// every call's cost (README "Performance").
#[derive(Clone, Default)]
pub struct LazyJson(Option<Arc<Pending>>);

type MakeJson = dyn Fn() -> Option<Arc<serde_json::value::RawValue>> + Send + Sync;

struct Pending {
    json: std::sync::OnceLock<Option<Arc<serde_json::value::RawValue>>>,
    make: Box<MakeJson>,
}

impl LazyJson {
    /// Absent: sent as the field's empty value.
    pub const NONE: Self = Self(None);

    /// Serialized by `make` on first use.
    pub fn new(
        make: impl Fn() -> Option<Arc<serde_json::value::RawValue>> + Send + Sync + 'static,
    ) -> Self {
        Self(Some(Arc::new(Pending {
            json: std::sync::OnceLock::new(),
            make: Box::new(make),
        })))
    }

    /// The JSON, serialized now if no one asked before.
    pub fn get(&self) -> Option<&serde_json::value::RawValue> {
        let pending = self.0.as_ref()?;
        pending.json.get_or_init(|| (pending.make)()).as_deref()
    }
}

impl std::fmt::Debug for LazyJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_ref().map(|p| p.json.get()) {
            None => f.write_str("LazyJson(none)"),
            Some(None) => f.write_str("LazyJson(pending)"),
            Some(Some(json)) => write!(f, "LazyJson({json:?})"),
        }
    }
}

/// Everything a decision may depend on.
#[derive(Debug, Clone, Copy)]
pub struct DecisionInput<'a> {
    pub phase: Phase,
    pub route: &'a Route,
    pub tool: &'a str,
    pub arguments: &'a Value,
    /// The JSON-RPC method, or the HTTP method on `http` routes.
    pub method: &'a str,
    pub identity: &'a Identity,
    pub request: &'a RequestFacts,
    /// The task, its grants matching this tool, counters, recent calls.
    pub context: &'a ContextWire,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    NeedsApproval,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
            Self::NeedsApproval => "needs_approval",
        }
    }
}

/// Why a decision came out as it did. The same string is the metric label,
/// the log field and (for refusals) part of the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No policy module applies and the route allows by default.
    RouteDefaultAllow,
    /// No policy module applies and the route denies by default.
    NoPolicy,
    /// Every applicable module allowed.
    PolicyAllow,
    /// A module denied.
    PolicyDeny,
    /// A module asked for a human's approval.
    NeedsApproval,
    /// A module failed (trap, deadline, memory, bad output): fail closed.
    PolicyError,
    /// Policy allowed by a counted grant whose use could not be recorded
    /// (the task store is not writable): fail closed.
    StoreUnavailable,
    /// The call's task was completed, cancelled or expired.
    TaskEnded,
    /// The call names a task that does not exist or is not this caller's.
    TaskInvalid,
    /// Policy allowed by a grant that had no use left (or ended) when counted.
    GrantExhausted,
    /// Policy asked for approval and an approval grant for this exact call allowed it.
    Approved,
    /// Policy asked for approval; the call is parked until an operator answers.
    ApprovalPending,
    /// Policy asked for approval and an operator denied it.
    ApprovalDenied,
    /// The decision log cannot take the call's record (`audit.on_failure =
    /// "fail_closed"`): nothing runs unrecorded.
    AuditUnavailable,
    /// A slow module's queue was full (`policy_limits.max_queued`).
    PolicyBusy,
    /// The request had used its policy time (`policy_limits.request_budget`).
    PolicyBudget,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RouteDefaultAllow => "route_default_allow",
            Self::NoPolicy => "no_policy",
            Self::PolicyAllow => "policy_allow",
            Self::PolicyDeny => "policy_deny",
            Self::NeedsApproval => "needs_approval",
            Self::PolicyError => "policy_error",
            Self::StoreUnavailable => "store_unavailable",
            Self::TaskEnded => "task_ended",
            Self::TaskInvalid => "task_invalid",
            Self::GrantExhausted => "grant_exhausted",
            Self::Approved => "approved",
            Self::ApprovalPending => "approval_pending",
            Self::ApprovalDenied => "approval_denied",
            Self::AuditUnavailable => "audit_unavailable",
            Self::PolicyBusy => "policy_busy",
            Self::PolicyBudget => "policy_budget",
        }
    }
}

/// What one module contributed to a decision, for the decision log.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub module: Arc<str>,
    pub version: Arc<str>,
    /// First 12 hex digits of the module's SHA-256.
    pub hash: Arc<str>,
    /// The module's verdict, or the kind of its fault.
    pub outcome: Result<Verdict, &'static str>,
    /// The module's own reason, if it gave one.
    pub reason: Option<String>,
    /// The grant its `annotations` name (`"grant": "<id>"`): the one an
    /// allow was given by. The only annotation anything reads, taken out
    /// here so that neither settling nor the decision log walks the map.
    pub grant: Option<String>,
}

/// The grants the allowing modules of `evidence` named, in order (a
/// grant named twice comes twice).
pub fn named_grants(evidence: &[Evidence]) -> impl Iterator<Item = &str> {
    evidence
        .iter()
        .filter(|e| e.outcome == Ok(Verdict::Allow))
        .filter_map(|e| e.grant.as_deref())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// Why, in words: shown to the agent's model on a refusal.
    pub message: String,
    /// Shared: the decision log's record takes it without a copy.
    pub evidence: Arc<[Evidence]>,
    /// The task the call ran in, the grant it used, the approval it
    /// parked or was allowed by: for the decision log.
    pub task: Option<String>,
    pub grant: Option<String>,
    pub approval: Option<String>,
}

impl Decision {
    pub fn new(verdict: Verdict, reason: Reason, message: String) -> Self {
        Self {
            verdict,
            reason,
            message,
            evidence: Arc::from([]),
            task: None,
            grant: None,
            approval: None,
        }
    }

    pub fn verdict(&self) -> &'static str {
        self.verdict.as_str()
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }

    pub fn is_allow(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// The text an agent's model is shown when the call is refused.
    pub fn refusal_text(&self) -> Option<String> {
        match self.verdict {
            Verdict::Allow => None,
            Verdict::Deny => Some(format!(
                "toolgate denied this call ({}): {}",
                self.reason.as_str(),
                self.message
            )),
            Verdict::NeedsApproval => Some(format!(
                "toolgate needs a human approval for this call ({}): {}",
                self.reason.as_str(),
                self.message
            )),
        }
    }
}

/// How much policy time one request (a JSON-RPC batch, with the filtering
/// of any list it returns) may use; past it, its remaining decisions are
/// refused with `policy_budget`.
#[derive(Debug)]
pub struct Budget {
    limit_ns: u64,
    used_ns: AtomicU64,
}

impl Budget {
    pub fn new(limit: Duration) -> Self {
        Self {
            limit_ns: u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX),
            used_ns: AtomicU64::new(0),
        }
    }

    /// For what is not a request (benchmarks, tools).
    pub fn unlimited() -> Self {
        Self::new(Duration::MAX)
    }

    fn charge(&self, took: Duration) {
        let took = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .used_ns
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_add(took))
            });
    }

    fn refusal(&self) -> Option<Decision> {
        let used = self.used_ns.load(Ordering::Relaxed);
        (used >= self.limit_ns).then(|| budget_refusal(self.limit_ns))
    }

    /// The policy time left, in ns.
    fn remaining_ns(&self) -> u64 {
        self.limit_ns
            .saturating_sub(self.used_ns.load(Ordering::Relaxed))
    }
}

/// The refusal of a decision past its request's budget of `limit_ns`.
fn budget_refusal(limit_ns: u64) -> Decision {
    Decision::new(
        Verdict::Deny,
        Reason::PolicyBudget,
        format!(
            "this request used its policy time ({} ms, policy_limits.request_budget): \
             send fewer calls in one request",
            limit_ns / 1_000_000
        ),
    )
}

/// The refusal of a decision whose slow module's queue is full.
fn busy_refusal() -> Decision {
    Decision::new(
        Verdict::Deny,
        Reason::PolicyBusy,
        "policy is busy: too many calls wait for this slow policy module \
         (policy_limits.max_queued); retry later"
            .into(),
    )
}

/// The refusal of a decision whose evaluation on the policy pool failed.
fn pool_failure() -> Decision {
    Decision::new(
        Verdict::Deny,
        Reason::PolicyError,
        "the policy evaluation failed".into(),
    )
}

/// The policy modules in force.
#[derive(Debug, Default)]
pub struct PolicySet {
    modules: Vec<Arc<PolicyModule>>,
    /// Slow modules' queue bound and threads (`[policy_limits]`).
    max_queued: usize,
    workers: usize,
}

impl PolicySet {
    /// Loads every configured module: compiled (through the disk cache),
    /// imports checked, test vectors passed. Any failure refuses the set.
    pub fn build(
        policies: &[config::Policy],
        limits: &config::PolicyLimits,
    ) -> Result<Self, Error> {
        if policies.is_empty() {
            return Ok(Self::default());
        }
        let workers = limits.workers.unwrap_or_else(pool::default_workers);
        let engine = PolicyEngine::global()?;
        let modules = policies
            .iter()
            .map(|p| {
                PolicyModule::load(&engine, p, limits)
                    .map(Arc::new)
                    .map_err(|fault| Error::Module {
                        name: p.name.clone(),
                        fault,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for m in &modules {
            tracing::info!(policy = %m.name, version = %m.version, hash = %&m.hash[..12], "policy module loaded");
        }
        Ok(Self {
            modules,
            max_queued: limits.max_queued,
            workers,
        })
    }

    pub fn modules(&self) -> &[Arc<PolicyModule>] {
        &self.modules
    }

    fn applicable(&self, input: &DecisionInput<'_>) -> Vec<&Arc<PolicyModule>> {
        self.modules
            .iter()
            .filter(|m| m.applies(&input.route.name, input.tool, input.phase))
            .collect()
    }

    /// Evaluates every applicable module: any deny ⇒ deny; else any
    /// needs_approval ⇒ needs approval; else allow. With none applicable the
    /// route's default answers. Modules that have been quick run on this
    /// task; if one has been slow, all run on the policy pool (`pool.rs`),
    /// refused with `policy_busy` when its queue is full. Each evaluation is
    /// charged to `budget`.
    pub async fn decide(&self, input: &DecisionInput<'_>, budget: &Budget) -> Decision {
        let applicable = self.applicable(input);
        if applicable.is_empty() {
            return route_default(input);
        }
        if let Some(refused) = budget.refusal() {
            return refused;
        }
        let wire = input::encode(input);
        if applicable.iter().all(|m| m.runs_inline()) {
            let (decision, took) = combine(applicable.iter().map(|m| (*m, &wire)), input.tool);
            budget.charge(took);
            return decision;
        }
        let owned: Vec<(Arc<PolicyModule>, Vec<u8>)> = applicable
            .iter()
            .map(|m| (Arc::clone(m), m.input_bytes(&wire)))
            .collect();
        drop(wire);
        // The call waits in the lane of its first slow module: a flood into
        // one module waits behind itself, not in front of other modules.
        let lane = applicable
            .iter()
            .find(|m| !m.runs_inline())
            .map_or(0, |m| Arc::as_ptr(m) as usize);
        let tool = input.tool.to_owned();
        let job = move || combine(owned.iter().map(|(m, doc)| (m, doc.as_slice())), &tool);
        let answer = match pool::pool(self.workers).submit(lane, self.max_queued, job) {
            Ok(answer) => answer,
            Err(pool::Busy) => return busy_refusal(),
        };
        match answer.await {
            Ok((decision, took)) => {
                budget.charge(took);
                decision
            }
            Err(_) => pool_failure(),
        }
    }

    /// [`Self::decide`] where the caller cannot wait (the `list`-phase
    /// filter of a streamed answer, benchmarks): on this thread, but a slow
    /// module runs with the async runtime told that this thread blocks, so
    /// its other tasks move to other threads.
    pub fn decide_now(&self, input: &DecisionInput<'_>, budget: &Budget) -> Decision {
        let applicable = self.applicable(input);
        if applicable.is_empty() {
            return route_default(input);
        }
        if let Some(refused) = budget.refusal() {
            return refused;
        }
        let wire = input::encode(input);
        let run = || combine(applicable.iter().map(|m| (*m, &wire)), input.tool);
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        let (decision, took) = if multi_thread && !applicable.iter().all(|m| m.runs_inline()) {
            tokio::task::block_in_place(run)
        } else {
            run()
        };
        budget.charge(took);
        decision
    }
}

/// Evaluates each module on its document and combines their verdicts;
/// also how long the evaluations took.
fn combine<'m, D>(
    modules: impl Iterator<Item = (&'m Arc<PolicyModule>, &'m D)>,
    tool: &str,
) -> (Decision, Duration)
where
    D: input::Document + ?Sized + 'm,
{
    let mut verdicts = Verdicts::new(tool);
    for (module, doc) in modules {
        verdicts.evaluate(module, |m| m.evaluate(doc));
    }
    verdicts.finish()
}

/// The verdicts of one decision's modules as they come in, combined: any
/// deny ⇒ deny; else any needs_approval ⇒ needs approval; else allow.
struct Verdicts<'t> {
    tool: &'t str,
    decision: Decision,
    evidence: Vec<Evidence>,
    took: Duration,
}

impl<'t> Verdicts<'t> {
    fn new(tool: &'t str) -> Self {
        Self {
            tool,
            decision: Decision::new(Verdict::Allow, Reason::PolicyAllow, String::new()),
            evidence: Vec::with_capacity(2),
            took: Duration::ZERO,
        }
    }

    /// Runs one module's evaluation (timed, noted in its moving average)
    /// and folds its answer in.
    fn evaluate(
        &mut self,
        module: &PolicyModule,
        run: impl FnOnce(&PolicyModule) -> Result<module::Answer, Fault>,
    ) {
        let timer = module.start_run();
        let answer = run(module);
        let took = module.observe(timer, matches!(answer, Err(Fault::Deadline)));
        self.took += took;
        // The module's own reason and named grant move into its evidence.
        let mut evidence = Evidence {
            module: Arc::clone(&module.name),
            version: Arc::clone(&module.version),
            hash: Arc::clone(&module.short_hash),
            outcome: answer.as_ref().map(|a| a.verdict).map_err(Fault::kind),
            reason: None,
            grant: None,
        };
        let (verdict, reason, message) = match answer {
            Ok(a) => {
                evidence.grant = a.named_grant();
                match a.verdict {
                    Verdict::Allow => {
                        evidence.reason = a.reason;
                        self.evidence.push(evidence);
                        return;
                    }
                    Verdict::Deny => {
                        evidence.reason.clone_from(&a.reason);
                        (
                            Verdict::Deny,
                            Reason::PolicyDeny,
                            a.reason.unwrap_or_default(),
                        )
                    }
                    Verdict::NeedsApproval => {
                        evidence.reason.clone_from(&a.reason);
                        (
                            Verdict::NeedsApproval,
                            Reason::NeedsApproval,
                            a.reason.unwrap_or_default(),
                        )
                    }
                }
            }
            Err(fault) => {
                tracing::warn!(policy = %module.name, tool = self.tool, error = %fault, "policy module failed; denying");
                (
                    Verdict::Deny,
                    Reason::PolicyError,
                    format!("policy {} failed", module.name),
                )
            }
        };
        self.evidence.push(evidence);
        // The strongest verdict wins; among equals the first keeps its reason.
        if rank(verdict) > rank(self.decision.verdict) {
            self.decision.verdict = verdict;
            self.decision.reason = reason;
            self.decision.message = message;
        }
    }

    /// The combined decision, and how long its evaluations took.
    fn finish(mut self) -> (Decision, Duration) {
        self.decision.evidence = self.evidence.into();
        (self.decision, self.took)
    }
}

fn rank(v: Verdict) -> u8 {
    match v {
        Verdict::Allow => 0,
        Verdict::NeedsApproval => 1,
        Verdict::Deny => 2,
    }
}

fn route_default(input: &DecisionInput<'_>) -> Decision {
    match input.route.default_decision {
        DefaultDecision::Allow => {
            Decision::new(Verdict::Allow, Reason::RouteDefaultAllow, String::new())
        }
        DefaultDecision::Deny => Decision::new(
            Verdict::Deny,
            Reason::NoPolicy,
            format!(
                "no policy allows tool {:?} on route {:?}",
                input.tool, input.route.name
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(outcome: Result<Verdict, &'static str>, grant: Option<&str>) -> Evidence {
        Evidence {
            module: Arc::from("m"),
            version: Arc::from("0.1.0"),
            hash: Arc::from("dea943f91623"),
            outcome,
            reason: None,
            grant: grant.map(str::to_owned),
        }
    }

    #[test]
    fn only_allowing_modules_name_grants() {
        let evidence = [
            evidence(Ok(Verdict::Allow), Some("grant_a")),
            evidence(Ok(Verdict::Deny), Some("grant_denied")),
            evidence(Err("trap"), Some("grant_fault")),
            evidence(Ok(Verdict::Allow), None),
            evidence(Ok(Verdict::NeedsApproval), Some("grant_parked")),
            evidence(Ok(Verdict::Allow), Some("grant_b")),
        ];
        assert_eq!(
            named_grants(&evidence).collect::<Vec<_>>(),
            ["grant_a", "grant_b"]
        );
    }
}
