//! Decide stage, MCP side: every `tools/call` in a POST is decided, and so
//! is every method the gateway does not know; refused ones are answered by
//! the gateway, the rest forwarded.

use super::ask_human::CLIENT_CAPABILITIES_META;
use super::call::{Asked, Call};
use super::mcp_tasks::Started;
use super::watch::CallerWatch;
use super::*;
use crate::mcp::methods;

/// The tasks extension's identifier.
const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// What the gateway does with one message of a POST.
enum Fate {
    Forward,
    /// A `tools/call` allowed and forwarded: what is remembered of it if
    /// its result creates an MCP task, and the message to forward instead
    /// of the one sent (a retry with a toolgate approval state unwrapped).
    Call(Started, Option<Value>),
    /// Answered here with this JSON-RPC message.
    Answer(Value),
    /// A refused notification: no answer exists for it; the refusal is
    /// kept in case nothing else of the request is left to answer.
    Drop(Problem),
}

impl Gateway {
    /// Decides every `tools/call` and unknown method in the messages,
    /// answers the refused ones itself and forwards the rest.
    pub(super) async fn mcp(
        &self,
        call: Call<'_>,
        mut parts: Parts,
        body: Bytes,
        envelope: Envelope,
        era: &Era,
    ) -> Result<(Response<Body>, Outcome), Problem> {
        let mut answered: Vec<Value> = Vec::new();
        let mut forwarded: Vec<usize> = Vec::new();
        let mut list_ids: Vec<Value> = Vec::new();
        let mut dropped: Option<Problem> = None;
        let mut calls: Vec<(Value, Started)> = Vec::new();
        let mut task_lists: Vec<Value> = Vec::new();
        let mut replacements: Vec<(usize, Value)> = Vec::new();
        for (i, message) in envelope.messages.iter().enumerate() {
            if message.kind == MessageKind::Request
                && matches!(message.method(), Some("tools/list" | "server/discover"))
            {
                list_ids.push(message.id.clone().unwrap_or(Value::Null));
            }
            if message.kind == MessageKind::Request && message.method() == Some("tasks/list") {
                task_lists.push(message.id.clone().unwrap_or(Value::Null));
            }
            let fate = match message.method() {
                Some(method) if follow_up::METHODS.contains(&method) => {
                    match follow_up::follow_up(&call, &self.mcp_tasks, message, method).await? {
                        None => Fate::Forward,
                        Some(reply) => Fate::Answer(reply),
                    }
                }
                _ => fate(self, &call, message, (era, &parts.headers), envelope.batch).await?,
            };
            match fate {
                Fate::Forward => forwarded.push(i),
                Fate::Call(started, replaced) => {
                    forwarded.push(i);
                    if let Some(raw) = replaced {
                        replacements.push((i, raw));
                    }
                    if declares_tasks(message, era) {
                        calls.push((message.id.clone().unwrap_or(Value::Null), started));
                    }
                }
                Fate::Answer(reply) => answered.push(reply),
                Fate::Drop(problem) => dropped = Some(problem),
            }
        }
        if forwarded.is_empty() {
            if answered.is_empty()
                && let Some(problem) = dropped
            {
                return Err(problem);
            }
            let reply = if envelope.batch {
                Value::Array(answered)
            } else {
                answered.pop().unwrap_or(Value::Null)
            };
            return Ok((answer::json_response(StatusCode::OK, &reply), "refused"));
        }
        // Forward exactly what was decided: the messages as parsed, not the
        // caller's bytes (which may hold duplicate keys another parser reads
        // differently), minus any refused batch elements.
        drop(body);
        let kept: Vec<&Value> = forwarded
            .iter()
            .map(|&i| {
                replacements
                    .iter()
                    .find(|(r, _)| *r == i)
                    .map_or(&envelope.messages[i].raw, |(_, raw)| raw)
            })
            .collect();
        let body = match (envelope.batch, kept.as_slice()) {
            (false, [single]) => serde_json::to_vec(single),
            _ => serde_json::to_vec(&kept),
        };
        let body = Bytes::from(body.unwrap_or_default());
        if let Era::Legacy { .. } = era {
            // Nothing checked them: an upstream that routes on them anyway
            // must not read anything but what was decided.
            era::strip_routing_headers(&mut parts.headers);
        }
        let mut edit = call.list_edit(list_ids, false);
        edit.extra = answered;
        // Every 2026-07-28 answer is watched; a legacy one only where it
        // may create or list MCP tasks.
        let watched = match era {
            Era::Modern { .. } => true,
            Era::Legacy { .. } => !calls.is_empty() || !task_lists.is_empty(),
        };
        if watched {
            let decider = Arc::clone(&call.decider);
            let owner = decider.owner();
            edit.watch = Some(Arc::new(CallerWatch::new(
                decider,
                Arc::clone(&self.mcp_tasks),
                owner,
                calls,
                task_lists,
            )));
        }
        call.forward(parts, body, edit, envelope.batch).await
    }
}

/// True if a request may be answered with an MCP task: a 2026-07-28 one
/// that declares the tasks extension, a legacy (2025-11-25) one augmented
/// with `params.task`.
fn declares_tasks(message: &crate::mcp::Message, era: &Era) -> bool {
    let params = message.params();
    match era {
        Era::Modern { .. } => params
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get(CLIENT_CAPABILITIES_META))
            .and_then(|c| c.get("extensions"))
            .and_then(|e| e.get(TASKS_EXTENSION))
            .is_some(),
        Era::Legacy { .. } => params
            .and_then(|p| p.get("task"))
            .is_some_and(Value::is_object),
    }
}

/// Decides one message where the gateway must: a `tools/call`, or a method
/// MCP does not define for clients. Everything else goes on as it is.
async fn fate(
    gateway: &Gateway,
    call: &Call<'_>,
    message: &crate::mcp::Message,
    (era, headers): (&Era, &http::HeaderMap),
    batch: bool,
) -> Result<Fate, Problem> {
    let id = message.id.clone().unwrap_or(Value::Null);
    match message.tool_call() {
        Some(Err(what)) if !batch => Err(Problem::InvalidParams { id, what }),
        Some(Err(what)) => Ok(Fate::Answer(answer::invalid_params(&id, what))),
        Some(Ok(tool)) => {
            if let Era::Modern { .. } = era {
                // Each mirrored header against the one argument it mirrors.
                let route = &call.decider.route.name;
                gateway
                    .param_headers
                    .check(route, tool.name, headers, tool.arguments)
                    .map_err(|error| Problem::HeaderMismatch {
                        id: message.id.clone(),
                        error,
                    })?;
            }
            let replaced = match era {
                Era::Modern { .. } => match gateway.unwrap_approval(call, message, &tool) {
                    Ok(replaced) => replaced,
                    Err(e) => return Ok(Fate::Answer(answer::invalid_params(&id, &e.to_string()))),
                },
                Era::Legacy { .. } => None,
            };
            let asked = Asked::Tool {
                name: tool.name,
                arguments: tool.arguments,
                method: "tools/call",
            };
            let decision = call.decide_call(asked).await;
            Ok(match decision.refusal_text() {
                None => Fate::Call(
                    Started::new(
                        call.decider.owner(),
                        tool.name.to_owned(),
                        decision.task.clone(),
                        decision.grant.clone(),
                    ),
                    replaced,
                ),
                Some(text) => Fate::Answer(
                    gateway
                        .ask_human(call, message, &tool, &decision, era)
                        .unwrap_or_else(|| answer::tool_refusal(&id, &text, era)),
                ),
            })
        }
        None => {
            let Some(method) = message.method().filter(|m| !methods::is_known(m)) else {
                return Ok(Fate::Forward);
            };
            let params = message.params().unwrap_or(&Value::Null);
            let decision = call.decide_call(Asked::Method { method, params }).await;
            let Some(text) = decision.refusal_text() else {
                return Ok(Fate::Forward);
            };
            let reason = decision.reason().as_str();
            Ok(match message.kind {
                MessageKind::Notification => Fate::Drop(Problem::Denied {
                    route: call.decider.route.name.clone(),
                    reason,
                    message: answer::unknown_method_text(method, &text),
                }),
                MessageKind::Request | MessageKind::Response => {
                    Fate::Answer(answer::method_refusal(&id, method, reason, &text))
                }
            })
        }
    }
}
