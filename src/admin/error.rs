//! Admin API: every way an admin request can fail, and the one place that
//! turns each into its status and `{"error": {"code", "message"}}` body.

use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::Body;
use crate::answer::json_response;
use crate::config::Role;
use crate::store;
use crate::tasks;

/// The realm every admin `WWW-Authenticate` challenge names.
const REALM: &str = "toolgate-admin";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the admin API has no credentials configured, so it refuses every call: add an \
         [[admin.tokens]] entry (`toolgate admin-token --name NAME --role admin` prints one) \
         or map client certificates in [[admin.clients]], then restart"
    )]
    NoCredentials,
    #[error("{0}")]
    Unauthenticated(&'static str),
    #[error("the client certificate (SANs: {0}) is not listed in admin.clients")]
    UnknownClient(String),
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("this needs role {needed}; {actor} has role {has}", needed = .needed.as_str(), has = .has.as_str())]
    Forbidden {
        needed: Role,
        actor: String,
        has: Role,
    },
    #[error("no admin endpoint at {0}")]
    NotFound(String),
    #[error("{path} does not take {method}; it takes {allow}")]
    MethodNotAllowed {
        path: String,
        method: http::Method,
        allow: &'static str,
    },
    #[error("request body is larger than the {limit}-byte limit")]
    BodyTooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error("the request body did not arrive within {limit_ms} ms")]
    BodyTimeout { limit_ms: u128 },
    #[error("the request body is not valid: {0}")]
    InvalidJson(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Tasks(#[from] tasks::Error),
    #[error("{0}")]
    PolicyReload(String),
    #[error(
        "no config reload loop is running: only `toolgate serve --config FILE` can re-read its file"
    )]
    ReloadUnavailable,
    #[error("no decision log is configured: reports read the [audit] log, add an [audit] section")]
    NoDecisionLog,
    #[error("{0}")]
    DecisionLog(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        Self::Tasks(tasks::Error::Store(e))
    }
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NoCredentials
            | Self::Unauthenticated(_)
            | Self::UnknownClient(_)
            | Self::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::BodyRead(_) | Self::InvalidJson(_) | Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Tasks(e) => e.status(),
            Self::PolicyReload(_) | Self::ReloadUnavailable => StatusCode::CONFLICT,
            Self::NoDecisionLog => StatusCode::CONFLICT,
            Self::DecisionLog(_) | Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Machine-readable code; also the `outcome` label of audited actions.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoCredentials | Self::Unauthenticated(_) | Self::UnknownClient(_) => {
                "unauthenticated"
            }
            Self::InvalidToken(_) => "invalid_token",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::BodyTooLarge { .. } => "body_too_large",
            Self::BodyRead(_) => "body_read_failed",
            Self::BodyTimeout { .. } => "body_read_timeout",
            Self::InvalidJson(_) => "invalid_json",
            Self::Invalid(_) => "invalid_request",
            Self::Tasks(e) => e.code(),
            Self::PolicyReload(_) => "policy_reload_failed",
            Self::ReloadUnavailable => "reload_unavailable",
            Self::NoDecisionLog => "no_decision_log",
            Self::DecisionLog(_) => "decision_log_unreadable",
            Self::Internal(_) => "internal",
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let mut error = json!({"code": self.code(), "message": self.to_string()});
        if let Self::Forbidden { needed, .. } = &self {
            error["required_role"] = json!(needed.as_str());
        }
        if let Self::PolicyReload(_) = &self {
            error["detail"] = json!("the last good policy set keeps serving");
        }
        let mut resp = json_response(status, &json!({ "error": error }));
        let challenge = if let Self::InvalidToken(_) = &self {
            Some(format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""))
        } else if status == StatusCode::UNAUTHORIZED {
            Some(format!("Bearer realm=\"{REALM}\""))
        } else {
            None
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        if let Self::MethodNotAllowed { allow, .. } = &self {
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}
