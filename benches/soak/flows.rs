//! The stateful part of the mix: calls parked for approval and answered by
//! an operator loop through the admin API, grant churn (issue, use up,
//! revoke, expire; tasks created and completed), and what an operator's
//! tools poll (pending approvals, active tasks, `/metrics`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};

use super::client::Conn;
use super::gateway::{Gateway, mcp_headers, token};
use super::mix::{Tally, expect};

/// How often the operator loop looks at the pending approvals.
const OPERATOR_PERIOD: Duration = Duration::from_millis(100);
/// Tasks are completed and replaced after this many cycles of a flow.
const CYCLES_PER_TASK: u64 = 20;

/// `tools/call` of `tool` with `{"text": text}` on the route at `path`.
async fn call(
    conn: &mut Conn,
    path: &str,
    token: &str,
    tool: &str,
    text: &str,
) -> Result<super::client::Answer, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": tool, "arguments": {"text": text}}});
    conn.send(
        Method::POST,
        path,
        &mcp_headers(token),
        Bytes::from(body.to_string()),
    )
    .await
}

/// The approval id in a parked call's refusal.
fn approval_id(text: &str) -> Option<String> {
    let rest = &text[text.find("parked as approval ")? + "parked as approval ".len()..];
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// A task of the agent for the route at `path`, a token for it, and a
/// session on that route.
async fn enter_task(
    gw: &Gateway,
    admin: &mut Conn,
    conn: &mut Conn,
    path: &str,
    purpose: &str,
) -> Result<(String, String), String> {
    let task = gw.new_task(admin, purpose).await?;
    let token = token(path, &task);
    gw.open_session(conn, path, &token).await?;
    Ok((task, token))
}

/// Completes the flow's current task (if any) and enters a new one; false
/// (after a pause) when the new one could not be entered.
async fn next_task(
    gw: &Gateway,
    admin: &mut Conn,
    conn: &mut Conn,
    path: &str,
    purpose: &str,
    current: &mut Option<(String, String)>,
    tally: &Tally,
) -> bool {
    if let Some((task, _)) = current.take() {
        tally.add("task complete", complete(gw, admin, &task).await);
    }
    match enter_task(gw, admin, conn, path, purpose).await {
        Ok(entered) => {
            tally.add("task create", Ok(()));
            *current = Some(entered);
            true
        }
        Err(e) => {
            tally.add("task create", Err(e));
            tokio::time::sleep(Duration::from_secs(1)).await;
            false
        }
    }
}

async fn complete(gw: &Gateway, admin: &mut Conn, task: &str) -> Result<(), String> {
    let (status, body) = gw
        .admin_call(
            admin,
            Method::POST,
            &format!("/v1/tasks/{task}/complete"),
            Some(json!({"reason": "soak: done"})),
        )
        .await?;
    match status {
        200 => Ok(()),
        _ => Err(format!("completing {task}: HTTP {status} {body}")),
    }
}

/// Calls of `tool_001` that policy parks for approval, one after the
/// other, answered by the [`operator`] loop. Even flows use route `approve`
/// (the call is answered at once; once approved, a retry of the same call
/// is allowed; once denied, a retry asks again, as a new approval); odd
/// flows use route `held`, where the call waits for the operator's answer
/// and is allowed, or refused with `approval_denied`.
pub(crate) async fn approvals(gw: Arc<Gateway>, i: usize, until: Instant, tally: Arc<Tally>) {
    let path = if i.is_multiple_of(2) {
        "/approve/mcp"
    } else {
        "/held/mcp"
    };
    let mut admin = Conn::new(gw.admin);
    let mut conn = Conn::new(gw.port);
    let mut current: Option<(String, String)> = None;
    let mut n = 0u64;
    while Instant::now() < until {
        if n.is_multiple_of(CYCLES_PER_TASK) {
            let purpose = format!("approvals {i}");
            let next = next_task(
                &gw,
                &mut admin,
                &mut conn,
                path,
                &purpose,
                &mut current,
                &tally,
            );
            if !next.await {
                continue;
            }
        }
        n += 1;
        let Some((_, token)) = &current else { continue };
        let text = format!("approve-{i}-{n}");
        let flow = Approval {
            gw: &gw,
            path,
            token,
            text: &text,
            tally: &tally,
        };
        if path == "/held/mcp" {
            flow.held(&mut conn).await;
        } else {
            flow.retried(&mut admin, &mut conn).await;
        }
    }
    if let Some((task, _)) = current {
        tally.add("task complete", complete(&gw, &mut admin, &task).await);
    }
}

/// One call that needs an approval.
struct Approval<'a> {
    gw: &'a Gateway,
    path: &'a str,
    token: &'a str,
    text: &'a str,
    tally: &'a Tally,
}

impl Approval<'_> {
    /// The call, answered at once as parked: its approval id.
    async fn park(&self, conn: &mut Conn, kind: &'static str) -> Option<String> {
        let parked = match call(conn, self.path, self.token, "tool_001", self.text).await {
            Ok(answer) => expect(&answer, &[r#""isError":true"#, "approval_pending"], &[])
                .and_then(|()| {
                    approval_id(&answer.text())
                        .ok_or_else(|| format!("no approval id in {}", answer.brief()))
                }),
            Err(e) => Err(e),
        };
        match parked {
            Ok(id) => {
                self.tally.add(kind, Ok(()));
                Some(id)
            }
            Err(e) => {
                self.tally.add(kind, Err(e));
                None
            }
        }
    }

    /// Park, wait for the answer, retry.
    async fn retried(&self, admin: &mut Conn, conn: &mut Conn) {
        let Some(id) = self.park(conn, "call parked for approval").await else {
            return;
        };
        let state = match answered(self.gw, admin, &id).await {
            Ok(state) => state,
            Err(e) => return self.tally.add("approval answered", Err(e)),
        };
        self.tally.add("approval answered", Ok(()));
        if state == "approved" {
            let echoed = format!(r#""text":"{}""#, self.text);
            let outcome = match call(conn, self.path, self.token, "tool_001", self.text).await {
                Ok(answer) => expect(&answer, &[&echoed], &[r#""isError":true"#]),
                Err(e) => Err(e),
            };
            return self.tally.add("approved call retried", outcome);
        }
        // Denied: the same call asks again, as a new approval.
        let Some(again) = self.park(conn, "denied call retried (asks again)").await else {
            return;
        };
        if again == id {
            self.tally.add(
                "denied call retried (asks again)",
                Err(format!(
                    "a denied call was parked again as the same approval {id}"
                )),
            );
        }
        // Let the operator answer it before the task may end.
        let outcome = answered(self.gw, admin, &again).await.map(drop);
        self.tally.add("approval answered", outcome);
    }

    /// The call held open until the operator answers.
    async fn held(&self, conn: &mut Conn) {
        let echoed = format!(r#""text":"{}""#, self.text);
        let outcome = match call(conn, self.path, self.token, "tool_001", self.text).await {
            Ok(answer) => {
                let text = answer.text();
                if text.contains("approval_denied") {
                    expect(&answer, &[r#""isError":true"#, "was denied by soak"], &[])
                        .map(|()| "held call denied")
                } else {
                    expect(&answer, &[&echoed], &[r#""isError":true"#])
                        .map(|()| "held call approved")
                }
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(kind) => self.tally.add(kind, Ok(())),
            Err(e) => self.tally.add("held call", Err(e)),
        }
    }
}

/// Waits for an operator to answer approval `id`: its final state.
async fn answered(gw: &Gateway, admin: &mut Conn, id: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = gw
            .admin_call(admin, Method::GET, &format!("/v1/approvals/{id}"), None)
            .await?;
        let state = body["approval"]["state"].as_str().unwrap_or_default();
        match (status, state) {
            (200, "approved" | "denied") => return Ok(state.to_owned()),
            (200, "pending") if Instant::now() < deadline => {
                tokio::time::sleep(OPERATOR_PERIOD / 2).await;
            }
            _ => return Err(format!("approval {id}: HTTP {status} {body}")),
        }
    }
}

/// Answers every pending approval, approving and denying in turn; lists
/// the active tasks and scrapes `/metrics` now and then, as an operator's
/// console and Prometheus do.
pub(crate) async fn operator(gw: Arc<Gateway>, until: Instant, tally: Arc<Tally>) {
    let mut admin = Conn::new(gw.admin);
    let mut answered = 0u64;
    let mut round = 0u64;
    // A little past the end, so the last parked calls are answered.
    while Instant::now() < until + Duration::from_secs(2) {
        round += 1;
        tokio::time::sleep(OPERATOR_PERIOD).await;
        let pending = gw
            .admin_call(&mut admin, Method::GET, "/v1/approvals?state=pending", None)
            .await
            .and_then(
                |(status, body)| match (status, body["approvals"].as_array()) {
                    (200, Some(list)) => Ok(list.clone()),
                    _ => Err(format!("listing pending approvals: HTTP {status} {body}")),
                },
            );
        let pending = match pending {
            Ok(list) => list,
            Err(e) => {
                tally.add("operator: list pending", Err(e));
                continue;
            }
        };
        tally.add("operator: list pending", Ok(()));
        for approval in pending {
            let Some(id) = approval["id"].as_str() else {
                tally.add("operator: answer", Err(format!("no id in {approval}")));
                continue;
            };
            answered += 1;
            let (verb, body) = if answered.is_multiple_of(2) {
                ("approve", json!({"reason": "soak: fine"}))
            } else {
                ("deny", json!({"reason": "soak: not now"}))
            };
            let outcome = gw
                .admin_call(
                    &mut admin,
                    Method::POST,
                    &format!("/v1/approvals/{id}/{verb}"),
                    Some(body),
                )
                .await
                .and_then(|(status, body)| match status {
                    200 => Ok(()),
                    _ => Err(format!("{verb} {id}: HTTP {status} {body}")),
                });
            tally.add("operator: answer", outcome);
        }
        if round.is_multiple_of(20) {
            let outcome = gw
                .admin_call(&mut admin, Method::GET, "/v1/tasks?state=active", None)
                .await
                .and_then(|(status, body)| match (status, body["tasks"].as_array()) {
                    (200, Some(_)) => Ok(()),
                    _ => Err(format!("listing tasks: HTTP {status} {body}")),
                });
            tally.add("operator: list tasks", outcome);
            let outcome = admin
                .send(Method::GET, "/metrics", &[], Bytes::new())
                .await
                .and_then(|a| match a.status {
                    200 if a.text().contains("toolgate_decisions_total") => Ok(()),
                    _ => Err(format!("scrape: {}", a.brief())),
                });
            tally.add("metrics scrape", outcome);
        }
    }
}

/// Grant churn on route `churn` (a call is allowed exactly while a live
/// grant covers it): a one-use grant used, then refused; a grant revoked,
/// then refused; a one-second grant used, let expire, then refused.
pub(crate) async fn churn(gw: Arc<Gateway>, i: usize, until: Instant, tally: Arc<Tally>) {
    const PATH: &str = "/churn/mcp";
    let mut admin = Conn::new(gw.admin);
    let mut conn = Conn::new(gw.port);
    let mut current: Option<(String, String)> = None;
    let mut cycle = 0u64;
    while Instant::now() < until {
        if cycle.is_multiple_of(CYCLES_PER_TASK) {
            let purpose = format!("churn {i}");
            let next = next_task(
                &gw,
                &mut admin,
                &mut conn,
                PATH,
                &purpose,
                &mut current,
                &tally,
            );
            if !next.await {
                continue;
            }
        }
        cycle += 1;
        let Some((task, token)) = &current else {
            continue;
        };
        let churn = Churn {
            gw: &gw,
            task,
            token,
            tally: &tally,
            tag: format!("churn-{i}-{cycle}"),
        };
        churn.cycle(&mut admin, &mut conn).await;
    }
    if let Some((task, _)) = current {
        tally.add("task complete", complete(&gw, &mut admin, &task).await);
    }
}

/// One cycle of grant churn in a task.
struct Churn<'a> {
    gw: &'a Gateway,
    task: &'a str,
    token: &'a str,
    tally: &'a Tally,
    tag: String,
}

impl Churn<'_> {
    async fn cycle(&self, admin: &mut Conn, conn: &mut Conn) {
        // Used up.
        if self
            .issue(admin, "tool_011", "60s", Some(1))
            .await
            .is_some()
        {
            self.allowed(conn, "tool_011").await;
            self.refused(conn, "tool_011", "after its one use").await;
        }
        // Revoked.
        if let Some(grant) = self.issue(admin, "tool_021", "60s", None).await {
            self.allowed(conn, "tool_021").await;
            let outcome = self
                .gw
                .admin_call(
                    admin,
                    Method::POST,
                    &format!("/v1/grants/{}/revoke", grant["id"].as_str().unwrap_or("?")),
                    Some(json!({"reason": "soak: churn"})),
                )
                .await
                .and_then(|(status, body)| match status {
                    200 => Ok(()),
                    _ => Err(format!("revoke: HTTP {status} {body}")),
                });
            self.tally.add("grant revoke", outcome);
            self.refused(conn, "tool_021", "after its revocation").await;
        }
        // Expired.
        if let Some(grant) = self.issue(admin, "tool_031", "1s", None).await {
            self.allowed(conn, "tool_031").await;
            let expires = grant["expires_at_ms"].as_u64().unwrap_or(0);
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let wait = expires.saturating_sub(now) + 100;
            tokio::time::sleep(Duration::from_millis(wait)).await;
            self.refused(conn, "tool_031", "after it expired").await;
        }
    }

    async fn issue(
        &self,
        admin: &mut Conn,
        tool: &str,
        ttl: &str,
        max_uses: Option<u64>,
    ) -> Option<Value> {
        let mut body = json!({"task_id": self.task, "tool": tool, "route": "churn",
                              "ttl": ttl, "reason": "soak: churn"});
        if let Some(uses) = max_uses {
            body["max_uses"] = json!(uses);
        }
        let outcome = self
            .gw
            .admin_call(admin, Method::POST, "/v1/grants", Some(body))
            .await
            .and_then(|(status, body)| match (status, body["grant"].is_object()) {
                (201, true) => Ok(body["grant"].clone()),
                _ => Err(format!("issue: HTTP {status} {body}")),
            });
        match outcome {
            Ok(grant) => {
                self.tally.add("grant issue", Ok(()));
                Some(grant)
            }
            Err(e) => {
                self.tally.add("grant issue", Err(e));
                None
            }
        }
    }

    async fn allowed(&self, conn: &mut Conn, tool: &str) {
        let text = format!("{}-{tool}", self.tag);
        let echoed = format!(r#""text":"{text}""#);
        let outcome = match call(conn, "/churn/mcp", self.token, tool, &text).await {
            Ok(answer) => expect(&answer, &[&echoed], &[r#""isError":true"#]),
            Err(e) => Err(e),
        };
        self.tally.add("churn: allowed under a grant", outcome);
    }

    async fn refused(&self, conn: &mut Conn, tool: &str, when: &str) {
        let text = format!("{}-{tool}-again", self.tag);
        let outcome = match call(conn, "/churn/mcp", self.token, tool, &text).await {
            Ok(answer) => expect(&answer, &[r#""isError":true"#, "policy_deny"], &[])
                .map_err(|e| format!("{tool} {when}: {e}")),
            Err(e) => Err(e),
        };
        self.tally
            .add("churn: refused without a live grant", outcome);
    }
}
