//! Decide stage: one [`Decision`] per tool call (and per tool in a
//! `tools/list` result) from the snapshot's policy set — sandboxed WASM
//! policy modules. A denial is a value, not an error; any error while
//! deciding denies (reason `policy_error`).

pub mod abi;
pub mod cache;
pub mod engine;
pub mod input;
pub mod module;
pub mod opa;
pub mod reload;

use std::sync::Arc;

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
    pub task: Option<Arc<serde_json::value::RawValue>>,
    pub grants: Option<Arc<serde_json::value::RawValue>>,
    pub counters: Option<Arc<serde_json::value::RawValue>>,
    pub recent_calls: Option<Arc<serde_json::value::RawValue>>,
}

impl ContextWire {
    /// No task: every field empty.
    pub fn none() -> &'static Self {
        static NONE: ContextWire = ContextWire {
            task: None,
            grants: None,
            counters: None,
            recent_calls: None,
        };
        &NONE
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
            Self::TaskEnded => "task_ended",
            Self::TaskInvalid => "task_invalid",
            Self::GrantExhausted => "grant_exhausted",
            Self::Approved => "approved",
            Self::ApprovalPending => "approval_pending",
            Self::ApprovalDenied => "approval_denied",
            Self::AuditUnavailable => "audit_unavailable",
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
    pub annotations: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// Why, in words: shown to the agent's model on a refusal.
    pub message: String,
    pub evidence: Vec<Evidence>,
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
            evidence: Vec::new(),
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

/// The policy modules in force.
#[derive(Debug, Default)]
pub struct PolicySet {
    modules: Vec<Arc<PolicyModule>>,
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
        Ok(Self { modules })
    }

    pub fn modules(&self) -> &[Arc<PolicyModule>] {
        &self.modules
    }

    /// Evaluates every applicable module: any deny ⇒ deny; else any
    /// needs_approval ⇒ needs approval; else allow. With none applicable the
    /// route's default answers.
    pub fn decide(&self, input: &DecisionInput<'_>) -> Decision {
        let mut applicable = self
            .modules
            .iter()
            .filter(|m| m.applies(&input.route.name, input.tool, input.phase))
            .peekable();
        if applicable.peek().is_none() {
            return route_default(input);
        }
        let wire = input::encode(input);
        let mut decision = Decision::new(Verdict::Allow, Reason::PolicyAllow, String::new());
        for module in applicable {
            let answer = module.evaluate(&wire);
            let (outcome, own_reason, annotations) = match &answer {
                Ok(a) => (Ok(a.verdict), a.reason.clone(), a.annotations.clone()),
                Err(fault) => (Err(fault.kind()), None, None),
            };
            decision.evidence.push(Evidence {
                module: Arc::clone(&module.name),
                version: Arc::clone(&module.version),
                hash: Arc::clone(&module.short_hash),
                outcome,
                reason: own_reason,
                annotations,
            });
            let (verdict, reason, message) = match answer {
                Ok(a) => match a.verdict {
                    Verdict::Allow => continue,
                    Verdict::Deny => (
                        Verdict::Deny,
                        Reason::PolicyDeny,
                        a.reason.unwrap_or_default(),
                    ),
                    Verdict::NeedsApproval => (
                        Verdict::NeedsApproval,
                        Reason::NeedsApproval,
                        a.reason.unwrap_or_default(),
                    ),
                },
                Err(fault) => {
                    tracing::warn!(policy = %module.name, tool = input.tool, error = %fault, "policy module failed; denying");
                    (
                        Verdict::Deny,
                        Reason::PolicyError,
                        format!("policy {} failed", module.name),
                    )
                }
            };
            // The strongest verdict wins; among equals the first keeps its reason.
            if rank(verdict) > rank(decision.verdict) {
                decision.verdict = verdict;
                decision.reason = reason;
                decision.message = message;
            }
        }
        decision
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
