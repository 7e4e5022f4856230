//! An agent asking for a grant itself: `POST /_toolgate/grant-requests`,
//! authenticated with the agent's own token for the route the grant is for.
//! Policy modules that opted into the `grant` phase may approve it at once
//! (low-risk requests) or refuse it; otherwise it becomes a pending
//! approval for a human, announced to the webhook.

use serde_json::json;

use super::*;
use crate::context::{Live, Scope};
use crate::decide::{Decision, Verdict};
use crate::store::model::{argument_digest, new_id, now_ms};
use crate::store::{Approval, ApprovalKind, ApprovalState, GrantSource, RequestedGrant, Task};
use crate::tasks::{ApproveRequest, Caps, GrantRequest, requests};

/// Where agents ask for grants, on the main listener.
pub(super) const PATH: &str = "/_toolgate/grant-requests";

/// Largest grant request body.
const MAX_BODY: usize = 64 * 1024;

impl Gateway {
    pub(super) async fn grant_request(
        &self,
        snapshot: &Arc<Snapshot>,
        req: Request<Incoming>,
    ) -> Response<Body> {
        match self.grant_request_inner(snapshot, req).await {
            Ok(resp) => resp,
            Err(problem) => {
                self.recorder.request("", problem.code());
                problem.into_response()
            }
        }
    }

    async fn grant_request_inner(
        &self,
        snapshot: &Arc<Snapshot>,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Problem> {
        if req.method() != http::Method::POST {
            return Err(Problem::MethodNotAllowed {
                method: req.method().clone(),
                allow: "POST",
                on: "the grant-request endpoint",
            });
        }
        let (parts, body) = req.into_parts();
        let body = read_body(body, &parts.headers, MAX_BODY).await?;
        let ask: GrantRequest =
            serde_json::from_slice(&body).map_err(|e| Problem::BadJsonBody(e.to_string()))?;
        let route = snapshot
            .routes()
            .iter()
            .find(|r| r.name == ask.route)
            .cloned()
            .ok_or(Problem::BadRequest(
                "no route has the name given in \"route\"",
            ))?;
        if route.auth.is_none() {
            return Err(Problem::BadRequest(
                "the route takes anonymous callers: grants need an authenticated agent",
            ));
        }
        let started = std::time::Instant::now();
        let identity = identify(&self.identifier, self, snapshot, &route, &parts)
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
        let trace = Trace::from_headers(&parts.headers);
        if !self.recorder.audit_ready() {
            return Err(Problem::Denied {
                route: route.name.clone(),
                reason: crate::decide::Reason::AuditUnavailable.as_str(),
                message: "the decision log cannot record this request; try again later".into(),
            });
        }
        let mut facts = request_facts(&parts, &Understood::McpStream, &route);
        if ask.task_id.is_some() {
            facts.task_hint = ask.task_id.clone();
        }
        let live = Live::build(self.tasks.store().as_ref(), &identity, &facts);
        let task = match &live.scope {
            Scope::Active(task) => Task::clone(task),
            Scope::None => {
                return Err(Problem::BadRequest(
                    "a grant is given within a task: name it in \"task_id\" or in your token's task claim",
                ));
            }
            Scope::Refused {
                reason, message, ..
            } => {
                return Err(Problem::Denied {
                    route: route.name.clone(),
                    reason: reason.as_str(),
                    message: message.clone(),
                });
            }
        };
        let caps = Caps {
            tasks: &snapshot.tasks,
            approvals: &snapshot.approvals,
        };
        // A broken rule (TTL over its cap, `max_uses` 0, a bad scope) is
        // the task store's 400 `invalid_request`, as on the admin API.
        let requested = requested_grant(&ask, caps).map_err(|e| store_problem(&e))?;
        // Policy, in the `grant` phase: only modules that opted in decide.
        let arguments = ask.arguments.clone().unwrap_or(Value::Null);
        let (context, _) = live.for_tool(self.tasks.store().as_ref(), &route.name, &ask.tool);
        let input = DecisionInput {
            phase: Phase::Grant,
            route: &route,
            tool: &ask.tool,
            arguments: &arguments,
            method: "grant-request",
            identity: &identity,
            request: &facts,
            context: &context,
        };
        let deciding = std::time::Instant::now();
        let budget = crate::decide::Budget::new(snapshot.policy_limits.request_budget());
        let mut decision = snapshot.policy.decide(&input, &budget).await;
        let decide = deciding.elapsed();
        // Before the reason reaches the refusal or the approval.
        log.scrub(&input, &mut decision);
        if decision.evidence.is_empty() {
            // No module decides grant requests here: a human does.
            decision = Decision::new(
                Verdict::NeedsApproval,
                crate::decide::Reason::NeedsApproval,
                "no policy approves grant requests on this route".into(),
            );
        }
        if decision.verdict == Verdict::Allow && ask.tool.contains(['*', '?']) {
            // Policy judged a name; a glob would grant more than it saw.
            decision.verdict = Verdict::NeedsApproval;
            decision.reason = crate::decide::Reason::NeedsApproval;
            decision.message = "a tool glob is never approved by policy: a human decides".into();
        }
        decision.task = Some(task.id.clone());
        let now = now_ms();
        let approval = Approval {
            id: new_id("appr"),
            kind: ApprovalKind::Request,
            task_id: task.id.clone(),
            agent: task.agent.clone(),
            on_behalf_of: task.on_behalf_of.clone(),
            route: route.name.clone(),
            tool: ask.tool.clone(),
            argument_digest: argument_digest(&arguments),
            arguments: arguments.clone(),
            why: log.scrubbed(&arguments, ask.reason.clone()),
            requested: Some(requested),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(crate::tasks::millis(snapshot.approvals.pending_ttl)),
            state: ApprovalState::Pending,
            decided: None,
            grant_id: None,
        };
        let answer = match decision.verdict {
            Verdict::Deny => Err(Problem::Denied {
                route: route.name.clone(),
                reason: decision.reason().as_str(),
                message: format!("grant request refused: {}", decision.message),
            }),
            Verdict::Allow => self.auto_approve(snapshot, approval, &decision).await.map(|(mut approval, mut grant)| {
                decision.approval = Some(approval.id.clone());
                mask_answer(&log, &mut approval);
                log.mask_constraints(&mut grant.constraints);
                decision.grant = Some(grant.id.clone());
                json_created(StatusCode::CREATED, json!({"status": "granted", "grant": grant, "approval": approval}))
            }),
            Verdict::NeedsApproval => self.park_request(snapshot, approval).await.map(|mut approval| {
                decision.approval = Some(approval.id.clone());
                mask_answer(&log, &mut approval);
                json_created(StatusCode::ACCEPTED, json!({
                    "status": "pending",
                    "approval": approval,
                    "message": format!("approval {} is pending: retry your call once an operator approves it", approval.id),
                }))
            }),
        };
        log.decision(&input, decision, decide, trace.trace_id());
        answer
    }

    async fn auto_approve(
        &self,
        snapshot: &Arc<Snapshot>,
        approval: Approval,
        decision: &Decision,
    ) -> Result<(Approval, crate::store::Grant), Problem> {
        let evidence: Vec<String> = decision
            .evidence
            .iter()
            .map(|e| format!("{}@{}#{}", e.module, e.version, e.hash))
            .collect();
        let actor = format!("policy:{}", evidence.join(","));
        let tasks = Arc::clone(&self.tasks);
        let (task_cfg, approvals_cfg) =
            (Arc::clone(&snapshot.tasks), Arc::clone(&snapshot.approvals));
        tokio::task::spawn_blocking(move || {
            let caps = Caps {
                tasks: &task_cfg,
                approvals: &approvals_cfg,
            };
            let parked = tasks.park_request(approval)?;
            let source = GrantSource::Policy {
                approval_id: parked.id.clone(),
                evidence,
            };
            // Policy saw the tool and the arguments, not the lifetime asked
            // for: a grant it approves lives at most approvals.grant_ttl.
            let ttl = parked
                .requested
                .as_ref()
                .map_or(caps.approvals.grant_ttl, |r| {
                    std::time::Duration::from_millis(r.ttl_ms).min(caps.approvals.grant_ttl)
                });
            let approve = ApproveRequest {
                ttl: Some(format!("{}ms", ttl.as_millis())),
                ..ApproveRequest::default()
            };
            let grant = tasks.approval_grant(caps, &parked, &approve, &actor, source)?;
            tasks.approve_with(&parked.id, grant, &actor, "approved by policy")
        })
        .await
        .map_err(|_| lost())?
        .map_err(|e| store_problem(&e))
    }

    async fn park_request(
        &self,
        snapshot: &Arc<Snapshot>,
        approval: Approval,
    ) -> Result<Approval, Problem> {
        let tasks = Arc::clone(&self.tasks);
        let id = approval.id.clone();
        let parked = tokio::task::spawn_blocking(move || tasks.park_request(approval))
            .await
            .map_err(|_| lost())?
            .map_err(|e| store_problem(&e))?;
        if parked.id == id
            && let Some(hook) = &snapshot.webhook
        {
            hook.announce(&parked, self.tasks.events());
        }
        Ok(parked)
    }
}

/// The grant an agent asks for, within the configured caps.
fn requested_grant(
    ask: &GrantRequest,
    caps: Caps<'_>,
) -> Result<RequestedGrant, crate::tasks::Error> {
    requests::check_grant_scope(&ask.tool, &ask.constraints)?;
    requests::check_text("reason", &ask.reason, 4096)?;
    let ttl = match ask.ttl.as_deref() {
        Some(text) => requests::duration("ttl", text)?,
        None => caps.approvals.grant_ttl,
    };
    if ttl.is_zero() || ttl > caps.tasks.max_grant_ttl {
        return Err(crate::tasks::Error::Invalid {
            field: "ttl",
            message: format!(
                "must be between 1s and {}s (tasks.max_grant_ttl)",
                caps.tasks.max_grant_ttl.as_secs()
            ),
        });
    }
    if ask.max_uses == Some(0) {
        return Err(crate::tasks::Error::Invalid {
            field: "max_uses",
            message: "must be at least 1".into(),
        });
    }
    Ok(RequestedGrant {
        tool: ask.tool.clone(),
        route: Some(ask.route.clone()),
        constraints: ask.constraints.clone(),
        ttl_ms: crate::tasks::millis(ttl),
        max_uses: ask.max_uses,
    })
}

fn store_problem(e: &crate::tasks::Error) -> Problem {
    let code = e.code();
    let message = if code == "store_unavailable" {
        // The detail (a file path, an I/O error) is for the operator's log.
        tracing::error!(error = %e, "task store failed a grant request");
        "the task store is unavailable; try again later".to_owned()
    } else {
        e.to_string()
    };
    Problem::TaskStore {
        code,
        status: e.status(),
        message,
    }
}

/// A blocking task that died (a panic): the request is not processed.
fn lost() -> Problem {
    Problem::TaskStore {
        code: "store_unavailable",
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "the grant request could not be processed".into(),
    }
}

fn json_created(status: StatusCode, body: Value) -> Response<Body> {
    answer::json_response(status, &body)
}

/// An approval as its answer repeats it: its arguments and the requested
/// grant's constraints masked as the decision log masks them.
fn mask_answer(log: &RequestLog, approval: &mut Approval) {
    approval.arguments = log.masked(&approval.arguments);
    if let Some(requested) = approval.requested.as_mut() {
        log.mask_constraints(&mut requested.constraints);
    }
}
