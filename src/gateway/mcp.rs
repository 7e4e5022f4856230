//! Decide stage, MCP side: every `tools/call` in a POST is decided, and so
//! is every method the gateway does not know; refused ones are answered by
//! the gateway, the rest forwarded.

use super::call::{Asked, Call};
use super::*;
use crate::mcp::methods;

/// What the gateway does with one message of a POST.
enum Fate {
    Forward,
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
        for (i, message) in envelope.messages.iter().enumerate() {
            if message.kind == MessageKind::Request
                && matches!(message.method(), Some("tools/list" | "server/discover"))
            {
                list_ids.push(message.id.clone().unwrap_or(Value::Null));
            }
            match fate(&call, message, era, envelope.batch).await? {
                Fate::Forward => forwarded.push(i),
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
            .map(|&i| &envelope.messages[i].raw)
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
        call.forward(parts, body, edit, envelope.batch).await
    }
}

/// Decides one message where the gateway must: a `tools/call`, or a method
/// MCP does not define for clients. Everything else goes on as it is.
async fn fate(
    call: &Call<'_>,
    message: &crate::mcp::Message,
    era: &Era,
    batch: bool,
) -> Result<Fate, Problem> {
    let id = message.id.clone().unwrap_or(Value::Null);
    match message.tool_call() {
        Some(Err(what)) if !batch => Err(Problem::InvalidParams { id, what }),
        Some(Err(what)) => Ok(Fate::Answer(answer::invalid_params(&id, what))),
        Some(Ok(tool)) => {
            let asked = Asked::Tool {
                name: tool.name,
                arguments: tool.arguments,
                method: "tools/call",
            };
            let decision = call.decide_call(asked).await;
            Ok(match decision.refusal_text() {
                None => Fate::Forward,
                Some(text) => Fate::Answer(answer::tool_refusal(&id, &text, era)),
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
