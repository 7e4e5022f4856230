//! The facts of one call every stage after understanding needs, the
//! forward step, and the `list`-phase filter of `tools/list` results.

use super::*;
use crate::audit::Upstream;

/// The facts of one call that every stage after understanding needs.
pub(super) struct Call<'a> {
    pub(super) recorder: &'a Recorder,
    pub(super) snapshot: &'a Arc<Snapshot>,
    pub(super) route: &'a Arc<Route>,
    pub(super) rest: &'a str,
    pub(super) identity: Identity,
    pub(super) trace: &'a Trace,
    pub(super) conn: ConnInfo,
    pub(super) facts: RequestFacts,
    pub(super) tasks: &'a Arc<Tasks>,
    /// The task this request runs in and its live context.
    pub(super) live: Live,
    /// Whether a call of this request was already held for an approval.
    pub(super) held: std::sync::atomic::AtomicBool,
    /// The request's decision records, sent to the decision log when it ends.
    pub(super) log: RequestLog<'a>,
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

impl Call<'_> {
    pub(super) fn input<'i>(
        &'i self,
        phase: Phase,
        tool: &'i str,
        arguments: &'i Value,
        method: &'i str,
        context: &'i ContextWire,
    ) -> DecisionInput<'i> {
        DecisionInput {
            phase,
            route: self.route,
            tool,
            arguments,
            method,
            identity: &self.identity,
            request: &self.facts,
            context,
        }
    }

    /// Decides one `call`-phase tool call in this request's task context
    /// and settles it (grant use, approval), logging the final decision.
    pub(super) async fn decide_call(
        &self,
        tool: &str,
        arguments: &Value,
        method: &str,
    ) -> Decision {
        let store = self.tasks.store();
        let (context, grants) = match self.live.refusal() {
            Some(_) => Default::default(),
            None => self.live.for_call(store.as_ref(), &self.route.name, tool),
        };
        let input = self.input(Phase::Call, tool, arguments, method, &context);
        let mut decide = std::time::Duration::ZERO;
        let decision = match self.live.refusal() {
            Some(refusal) => refusal,
            None => {
                let started = std::time::Instant::now();
                let decision = self.snapshot.policy.decide(&input);
                decide = started.elapsed();
                crate::context::settle(
                    crate::context::Settle {
                        tasks: self.tasks,
                        snapshot: self.snapshot,
                        route: self.route,
                        live: &self.live,
                        tool,
                        arguments,
                        grants,
                        held: &self.held,
                    },
                    decision,
                )
                .await
            }
        };
        self.log
            .decision(&input, decision, decide, self.trace.trace_id())
    }

    pub(super) fn list_edit(&self, list_ids: Vec<Value>, any_list_result: bool) -> ResponseEdit {
        if list_ids.is_empty() && !any_list_result {
            return ResponseEdit::default();
        }
        ResponseEdit {
            list_ids,
            any_list_result,
            filter: Some(Arc::new(ListFilter {
                snapshot: Arc::clone(self.snapshot),
                route: Arc::clone(self.route),
                identity: self.identity.clone(),
                trace_id: self.trace.trace_id().to_owned(),
                recorder: self.recorder.clone(),
                facts: self.facts.clone(),
                tasks: Arc::clone(self.tasks),
                live: self.live.clone(),
            })),
            extra: Vec::new(),
        }
    }

    pub(super) async fn forward(
        &self,
        mut parts: Parts,
        body: Bytes,
        edit: ResponseEdit,
        batch: bool,
    ) -> Result<(Response<Body>, Outcome), Problem> {
        if edit.inspects() {
            // An answer the gateway must read cannot come compressed.
            parts.headers.insert(
                http::header::ACCEPT_ENCODING,
                http::HeaderValue::from_static("identity"),
            );
        }
        let out = Outbound {
            route: self.route,
            rest: self.rest,
            parts,
            body,
            conn: self.conn,
            trace: self.trace,
        };
        let started = std::time::Instant::now();
        let sent = forward::send(out, self.recorder).await;
        self.log.upstream(match &sent {
            Ok(resp) => Upstream::Status(resp.status().as_u16(), started.elapsed()),
            Err(problem) => Upstream::Failed(problem.code(), started.elapsed()),
        });
        let resp = sent?;
        let resp = forward::relay(
            self.route,
            resp,
            edit,
            batch,
            self.snapshot.limits.max_inspected_response,
        )
        .await?;
        Ok((resp, "forwarded"))
    }
}

/// The `list` phase: a tool appears in `tools/list` only if policy would
/// show it to this caller. A tool without a name is never shown.
pub(super) struct ListFilter {
    pub(super) recorder: Recorder,
    pub(super) snapshot: Arc<Snapshot>,
    pub(super) route: Arc<Route>,
    pub(super) identity: Identity,
    trace_id: String,
    pub(super) facts: RequestFacts,
    tasks: Arc<Tasks>,
    live: Live,
}

impl ToolFilter for ListFilter {
    fn keep(&self, tool: &Value) -> bool {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return false;
        };
        self.recorder.tools().observe(name);
        let (context, _) = self
            .live
            .for_tool(self.tasks.store().as_ref(), &self.route.name, name);
        let input = DecisionInput {
            phase: Phase::List,
            route: &self.route,
            tool: name,
            arguments: &Value::Null,
            method: "tools/list",
            identity: &self.identity,
            request: &self.facts,
            context: &context,
        };
        let decision = match self.live.refusal() {
            Some(refusal) => refusal,
            None => self.snapshot.policy.decide(&input),
        };
        self.recorder.decision(&input, &decision, &self.trace_id);
        decision.is_allow()
    }
}
