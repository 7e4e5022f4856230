//! Understand stage: JSON-RPC 2.0 messages as MCP sends them — one message
//! or (2025-03-26 only) a batch — and the `tools/call` inside them.

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("body is not valid JSON: {0}")]
    Parse(String),
    #[error("an empty JSON array is not a valid JSON-RPC batch")]
    EmptyBatch,
    #[error("{what}")]
    Invalid { id: Option<Value>, what: String },
}

impl Error {
    /// The request id to answer with, where one could be read.
    pub fn id(&self) -> Option<&Value> {
        match self {
            Self::Invalid { id, .. } => id.as_ref(),
            Self::Parse(_) | Self::EmptyBatch => None,
        }
    }
}

/// What a POST body held.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub messages: Vec<Message>,
    /// True when the body was a JSON array.
    pub batch: bool,
}

impl Envelope {
    /// The W3C `traceparent` an MCP client put in `params._meta` (SEP-414),
    /// from the first message carrying one; unchecked.
    pub fn meta_traceparent(&self) -> Option<&str> {
        self.messages
            .iter()
            .find_map(|m| m.params()?.get("_meta")?.get("traceparent")?.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Notification,
    /// A client's answer to a server-initiated request.
    Response,
}

/// One JSON-RPC message, kept whole so it can be forwarded or re-emitted.
#[derive(Debug, Clone)]
pub struct Message {
    pub raw: Value,
    pub kind: MessageKind,
    pub id: Option<Value>,
    pub method: Option<String>,
}

/// The tool a `tools/call` names and the arguments it passes.
#[derive(Debug, Clone, Copy)]
pub struct ToolCall<'a> {
    pub name: &'a str,
    pub arguments: &'a Value,
}

static NO_ARGUMENTS: Value = Value::Null;

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, Error> {
        let value: Value = serde_json::from_slice(body).map_err(|e| Error::Parse(e.to_string()))?;
        match value {
            Value::Array(items) if items.is_empty() => Err(Error::EmptyBatch),
            Value::Array(items) => {
                let messages = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| Message::from_value(item, Some(i)))
                    .collect::<Result<_, _>>()?;
                Ok(Self {
                    messages,
                    batch: true,
                })
            }
            single => Ok(Self {
                messages: vec![Message::from_value(single, None)?],
                batch: false,
            }),
        }
    }
}

impl Message {
    fn from_value(raw: Value, index: Option<usize>) -> Result<Self, Error> {
        let at = index.map_or(String::new(), |i| format!("batch element {i}: "));
        let Value::Object(obj) = &raw else {
            return Err(Error::Invalid {
                id: None,
                what: format!("{at}a JSON-RPC message must be a JSON object"),
            });
        };
        let id = obj.get("id").cloned();
        let invalid = |what: &str| Error::Invalid {
            id: id.clone().filter(valid_id),
            what: format!("{at}{what}"),
        };
        if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Err(invalid("\"jsonrpc\" must be \"2.0\""));
        }
        if let Some(id) = &id
            && !valid_id(id)
        {
            return Err(invalid("\"id\" must be a string or an integer"));
        }
        let kind = match (obj.get("method"), &id) {
            (Some(Value::String(_)), Some(_)) => MessageKind::Request,
            (Some(Value::String(_)), None) => MessageKind::Notification,
            (Some(_), _) => return Err(invalid("\"method\" must be a string")),
            (None, Some(_)) if obj.contains_key("result") || obj.contains_key("error") => {
                MessageKind::Response
            }
            (None, _) => {
                return Err(invalid(
                    "a message needs a \"method\", or an \"id\" with a \"result\" or \"error\"",
                ));
            }
        };
        if kind == MessageKind::Notification
            && obj.get("method").and_then(Value::as_str) == Some("tools/call")
        {
            // Never forwarded undecided, and a notification cannot be answered.
            return Err(invalid("tools/call must be a request with an \"id\""));
        }
        if let Some(params) = obj.get("params")
            && !params.is_object()
            && !params.is_array()
        {
            return Err(invalid("\"params\" must be an object or an array"));
        }
        let method = obj.get("method").and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            raw,
            kind,
            id,
            method,
        })
    }

    pub fn method(&self) -> Option<&str> {
        self.method.as_deref()
    }

    pub fn params(&self) -> Option<&Value> {
        self.raw.get("params")
    }

    /// For a `tools/call` request, its tool name and arguments; `Err` says
    /// what is malformed. `None` for every other message.
    pub fn tool_call(&self) -> Option<Result<ToolCall<'_>, &'static str>> {
        if self.kind != MessageKind::Request || self.method() != Some("tools/call") {
            return None;
        }
        let params = self.params();
        let Some(name) = params.and_then(|p| p.get("name")).and_then(Value::as_str) else {
            return Some(Err("tools/call needs params.name (a string)"));
        };
        let arguments = params
            .and_then(|p| p.get("arguments"))
            .unwrap_or(&NO_ARGUMENTS);
        if !arguments.is_object() && !arguments.is_null() {
            return Some(Err("tools/call params.arguments must be an object"));
        }
        Some(Ok(ToolCall { name, arguments }))
    }
}

fn valid_id(id: &Value) -> bool {
    id.is_string() || id.as_i64().is_some() || id.as_u64().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_request_and_tool_call() {
        let env = Envelope::parse(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
        )
        .unwrap();
        assert!(!env.batch);
        let call = env.messages[0].tool_call().unwrap().unwrap();
        assert_eq!(call.name, "echo");
        assert_eq!(call.arguments["text"], "hi");
    }

    #[test]
    fn batch_elements_are_classified() {
        let env = Envelope::parse(
            br#"[{"jsonrpc":"2.0","id":"a","method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":3,"result":{}}]"#,
        )
        .unwrap();
        let kinds: Vec<_> = env.messages.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [
                MessageKind::Request,
                MessageKind::Notification,
                MessageKind::Response
            ]
        );
    }

    #[test]
    fn malformed_messages_are_refused_with_reasons() {
        let cases: [(&[u8], &str); 7] = [
            (b"{not json", "not valid JSON"),
            (b"[]", "empty JSON array"),
            (b"42", "JSON object"),
            (br#"{"id":1,"method":"ping"}"#, "\"jsonrpc\" must be"),
            (
                br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                "\"id\" must be",
            ),
            (
                br#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                "\"method\" must be",
            ),
            (br#"{"jsonrpc":"2.0","id":1}"#, "needs a \"method\""),
        ];
        for (body, want) in cases {
            let err = Envelope::parse(body).unwrap_err().to_string();
            assert!(err.contains(want), "{body:?}: {err}");
        }
    }

    #[test]
    fn tool_call_shape_is_checked() {
        let env = Envelope::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#)
            .unwrap();
        assert!(env.messages[0].tool_call().unwrap().is_err());
        let env = Envelope::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":[1]}}"#,
        )
        .unwrap();
        assert!(env.messages[0].tool_call().unwrap().is_err());
        let env = Envelope::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#).unwrap();
        assert!(env.messages[0].tool_call().is_none());
    }
}
