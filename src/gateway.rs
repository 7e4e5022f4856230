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

mod approval_state;
mod ask_human;
mod call;
mod follow_up;
mod grant_request;
mod mcp;
mod mcp_tasks;
mod param_headers;
mod session;
mod watch;

use call::{Asked, Call, Decider, request_facts};

use crate::Body;
use crate::accept::read_body;
use crate::answer::{self, Problem};
use crate::decide::{Decision, DecisionInput, Phase, RequestFacts};
use crate::forward::body::{ResponseEdit, ToolFilter};
use crate::forward::headers::Trace;
use crate::forward::{self, Outbound};
use crate::identify::jwks::{JwksFetcher, KeySink};
use crate::identify::keys::KeySet;
use crate::identify::{Identifier, Identity, identify, metadata};
use crate::listener::ConnInfo;
use crate::mcp::{Envelope, Era, MessageKind, era};
use crate::record::{Recorder, RequestLog};
use crate::snapshot::{Route, Snapshot};
use crate::tasks::Tasks;
use crate::understand::{Understood, understand};

/// The running gateway: the current snapshot and the recorder.
#[derive(Debug)]
pub struct Gateway {
    snapshot: ArcSwap<Snapshot>,
    /// Shared with each request's [`RequestLog`]: a clone is one count,
    /// not one per metric handle.
    recorder: Arc<Recorder>,
    identifier: Identifier,
    policy_watch: std::sync::Mutex<Option<crate::decide::reload::PolicyWatch>>,
    tasks: Arc<Tasks>,
    /// The MCP tasks (either era) callers started here.
    mcp_tasks: Arc<mcp_tasks::McpTasks>,
    /// The `Mcp-Param-*` headers each route's tools declare.
    param_headers: Arc<param_headers::ParamHeaders>,
    /// Signs and checks the `requestState` of approvals asked through MCP.
    approval_states: approval_state::ApprovalStates,
    /// Bumped by the admin API's config reload; `serve` waits on it like on SIGHUP.
    config_reload: tokio::sync::watch::Sender<u64>,
    /// The last policy reload, whatever started it.
    last_policy_reload: std::sync::Mutex<Option<PolicyReload>>,
}

/// One policy reload, as `GET /v1/policies` and the console show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyReload {
    pub at_ms: crate::store::Millis,
    /// `file_change`, `api` or `config`.
    pub trigger: &'static str,
    /// The admin actor, for `api`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub ok: bool,
    /// Modules active after a reload that worked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modules: Option<usize>,
    /// Why a reload was refused (the last good set kept serving).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How a request ended, for the `outcome` metric label.
pub(crate) type Outcome = &'static str;

impl Gateway {
    pub fn new(snapshot: Snapshot, recorder: Recorder, tasks: Arc<Tasks>) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            recorder: Arc::new(recorder),
            identifier: Identifier::new(),
            policy_watch: std::sync::Mutex::new(None),
            tasks,
            mcp_tasks: Arc::default(),
            param_headers: Arc::default(),
            approval_states: approval_state::ApprovalStates::default(),
            config_reload: tokio::sync::watch::Sender::new(0),
            last_policy_reload: std::sync::Mutex::new(None),
        })
    }

    /// Counts a policy reload and keeps it as the last one.
    pub fn note_policy_reload(
        &self,
        trigger: crate::decide::reload::Trigger,
        outcome: Result<usize, &str>,
    ) {
        use crate::decide::reload::Trigger;
        self.recorder
            .policy_reload(if outcome.is_ok() { "ok" } else { "error" });
        let (trigger, by) = match trigger {
            Trigger::FileChange => ("file_change", None),
            Trigger::Api(actor) => ("api", Some(actor)),
            Trigger::Config => ("config", None),
        };
        let record = PolicyReload {
            at_ms: crate::store::model::now_ms(),
            trigger,
            by,
            ok: outcome.is_ok(),
            modules: outcome.ok(),
            error: outcome.err().map(str::to_owned),
        };
        if let Ok(mut last) = self.last_policy_reload.lock() {
            *last = Some(record);
        }
    }

    /// The last policy reload since start, whatever started it.
    pub fn last_policy_reload(&self) -> Option<PolicyReload> {
        self.last_policy_reload.lock().ok().and_then(|l| l.clone())
    }

    /// Asks the `serve` loop to re-read its config file, as SIGHUP does.
    /// False if nothing listens (a gateway not run by `toolgate serve`).
    pub fn request_config_reload(&self) -> bool {
        self.config_reload.send_modify(|n| *n = n.wrapping_add(1));
        self.config_reload.receiver_count() > 0
    }

    /// What the `serve` loop waits on for [`Self::request_config_reload`].
    pub fn config_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.config_reload.subscribe()
    }

    /// Tasks, grants and approvals.
    pub fn tasks(&self) -> &Arc<Tasks> {
        &self.tasks
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

    /// Watches policy module files for changes (see `decide::reload`).
    pub fn watch_policies(self: &Arc<Self>) {
        let watcher = crate::decide::reload::watch(self);
        if let Ok(mut slot) = self.policy_watch.lock() {
            *slot = watcher;
        }
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
        let path = match crate::accept::normalize_path(req.uri().path()) {
            Ok(path) => path,
            Err(problem) => {
                self.recorder.request("", problem.code());
                return problem.into_response();
            }
        };
        if path.starts_with(metadata::WELL_KNOWN) {
            return match metadata::document(&snapshot, &path) {
                Some(doc) if req.method() == http::Method::GET => {
                    answer::json_response(StatusCode::OK, &doc)
                }
                Some(_) | None => Problem::NoRoute.into_response(),
            };
        }
        if path == grant_request::PATH {
            return self.grant_request(&snapshot, req).await;
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
        let started = std::time::Instant::now();
        // Identify before reading the body: an unknown caller costs nothing.
        let identity = identify(&self.identifier, self, snapshot, route, &parts)
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
        let log = RequestLog::new(
            Arc::clone(&self.recorder),
            &route.name,
            started,
            started.elapsed(),
        );
        let body = read_body(body, &parts.headers, snapshot.limits.max_request_body).await?;
        let understood = understand(route, &parts, rest, &body)?;
        let meta_trace = match &understood {
            Understood::Mcp { envelope, .. } => envelope.meta_traceparent(),
            Understood::McpStream | Understood::Http { .. } => None,
        };
        let trace = Trace::from_headers(&parts.headers).with_meta(meta_trace);
        let session = self.check_session(route, &parts, &identity, &understood)?;
        let facts = request_facts(&parts, &understood, route);
        let decider = Arc::new(Decider::new(
            self, snapshot, route, identity, facts, &trace, log,
        ));
        let call = Call {
            decider: Arc::clone(&decider),
            rest,
            trace: &trace,
            conn,
        };
        let method = parts.method.clone();
        let result = match understood {
            Understood::McpStream => {
                // No method, nothing named: no routing header is true of it.
                let mut parts = parts;
                era::strip_routing_headers(&mut parts.headers);
                // A resumed GET stream may replay a tools/list answer: filter any.
                let replayable = parts.method == http::Method::GET;
                let edit = call.list_edit(Vec::new(), replayable);
                call.forward(parts, body, edit, false).await
            }
            Understood::Http { tool, arguments } => {
                let method = parts.method.to_string();
                let asked = Asked::Tool {
                    name: &tool,
                    arguments: &arguments,
                    method: &method,
                };
                let decision = call.decide_call(asked).await;
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
        decider.answered();
        if let (Ok((resp, _)), Some(principal)) = (&result, session) {
            self.track_session(&route.name, &method, resp, principal);
        }
        result
    }
}

// === impl KeySink for Gateway ===

/// The identify stage's narrow handle on the gateway: it reads the snapshot
/// and publishes the keys its JWKS fetchers load.
impl KeySink for Gateway {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    fn publish_keys(&self, fetcher: &Arc<JwksFetcher>, keys: Arc<KeySet>) {
        Self::publish_keys(self, fetcher, keys);
    }

    fn recorder(&self) -> &Recorder {
        &self.recorder
    }
}

// === impl PolicyHost for Gateway ===

/// The decide stage's reloads see the snapshot only through this.
impl crate::decide::reload::PolicyHost for Gateway {
    fn policy_source(&self) -> crate::decide::reload::PolicySource {
        let snapshot = self.snapshot.load();
        crate::decide::reload::PolicySource {
            policies: Arc::clone(&snapshot.policies),
            limits: snapshot.policy_limits.clone(),
            active: Arc::clone(&snapshot.policy),
        }
    }

    /// Swaps in a policy set built from `built_from`, keeping everything
    /// else of the snapshot — unless a config reload replaced the policy
    /// config meanwhile (its own, newer set then stays). True if swapped.
    fn swap_policy(
        &self,
        policy: Arc<crate::decide::PolicySet>,
        built_from: &Arc<[crate::config::Policy]>,
    ) -> bool {
        let mut swapped = false;
        self.snapshot.rcu(|current| {
            swapped = Arc::ptr_eq(&current.policies, built_from);
            if swapped {
                Arc::new(current.with_policy(Arc::clone(&policy)))
            } else {
                Arc::clone(current)
            }
        });
        swapped
    }

    fn policy_reloaded(
        &self,
        trigger: crate::decide::reload::Trigger,
        outcome: Result<usize, &str>,
    ) {
        self.note_policy_reload(trigger, outcome);
    }
}
