//! Decide stage, MCP side: every `tools/call` in a POST is decided; refused
//! ones are answered by the gateway, the rest forwarded.

use super::call::{Asked, Call};
use super::*;

impl Gateway {
    /// Decides every `tools/call` in the messages, answers the refused ones
    /// itself and forwards the rest.
    pub(super) async fn mcp(
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
                    let asked = Asked::Tool {
                        name: tool.name,
                        arguments: tool.arguments,
                        method: "tools/call",
                    };
                    let decision = call.decide_call(asked).await;
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
        let mut edit = call.list_edit(list_ids, false);
        edit.extra = answered;
        call.forward(parts, body, edit, envelope.batch).await
    }
}
