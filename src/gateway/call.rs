//! The facts of one call every stage after understanding needs; the
//! decide → settle → record step, run so that it cannot be cut halfway;
//! the forward step; and the `list`-phase filter of `tools/list` results.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_util::sync::CancellationToken;

use super::mcp_tasks::Started;
use super::param_headers::ParamHeaders;
use super::*;
use crate::audit::Upstream;
use crate::context::Live;
use crate::decide::{ContextWire, Reason, Verdict};

/// One request's calls, from understanding to the answer.
pub(super) struct Call<'a> {
    pub(super) decider: Arc<Decider>,
    pub(super) rest: &'a str,
    pub(super) trace: &'a Trace,
    pub(super) conn: ConnInfo,
}

/// What deciding a call of one request needs, owned: each decision runs on
/// a task of its own to its record, even if the request is dropped meanwhile
/// (a caller that half-closes or resets its stream, a connection cut). A
/// request dropped before its answer is counted as `caller_gone`, with a
/// line for every grant use its calls spent.
pub(super) struct Decider {
    pub(super) recorder: Arc<Recorder>,
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) route: Arc<Route>,
    pub(super) identity: Identity,
    pub(super) facts: RequestFacts,
    pub(super) tasks: Arc<Tasks>,
    /// Where the tools' mirrored parameters are learnt from their lists.
    pub(super) param_headers: Arc<ParamHeaders>,
    /// The task this request runs in and its live context.
    pub(super) live: Live,
    pub(super) trace_id: String,
    /// Whether a call of this request was already held for an approval.
    held: AtomicBool,
    /// The grant uses this request's calls spent, as (tool, grant id).
    spent: Mutex<Vec<(String, String)>>,
    /// Set once the request has its answer (forwarded, refused or failed).
    answered: AtomicBool,
    /// The request's decision records, sent to the decision log when the
    /// last holder of this decider drops it (however the request ended).
    pub(super) log: RequestLog,
    /// The policy time this request may still use.
    budget: crate::decide::Budget,
}

/// What one decision is about: a tool call, or a JSON-RPC method the
/// gateway does not know (decided as a call of tool `""`, see README).
#[derive(Debug, Clone, Copy)]
pub(super) enum Asked<'a> {
    Tool {
        name: &'a str,
        arguments: &'a Value,
        method: &'a str,
    },
    Method {
        method: &'a str,
        params: &'a Value,
    },
}

impl<'a> Asked<'a> {
    /// The tool (`""` for a method), its arguments and the method.
    fn parts(self) -> (&'a str, &'a Value, &'a str) {
        match self {
            Asked::Tool {
                name,
                arguments,
                method,
            } => (name, arguments, method),
            Asked::Method { method, params } => ("", params, method),
        }
    }
}

/// The request facts policy sees: era, protocol version, a few harmless headers.
pub(super) fn request_facts(parts: &Parts, understood: &Understood, route: &Route) -> RequestFacts {
    let era = match understood {
        Understood::Mcp { era, .. } => Some(match era {
            Era::Legacy { .. } => "legacy",
            Era::Modern { .. } => "modern",
        }),
        Understood::McpStream | Understood::Http { .. } => None,
    };
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let headers = ["user-agent", "x-request-id"]
        .into_iter()
        .filter_map(|name| header(name).map(|v| (name, v)))
        .collect();
    let task_hint = route
        .auth
        .as_ref()
        .and_then(|a| a.task_header.as_ref())
        .and_then(|name| header(name.as_str()));
    RequestFacts {
        era,
        protocol_version: header(era::PROTOCOL_VERSION_HEADER),
        headers,
        task_hint,
    }
}

// === impl Decider ===

impl Decider {
    pub(super) fn new(
        gateway: &Gateway,
        snapshot: &Arc<Snapshot>,
        route: &Arc<Route>,
        identity: Identity,
        facts: RequestFacts,
        trace: &Trace,
        log: RequestLog,
    ) -> Self {
        let live = Live::build(gateway.tasks.store().as_ref(), &identity, &facts);
        Self {
            recorder: Arc::clone(&gateway.recorder),
            snapshot: Arc::clone(snapshot),
            route: Arc::clone(route),
            identity,
            facts,
            tasks: Arc::clone(&gateway.tasks),
            param_headers: Arc::clone(&gateway.param_headers),
            live,
            trace_id: trace.trace_id().to_owned(),
            held: AtomicBool::new(false),
            spent: Mutex::new(Vec::new()),
            answered: AtomicBool::new(false),
            log,
            budget: crate::decide::Budget::new(snapshot.policy_limits.request_budget()),
        }
    }

    /// Records a refusal decided without policy (a follow-up of an MCP
    /// task this caller did not start) and returns it.
    pub(super) fn refuse(&self, asked: Asked<'_>, decision: Decision) -> Decision {
        let (tool, arguments, method) = asked.parts();
        let context = crate::decide::ContextWire::default();
        let input = DecisionInput {
            phase: Phase::Call,
            route: &self.route,
            tool,
            arguments,
            method,
            identity: &self.identity,
            request: &self.facts,
            context: &context,
        };
        self.log
            .decision(&input, decision, std::time::Duration::ZERO, &self.trace_id)
    }

    /// Who owns what this caller starts (MCP tasks): its principal, `""`
    /// for anonymous callers.
    pub(super) fn owner(&self) -> String {
        self.identity.principal().unwrap_or_default().to_owned()
    }

    /// The request has its answer: nothing it spent went undelivered.
    pub(super) fn answered(&self) {
        self.answered.store(true, Ordering::Relaxed);
    }

    /// Decides one `call`-phase call in this request's task context, settles
    /// it (grant use, approval) and records the final decision — the one
    /// place a call's decision is recorded. `caller_left` ends a hold early.
    /// A follow-up of an MCP task (`carried`) is decided in the toolgate
    /// task its call started in, and keeps that call's grant unspent.
    async fn decide(
        &self,
        asked: Asked<'_>,
        carried: Option<&Started>,
        caller_left: &CancellationToken,
    ) -> Decision {
        let (tool, arguments, method) = asked.parts();
        let store = self.tasks.store();
        let carried_live = carried
            .and_then(|c| c.task.as_deref())
            .filter(|task| self.live.task_id() != Some(*task))
            .map(|task| {
                let facts = RequestFacts {
                    task_hint: Some(task.to_owned()),
                    ..self.facts.clone()
                };
                Live::build(store.as_ref(), &self.identity, &facts)
            });
        let live = carried_live.as_ref().unwrap_or(&self.live);
        let kept = carried.and_then(|c| c.grant.as_deref());
        let (context, grants) = match live.refusal() {
            Some(_) => Default::default(),
            None => match kept {
                Some(grant) => live.for_follow_up(store.as_ref(), &self.route.name, tool, grant),
                None => live.for_call(store.as_ref(), &self.route.name, tool),
            },
        };
        let input = DecisionInput {
            phase: Phase::Call,
            route: &self.route,
            tool,
            arguments,
            method,
            identity: &self.identity,
            request: &self.facts,
            context: &context,
        };
        let mut decide = std::time::Duration::ZERO;
        let decision = match live.refusal() {
            Some(refusal) => refusal,
            None => {
                let started = std::time::Instant::now();
                let mut decision = self.snapshot.policy.decide(&input, &self.budget).await;
                decide = started.elapsed();
                if let Asked::Method { method, .. } = asked {
                    decision = unknown_method_default(decision, method);
                }
                self.log.scrub(&input, &mut decision);
                crate::context::settle(
                    crate::context::Settle {
                        tasks: &self.tasks,
                        snapshot: &self.snapshot,
                        route: &self.route,
                        live,
                        tool,
                        arguments,
                        grants,
                        kept,
                        held: &self.held,
                        caller_left,
                    },
                    decision,
                )
                .await
            }
        };
        let decision = self.log.decision(&input, decision, decide, &self.trace_id);
        if decision.is_allow()
            && let Some(grant) = &decision.grant
            && let Ok(mut spent) = self.spent.lock()
        {
            spent.push((tool.to_owned(), grant.clone()));
        }
        decision
    }
}

/// A method the gateway does not know is never allowed by a route's
/// default: only a module that decides it may let it through.
fn unknown_method_default(mut decision: Decision, method: &str) -> Decision {
    match decision.reason {
        Reason::RouteDefaultAllow => {
            decision.verdict = Verdict::Deny;
            decision.reason = Reason::NoPolicy;
            decision.message = format!(
                "no policy module decides method {method:?} here, and a method toolgate does not know is denied whatever the route's default"
            );
            decision
        }
        Reason::NoPolicy
        | Reason::PolicyAllow
        | Reason::PolicyDeny
        | Reason::NeedsApproval
        | Reason::PolicyError
        | Reason::StoreUnavailable
        | Reason::TaskEnded
        | Reason::TaskInvalid
        | Reason::GrantExhausted
        | Reason::Approved
        | Reason::ApprovalPending
        | Reason::ApprovalDenied
        | Reason::AuditUnavailable
        | Reason::PolicyBusy
        | Reason::PolicyBudget => decision,
    }
}

impl Drop for Decider {
    fn drop(&mut self) {
        if *self.answered.get_mut() {
            return;
        }
        // The request was dropped before its answer: count it, and name
        // every grant use one of its calls spent (policy allowed it, the
        // use is stored, the caller never saw the outcome).
        self.recorder.request(&self.route.name, "caller_gone");
        let spent = match self.spent.get_mut() {
            Ok(spent) => std::mem::take(spent),
            Err(poisoned) => std::mem::take(poisoned.into_inner()),
        };
        for (tool, grant) in spent {
            tracing::warn!(
                target: "toolgate::decision",
                route = %self.route.name,
                tool,
                grant,
                task = self.live.task_id(),
                trace_id = %self.trace_id,
                outcome = "caller_gone",
                "a grant use was spent on a call whose caller left before the upstream answered: the answer was not delivered",
            );
        }
    }
}

// === impl Call ===

impl Call<'_> {
    /// Decides one call (see [`Decider::decide`]) on a task of its own: if
    /// this request is dropped meanwhile, the decision still completes and
    /// is recorded, and a call held for an approval stops waiting.
    pub(super) async fn decide_call(&self, asked: Asked<'_>) -> Decision {
        self.decide_follow_up(asked, None).await
    }

    /// Like [`Self::decide_call`], for a follow-up of the MCP task `carried`.
    pub(super) async fn decide_follow_up(
        &self,
        asked: Asked<'_>,
        carried: Option<Started>,
    ) -> Decision {
        let decider = Arc::clone(&self.decider);
        let owned = Owned::from(asked);
        let left = CancellationToken::new();
        let caller_left = left.clone().drop_guard();
        // Boxed: the decision's future is large, and a box is moved into
        // the task by pointer instead of copied there.
        let decided = tokio::spawn(Box::pin(async move {
            decider.decide(owned.asked(), carried.as_ref(), &left).await
        }))
        .await;
        caller_left.disarm();
        decided.unwrap_or_else(|e| {
            tracing::error!(route = %self.decider.route.name, error = %e, "a decision task failed");
            Decision::new(
                Verdict::Deny,
                Reason::PolicyError,
                "the decision could not be completed".into(),
            )
        })
    }

    pub(super) fn list_edit(&self, list_ids: Vec<Value>, any_list_result: bool) -> ResponseEdit {
        if list_ids.is_empty() && !any_list_result {
            return ResponseEdit::default();
        }
        ResponseEdit {
            list_ids,
            any_list_result,
            filter: Some(Arc::new(ListFilter {
                decider: Arc::clone(&self.decider),
            })),
            extra: Vec::new(),
            watch: None,
        }
    }

    pub(super) async fn forward(
        &self,
        mut parts: Parts,
        body: Bytes,
        edit: ResponseEdit,
        batch: bool,
    ) -> Result<(Response<Body>, Outcome), Problem> {
        if edit.reads() {
            // An answer the gateway must read cannot come compressed.
            parts.headers.insert(
                http::header::ACCEPT_ENCODING,
                http::HeaderValue::from_static("identity"),
            );
        }
        let d = &self.decider;
        let out = Outbound {
            route: &d.route,
            rest: self.rest,
            parts,
            body,
            conn: self.conn,
            trace: self.trace,
        };
        let started = std::time::Instant::now();
        let sent = forward::send(out, &d.recorder).await;
        d.log.upstream(match &sent {
            Ok(resp) => Upstream::Status(resp.status().as_u16(), started.elapsed()),
            Err(problem) => Upstream::Failed(problem.code(), started.elapsed()),
        });
        let resp = sent?;
        let resp = forward::relay(
            &d.route,
            resp,
            edit,
            batch,
            d.snapshot.limits.max_inspected_response,
        )
        .await?;
        Ok((resp, "forwarded"))
    }
}

/// An [`Asked`] that a decision task owns.
enum Owned {
    Tool {
        name: String,
        arguments: Value,
        method: String,
    },
    Method {
        method: String,
        params: Value,
    },
}

impl From<Asked<'_>> for Owned {
    fn from(asked: Asked<'_>) -> Self {
        match asked {
            Asked::Tool {
                name,
                arguments,
                method,
            } => Self::Tool {
                name: name.to_owned(),
                arguments: arguments.clone(),
                method: method.to_owned(),
            },
            Asked::Method { method, params } => Self::Method {
                method: method.to_owned(),
                params: params.clone(),
            },
        }
    }
}

impl Owned {
    fn asked(&self) -> Asked<'_> {
        match self {
            Self::Tool {
                name,
                arguments,
                method,
            } => Asked::Tool {
                name,
                arguments,
                method,
            },
            Self::Method { method, params } => Asked::Method { method, params },
        }
    }
}

/// The `list` phase: a tool appears in `tools/list` only if policy would
/// show it to this caller. A tool without a name is never shown.
pub(super) struct ListFilter {
    decider: Arc<Decider>,
}

impl ListFilter {
    pub(super) fn new(decider: Arc<Decider>) -> Self {
        Self { decider }
    }

    /// Whether policy shows the tool `name` to this caller, decided where
    /// the caller cannot wait (a notification passing a stream's watch):
    /// see [`crate::decide::PolicySet::decide_now`].
    pub(super) fn shows_now(&self, name: &str) -> bool {
        let d = &self.decider;
        // Learnt before its list decision is counted, so that one carries it too.
        d.recorder.tools().observe(name);
        let (context, _) = d
            .live
            .for_tool(d.tasks.store().as_ref(), &d.route.name, name);
        let input = self.input(name, &context);
        let decision = match d.live.refusal() {
            Some(refusal) => refusal,
            None => d.snapshot.policy.decide_now(&input, &d.budget),
        };
        d.recorder.decision(&input, &decision, &d.trace_id);
        decision.is_allow()
    }

    fn input<'a>(&'a self, name: &'a str, context: &'a ContextWire) -> DecisionInput<'a> {
        let d = &self.decider;
        DecisionInput {
            phase: Phase::List,
            route: &d.route,
            tool: name,
            arguments: &Value::Null,
            method: "tools/list",
            identity: &d.identity,
            request: &d.facts,
            context,
        }
    }

    /// Decides every tool of one list at once (one context, one set of
    /// module instances and one count of the metrics for the list; slow
    /// modules on the policy pool) and records each decision.
    async fn keep_all(&self, tools: &[Value]) -> Vec<bool> {
        let d = &self.decider;
        let names: Vec<Option<&str>> = tools
            .iter()
            .map(|t| t.get("name").and_then(Value::as_str))
            .collect();
        let named: Vec<&str> = names.iter().flatten().copied().collect();
        // Learnt before their list decisions are counted, so those carry them too.
        d.recorder.tools().observe_all(&named);
        for (tool, name) in tools.iter().zip(&names) {
            if let Some(name) = name {
                d.param_headers.learn(&d.route.name, name, tool);
            }
        }
        let contexts = d
            .live
            .for_tools(d.tasks.store().as_ref(), &d.route.name, &named);
        let inputs: Vec<DecisionInput<'_>> = named
            .iter()
            .zip(&contexts)
            .map(|(name, context)| self.input(name, context))
            .collect();
        let decisions = match d.live.refusal() {
            Some(refusal) => vec![refusal; inputs.len()],
            None => d.snapshot.policy.decide_list(&inputs, &d.budget).await,
        };
        d.recorder.list_decisions(&inputs, &decisions, &d.trace_id);
        let mut shown = decisions.iter().map(Decision::is_allow);
        names
            .iter()
            .map(|name| name.is_some() && shown.next().unwrap_or(false))
            .collect()
    }
}

impl ToolFilter for ListFilter {
    fn keep<'a>(&'a self, tools: &'a [Value]) -> crate::forward::body::Kept<'a> {
        Box::pin(self.keep_all(tools))
    }
}
