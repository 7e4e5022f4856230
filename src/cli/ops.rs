//! Operator CLI: `toolgate task|grant|approval …`, a thin client of the
//! admin API. Each invocation maps its arguments to one request
//! ([`request`]), sends it ([`client`]) and prints the answer as a table or
//! `key: value` lines ([`render`]), or as the API's JSON with `--json`.
//!
//! Exit status: 0 done; 2 usage errors and 4xx answers (the request was
//! wrong or not allowed); 1 connection failures, timeouts and 5xx answers.

mod args;
mod client;
mod render;
mod request;
mod table;
#[cfg(test)]
mod tests;

use std::io::Write as _;
use std::process::ExitCode;

use http::StatusCode;

pub use args::{AdminArgs, ApprovalCommand, GrantCommand, OpsCommand, TaskCommand};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad option or file; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// The admin API refused or failed the request.
    #[error("{code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("cannot reach the admin API at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("no answer from {url} within 30s")]
    Timeout { url: String },
    #[error("unexpected answer from the admin API: {0} (--json prints it as-is)")]
    BadAnswer(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Error {
    /// 2 when the request was wrong (usage, 4xx), 1 when the other end or
    /// the way to it failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::Api { status, .. } if status.is_client_error() => 2,
            Self::Api { .. }
            | Self::Connect { .. }
            | Self::Timeout { .. }
            | Self::BadAnswer(_)
            | Self::Output(_) => 1,
        }
    }
}

/// Runs one operator command; errors go to stderr as `error: …`.
pub async fn run(command: OpsCommand) -> ExitCode {
    match execute(&command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Neither the token nor the Authorization header is ever part
            // of an error's text.
            let _ = writeln!(std::io::stderr(), "error: {}", table::clean(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn execute(command: &OpsCommand) -> Result<(), Error> {
    let admin = match command {
        OpsCommand::Task { admin, .. }
        | OpsCommand::Grant { admin, .. }
        | OpsCommand::Approval { admin, .. } => admin,
    };
    let (call, shape) = command.call();
    let client = client::AdminClient::new(admin)?;
    let answer = client.send(&call).await.map_err(|e| with_hint(e, admin))?;
    let text = if admin.json {
        let mut pretty =
            serde_json::to_string_pretty(&answer).map_err(|e| Error::BadAnswer(e.to_string()))?;
        pretty.push('\n');
        pretty
    } else {
        render::render(shape, &answer, now())?
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// An authentication refusal says how to give the CLI its credentials.
fn with_hint(error: Error, admin: &AdminArgs) -> Error {
    let hint = match &error {
        Error::Api { code, .. } if code == "unauthenticated" => {
            if admin.token.is_some() || admin.token_file.is_some() {
                return error;
            }
            "no admin token was given: export TOOLGATE_ADMIN_TOKEN=<token> or pass \
             --token-file FILE (`toolgate admin-token --name NAME --role operator` makes one \
             and the [[admin.tokens]] entry for the config)"
        }
        Error::Api { code, .. } if code == "invalid_token" => {
            "the admin API does not know this token (from --token-file, --token or \
             TOOLGATE_ADMIN_TOKEN): is it listed in admin.tokens of the config it runs?"
        }
        _ => return error,
    };
    match error {
        Error::Api {
            status,
            code,
            message,
        } => Error::Api {
            status,
            code,
            message: format!("{message}; {hint}"),
        },
        other => other,
    }
}

fn now() -> crate::store::Millis {
    crate::store::model::now_ms()
}
