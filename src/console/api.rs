//! Operator console, what it needs from the admin API: who a credential
//! is, whether the API's role table lets an operator make a call, and the
//! call itself. The admin listener implements [`Api`] with the API's own
//! credential check, path table, role check, handlers and audit record, so
//! the console can never do more than the same token could with curl.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::Role;
use crate::gateway::Gateway;
use crate::listener::ClientCert;

/// Who is signed in: the admin API's actor (a token's name, or
/// `cert:<san>`) and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub actor: String,
    pub role: Role,
}

/// An admin API answer: its status and JSON body (for an error,
/// `{"error": {"code", "message"}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    /// The error's message, or the status's reason for a body without one.
    pub fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| self.status.canonical_reason().unwrap_or("error").to_owned())
    }

    /// The error's code (`forbidden`, `invalid_request`, …), if any.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// A call's future.
pub type Pending<'a> = Pin<Box<dyn Future<Output = Answer> + Send + 'a>>;

/// The admin API, in-process.
pub trait Api: Send + Sync {
    /// The API's credential check: a bearer token, or (with `None`) the
    /// connection's client certificate.
    fn authenticate(
        &self,
        token: Option<&str>,
        client: Option<&ClientCert>,
    ) -> Result<Operator, Answer>;

    /// True when the API's role table lets `operator` call `method path`.
    fn allows(&self, operator: &Operator, method: &Method, path: &str) -> bool;

    /// Makes one API call as `operator` (audited like any other).
    fn call<'a>(
        &'a self,
        operator: &'a Operator,
        method: Method,
        path_and_query: &'a str,
        body: Bytes,
    ) -> Pending<'a>;

    /// The gateway, for what the API does not list (a task's purpose in the
    /// inbox, where a policy module applies).
    fn gateway(&self) -> &Arc<Gateway>;
}

/// Reads an API answer as `T`, or hands back the answer of a failed call.
pub(crate) fn read<T: DeserializeOwned>(answer: Answer) -> Result<T, Answer> {
    if !answer.status.is_success() {
        return Err(answer);
    }
    serde_json::from_value(answer.body).map_err(|e| Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        body: serde_json::json!({"error": {"code": "internal", "message": format!("the console cannot read the API's answer: {e}")}}),
    })
}
