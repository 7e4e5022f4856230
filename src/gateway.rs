//! The pipeline: one tool call's walk through the stages, from the accepted
//! request to the recorded answer. Each stage lives in its own module; this
//! file only wires them together.

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::Value;

use crate::Body;
use crate::accept::read_body;
use crate::answer::{self, Problem};
use crate::decide::{DecisionInput, Phase, RequestFacts};
use crate::forward::body::{ResponseEdit, ToolFilter};
use crate::forward::headers::Trace;
use crate::forward::{self, Outbound};
use crate::identify::jwks::JwksFetcher;
use crate::identify::keys::KeySet;
use crate::identify::{Identifier, Identity, identify, metadata};
use crate::listener::ConnInfo;
use crate::mcp::{Envelope, Era, MessageKind, era};
use crate::record::Recorder;
use crate::snapshot::{Route, Snapshot};
use crate::understand::{Understood, understand};

/// The running gateway: the current snapshot and the recorder.
#[derive(Debug)]
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    recorder: Recorder,
    identifier: Identifier,
    policy_watch: std::sync::Mutex<Option<notify::RecommendedWatcher>>,
}

/// How a request ended, for the `outcome` metric label.
type Outcome = &'static str;

impl Gateway {
    pub fn new(snapshot: Snapshot, recorder: Recorder) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            recorder,
            identifier: Identifier::new(),
            policy_watch: std::sync::Mutex::new(None),
        })
    }

    pub fn identifier(&self) -> &Identifier {
        &self.identifier
    }

    /// Publishes keys a JWKS fetcher loaded, if its issuer still uses it.
    pub fn publish_keys(&self, fetcher: &Arc<JwksFetcher>, keys: Arc<KeySet>) {
        self.snapshot.rcu(|current| {
            current
                .with_keys(fetcher, Arc::clone(&keys))
                .map_or_else(|| Arc::clone(current), Arc::new)
        });
    }

    /// Swaps in a new policy set, keeping everything else of the snapshot.
    pub fn swap_policy(&self, policy: Arc<crate::decide::PolicySet>) {
        self.snapshot
            .rcu(|current| Arc::new(current.with_policy(Arc::clone(&policy))));
    }

    /// Watches policy module files for changes (see `decide::reload`).
    pub fn watch_policies(self: &Arc<Self>) {
        let watcher = crate::decide::reload::watch(self);
        if let Ok(mut slot) = self.policy_watch.lock() {
            *slot = watcher;
        }
    }

    /// True while the current snapshot still gets keys from `fetcher`.
    pub fn uses_fetcher(&self, fetcher: &Arc<JwksFetcher>) -> bool {
        self.snapshot
            .load()
            .fetchers()
            .any(|f| Arc::ptr_eq(f, fetcher))
    }

    /// Swaps in a new snapshot; requests already running keep the old one.
    pub fn swap(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn recorder(&self) -> &Recorder {
        &self.recorder
    }

    /// Handles one request end to end. Never fails: every problem becomes an answer.
    pub async fn handle(self: Arc<Self>, req: Request<Incoming>, conn: ConnInfo) -> Response<Body> {
        let snapshot = self.snapshot.load_full();
        let path = req.uri().path().to_owned();
        if let Err(problem) = crate::accept::check_path(&path) {
            self.recorder.request("", problem.code());
            return problem.into_response();
        }
        if path.starts_with(metadata::WELL_KNOWN) {
            return match metadata::document(&snapshot, &path) {
                Some(doc) if req.method() == http::Method::GET => {
                    answer::json_response(StatusCode::OK, &doc)
                }
                Some(_) | None => Problem::NoRoute.into_response(),
            };
        }
        let Some((route, rest)) = snapshot.route_for(&path) else {
            self.recorder.request("", Problem::NoRoute.code());
            return Problem::NoRoute.into_response();
        };
        let route = Arc::clone(route);
        let rest = rest.to_owned();
        match self.call(&snapshot, &route, &rest, req, conn).await {
            Ok((resp, outcome)) => {
                self.recorder.request(&route.name, outcome);
                resp
            }
            Err(problem) => {
                self.recorder.request(&route.name, problem.code());
                tracing::info!(route = %route.name, code = problem.code(), status = problem.status().as_u16(), "{problem}");
                problem.into_response()
            }
        }
    }

    async fn call(
        &self,
        snapshot: &Arc<Snapshot>,
        route: &Arc<Route>,
        rest: &str,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> Result<(Response<Body>, Outcome), Problem> {
        let (parts, body) = req.into_parts();
        // Identify before reading the body: an unknown caller costs nothing.
        let identity = identify(self, snapshot, route, &parts)
            .await
            .map_err(|error| {
                self.recorder.auth_failure(&route.name, error.code());
                Problem::Unauthenticated {
                    metadata_url: route
                        .auth
                        .as_ref()
                        .map(|a| a.metadata_url.clone())
                        .unwrap_or_default(),
                    error,
                }
            })?;
        let session = self.check_session(route, &parts, &identity)?;
        let body = read_body(body, &parts.headers, snapshot.limits.max_request_body).await?;
        let trace = Trace::from_headers(&parts.headers);
        let understood = understand(route, &parts, rest, &body)?;
        let call = Call {
            recorder: &self.recorder,
            snapshot,
            route,
            rest,
            identity,
            trace: &trace,
            conn,
            facts: request_facts(&parts, &understood),
        };
        let method = parts.method.clone();
        let result = match understood {
            Understood::McpStream => {
                // A resumed GET stream may replay a tools/list answer: filter any.
                let replayable = parts.method == http::Method::GET;
                let edit = call.list_edit(Vec::new(), replayable);
                call.forward(parts, body, edit, false).await
            }
            Understood::Http { tool, arguments } => {
                let method = parts.method.to_string();
                let input = call.input(Phase::Call, &tool, &arguments, &method);
                let decision = snapshot.policy.decide(&input);
                self.recorder.decision(&input, &decision, trace.trace_id());
                match decision.refusal_text() {
                    None => {
                        call.forward(parts, body, ResponseEdit::default(), false)
                            .await
                    }
                    Some(message) => Err(Problem::Denied {
                        route: route.name.clone(),
                        reason: decision.reason().as_str(),
                        message,
                    }),
                }
            }
            Understood::Mcp { envelope, era } => self.mcp(call, parts, body, envelope, &era).await,
        };
        if let (Ok((resp, _)), Some(principal)) = (&result, session) {
            self.track_session(&route.name, &method, resp, principal);
        }
        result
    }

    /// On an authenticated MCP route, a request naming a session must come
    /// from the principal that opened it. Returns the principal to track.
    fn check_session(
        &self,
        route: &Route,
        parts: &Parts,
        identity: &Identity,
    ) -> Result<Option<(String, Option<String>)>, Problem> {
        if route.kind != crate::config::RouteKind::Mcp {
            return Ok(None);
        }
        let Some(principal) = identity.principal() else {
            return Ok(None);
        };
        let session = parts
            .headers
            .get(era::SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(id) = &session
            && !self
                .identifier
                .sessions
                .owned_by(&route.name, id, &principal)
        {
            return Err(Problem::SessionNotFound);
        }
        Ok(Some((principal, session)))
    }

    /// Binds a session the upstream just opened; forgets one it just ended.
    fn track_session(
        &self,
        route: &str,
        method: &http::Method,
        resp: &Response<Body>,
        (principal, asked): (String, Option<String>),
    ) {
        let sessions = &self.identifier.sessions;
        match asked {
            Some(id) if method == http::Method::DELETE && resp.status().is_success() => {
                sessions.unbind(route, &id)
            }
            Some(_) => {}
            None => {
                if let Some(id) = resp
                    .headers()
                    .get(era::SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                {
                    sessions.bind(route, id, &principal);
                }
            }
        }
    }

    /// Decides every `tools/call` in the messages, answers the refused ones
    /// itself and forwards the rest.
    async fn mcp(
        &self,
        call: Call<'_>,
        parts: Parts,
        body: Bytes,
        envelope: Envelope,
        era: &Era,
    ) -> Result<(Response<Body>, Outcome), Problem> {
        let mut answered: Vec<Value> = Vec::new();
        let mut forwarded: Vec<usize> = Vec::new();
        let mut list_ids: Vec<Value> = Vec::new();
        for (i, message) in envelope.messages.iter().enumerate() {
            let id = message.id.clone().unwrap_or(Value::Null);
            match message.tool_call() {
                None => {
                    if message.kind == MessageKind::Request
                        && message.method() == Some("tools/list")
                    {
                        list_ids.push(id);
                    }
                    forwarded.push(i);
                }
                Some(Err(what)) if !envelope.batch => {
                    return Err(Problem::InvalidParams { id, what });
                }
                Some(Err(what)) => answered.push(answer::invalid_params(&id, what)),
                Some(Ok(tool)) => {
                    let input = call.input(Phase::Call, tool.name, tool.arguments, "tools/call");
                    let decision = call.snapshot.policy.decide(&input);
                    self.recorder
                        .decision(&input, &decision, call.trace.trace_id());
                    match decision.refusal_text() {
                        None => forwarded.push(i),
                        Some(text) => answered.push(answer::tool_refusal(&id, &text, era)),
                    }
                }
            }
        }
        if forwarded.is_empty() {
            let reply = if envelope.batch {
                Value::Array(answered)
            } else {
                answered.pop().unwrap_or(Value::Null)
            };
            return Ok((answer::json_response(StatusCode::OK, &reply), "refused"));
        }
        // Forward the original bytes unless some batch elements were refused.
        let body = if forwarded.len() == envelope.messages.len() {
            body
        } else {
            let kept: Vec<&Value> = forwarded
                .iter()
                .map(|&i| &envelope.messages[i].raw)
                .collect();
            Bytes::from(serde_json::to_vec(&kept).unwrap_or_default())
        };
        let mut edit = call.list_edit(list_ids, false);
        edit.extra = answered;
        call.forward(parts, body, edit, envelope.batch).await
    }
}

/// The facts of one call that every stage after understanding needs.
struct Call<'a> {
    recorder: &'a Recorder,
    snapshot: &'a Arc<Snapshot>,
    route: &'a Arc<Route>,
    rest: &'a str,
    identity: Identity,
    trace: &'a Trace,
    conn: ConnInfo,
    facts: RequestFacts,
}

/// The request facts policy sees: era, protocol version, a few harmless headers.
fn request_facts(parts: &Parts, understood: &Understood) -> RequestFacts {
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
    RequestFacts {
        era,
        protocol_version: header(era::PROTOCOL_VERSION_HEADER),
        headers,
    }
}

impl Call<'_> {
    fn input<'i>(
        &'i self,
        phase: Phase,
        tool: &'i str,
        arguments: &'i Value,
        method: &'i str,
    ) -> DecisionInput<'i> {
        DecisionInput {
            phase,
            route: self.route,
            tool,
            arguments,
            method,
            identity: &self.identity,
            request: &self.facts,
        }
    }

    fn list_edit(&self, list_ids: Vec<Value>, any_list_result: bool) -> ResponseEdit {
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
            })),
            extra: Vec::new(),
        }
    }

    async fn forward(
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
        let resp = forward::send(out, self.recorder).await?;
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
struct ListFilter {
    recorder: Recorder,
    snapshot: Arc<Snapshot>,
    route: Arc<Route>,
    identity: Identity,
    trace_id: String,
    facts: RequestFacts,
}

impl ToolFilter for ListFilter {
    fn keep(&self, tool: &Value) -> bool {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            return false;
        };
        let input = DecisionInput {
            phase: Phase::List,
            route: &self.route,
            tool: name,
            arguments: &Value::Null,
            method: "tools/list",
            identity: &self.identity,
            request: &self.facts,
        };
        let decision = self.snapshot.policy.decide(&input);
        self.recorder.decision(&input, &decision, &self.trace_id);
        decision.is_allow()
    }
}
