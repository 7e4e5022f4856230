//! Decide stage, 2026-07-28: a call policy parked for a human goes back to
//! the human at the agent's side. A client that declared URL-mode
//! elicitation gets `input_required` with an elicitation pointing at the
//! approval and a signed `requestState` (see `approval_state`); its retry
//! with that state is checked, the state unwrapped (the upstream's own
//! round-trip state restored) and the call decided again — the approval's
//! grant lets it through once.

use super::approval_state::{self, Bound, Claims, INPUT_KEY, PREFIX};
use super::call::Call;
use super::*;
use crate::decide::Verdict;
use crate::mcp::{Message, ToolCall};
use crate::store::model::now_ms;

/// `_meta` key of the capabilities a 2026-07-28 client declares per request.
pub(super) const CLIENT_CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";

impl Gateway {
    /// The call as it is to be decided and forwarded: if it carries a
    /// toolgate approval state, that state checked and spent, and the
    /// message with the upstream's round-trip fields put back (`Some`).
    pub(super) fn unwrap_approval(
        &self,
        call: &Call<'_>,
        message: &Message,
        tool: &ToolCall<'_>,
    ) -> Result<Option<Value>, approval_state::Error> {
        let Some(state) = message
            .params()
            .and_then(|p| p.get("requestState"))
            .and_then(Value::as_str)
            .filter(|s| s.starts_with(PREFIX))
        else {
            return Ok(None);
        };
        let d = &call.decider;
        let owner = d.owner();
        let bound = Bound {
            owner: &owner,
            route: &d.route.name,
            tool: tool.name,
            arguments: tool.arguments,
        };
        let key = d
            .snapshot
            .approval_key
            .as_ref()
            .map(|k| k.expose().as_bytes());
        let claims = self
            .approval_states
            .open(key, state, bound, now_ms())
            .inspect_err(|e| {
                tracing::warn!(route = %d.route.name, tool = tool.name, error = %e, "refused an approval requestState");
            })?;
        Ok(Some(restored(&message.raw, claims)))
    }

    /// The `input_required` answer that sends the human to the approval a
    /// parked call waits for — if the era, the client and the config allow
    /// one; `None` keeps today's `isError` answer.
    pub(super) fn ask_human(
        &self,
        call: &Call<'_>,
        message: &Message,
        tool: &ToolCall<'_>,
        decision: &Decision,
        era: &Era,
    ) -> Option<Value> {
        let (Era::Modern { .. }, Verdict::NeedsApproval, Some(approval)) =
            (era, decision.verdict, decision.approval.as_deref())
        else {
            return None;
        };
        let params = message.params()?;
        params
            .get("_meta")
            .and_then(|m| m.get(CLIENT_CAPABILITIES_META))
            .and_then(|c| c.get("elicitation"))
            .and_then(|e| e.get("url"))?;
        let d = &call.decider;
        let url = d
            .snapshot
            .approval_page
            .as_ref()?
            .replace("{approval}", approval);
        let owner = d.owner();
        let bound = Bound {
            owner: &owner,
            route: &d.route.name,
            tool: tool.name,
            arguments: tool.arguments,
        };
        let exp = now_ms().saturating_add(
            u64::try_from(d.snapshot.approvals.pending_ttl.as_millis()).unwrap_or(u64::MAX),
        );
        let upstream = (
            params.get("requestState").cloned(),
            params.get("inputResponses").cloned(),
        );
        let key = d
            .snapshot
            .approval_key
            .as_ref()
            .map(|k| k.expose().as_bytes());
        let state = self
            .approval_states
            .seal(key, bound, approval, exp, upstream);
        let id = message.id.clone().unwrap_or(Value::Null);
        let text = format!(
            "A human must approve this call of {:?} (approval {approval}): {}. Open the link, and retry once it is approved.",
            tool.name, decision.message
        );
        Some(serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {
            "resultType": "input_required",
            "inputRequests": {INPUT_KEY: {"method": "elicitation/create", "params": {
                "mode": "url", "message": text, "url": url}}},
            "requestState": state,
        }}))
    }
}

/// `raw` with the round-trip fields of the parked call put back: the
/// upstream's `requestState` and `inputResponses`, or neither.
fn restored(raw: &Value, claims: Claims) -> Value {
    let mut raw = raw.clone();
    if let Some(params) = raw.get_mut("params").and_then(Value::as_object_mut) {
        for (field, value) in [
            ("requestState", claims.upstream_state),
            ("inputResponses", claims.upstream_responses),
        ] {
            match value {
                Some(value) => params.insert(field.to_owned(), value),
                None => params.remove(field),
            };
        }
    }
    raw
}
