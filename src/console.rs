//! Operator console: the web pages operators answer parked calls, issue and
//! revoke grants, end tasks and reload policies with — served by the admin
//! listener at `/console/`, server-rendered (askama), every asset compiled
//! into the binary, a strict Content-Security-Policy, and one small script
//! for the live inbox.
//!
//! ```text
//!  /console/…  ─▶ assets?      embedded CSS/JS/icon ─▶ answered (no session)
//!     │
//!     ▼
//!   signin      admin token (or client certificate) checked by the admin API's
//!     │         own credentials → server-side session, HttpOnly SameSite=Strict cookie
//!     ▼
//!   session     cookie → session (expiry; a certificate session needs the same cert)
//!     │
//!     ├─ GET    page: inbox (live over SSE), tasks, a task, policy, reports
//!     │         — data read through the admin API as the signed-in operator
//!     ▼
//!   POST        same origin (Origin / Sec-Fetch-Site) + the session's CSRF token,
//!               then the form becomes one admin API call: the API's role table,
//!               handler and audit line (actor = the token's name)
//! ```

mod actions;
pub mod api;
mod assets;
mod csrf;
mod form;
mod inbox;
mod page;
mod policy;
mod reports;
mod session;
mod signin;
mod tasks;
mod view;

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

use crate::Body;
use crate::listener::{ClientCert, ConnInfo};
pub use api::{Answer, Api, Operator};

/// Where the console lives on the admin listener.
pub const PREFIX: &str = crate::config::CONSOLE_PREFIX;

/// The console's own state: its sessions.
#[derive(Debug, Default)]
pub struct Console {
    sessions: session::Sessions,
}

impl Console {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
}

/// True for the paths the console answers (everything under `/console`).
pub fn serves(path: &str) -> bool {
    path == PREFIX || path.starts_with("/console/")
}

/// Every way a console request can fail; turned into a page in one place
/// ([`page::error`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("sign in first")]
    NotSignedIn,
    #[error("this change was refused: {0}")]
    Csrf(&'static str),
    #[error("no console page at {0}")]
    NotFound(String),
    #[error("{path} does not take {method}")]
    MethodNotAllowed { path: String, method: Method },
    #[error("{0}")]
    BadForm(String),
    #[error("the form is larger than the {0}-byte limit")]
    TooLarge(usize),
    #[error("{}", .0.message())]
    Api(Answer),
    #[error("the page could not be rendered: {0}")]
    Render(#[from] askama::Error),
    #[error("cannot start a session: the system random generator failed")]
    Random,
}

impl Error {
    fn status(&self) -> StatusCode {
        match self {
            Self::NotSignedIn => StatusCode::UNAUTHORIZED,
            Self::Csrf(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::BadForm(_) => StatusCode::BAD_REQUEST,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Api(answer) => answer.status,
            Self::Render(_) | Self::Random => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<Answer> for Error {
    fn from(answer: Answer) -> Self {
        Self::Api(answer)
    }
}

/// What every handler gets: the console, the API, the request's head and
/// the connection.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) console: Arc<Console>,
    pub(crate) api: Arc<dyn Api>,
    pub(crate) head: Arc<http::request::Parts>,
    pub(crate) conn: ConnInfo,
}

impl Ctx {
    pub(crate) fn client(&self) -> Option<&ClientCert> {
        self.head.extensions.get::<ClientCert>()
    }
}

/// Answers one `/console…` request. Never fails: every problem is a page.
pub async fn handle<B>(
    console: Arc<Console>,
    api: Arc<dyn Api>,
    req: Request<B>,
    conn: ConnInfo,
) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<crate::BoxError>,
{
    let (head, body) = req.into_parts();
    let ctx = Ctx {
        console,
        api,
        head: Arc::new(head),
        conn,
    };
    let mut resp = match route(&ctx, body).await {
        Ok(resp) => resp,
        Err(e) => page::error(&ctx, &e),
    };
    page::secure(resp.headers_mut());
    resp
}

async fn route<B>(ctx: &Ctx, body: B) -> Result<Response<Body>, Error>
where
    B: http_body::Body<Data = Bytes> + Send,
    B::Error: Into<crate::BoxError>,
{
    let path = ctx.head.uri.path();
    let not_found = || Error::NotFound(path.to_owned());
    let normal = crate::accept::normalize_path(path).map_err(|_| not_found())?;
    let Some(rest) = normal.strip_prefix("/console/") else {
        return Ok(page::redirect("/console/"));
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let method = ctx.head.method.clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["assets", name]) => return assets::serve(&ctx.head, name),
        (&Method::GET, ["signin"]) => return signin::page(ctx, None, StatusCode::OK),
        (&Method::POST, ["signin"]) => {
            return signin::submit(ctx, form::read(&ctx.head, body).await?);
        }
        _ => {}
    }
    let session = match session::current(ctx) {
        Some(s) => s,
        None if method == Method::GET => return Ok(page::redirect("/console/signin")),
        None => return Err(Error::NotSignedIn),
    };
    match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => Ok(page::redirect("/console/inbox")),
        (&Method::GET, ["inbox"]) => inbox::page(ctx, &session).await,
        (&Method::GET, ["inbox", "events"]) => Ok(inbox::events(ctx, &session)),
        (&Method::GET, ["tasks"]) => tasks::list(ctx, &session).await,
        (&Method::GET, ["tasks", id]) if !id.is_empty() => tasks::show(ctx, &session, id).await,
        (&Method::GET, ["policy"]) => policy::page(ctx, &session).await,
        (&Method::GET, ["reports"]) => reports::page(ctx, &session).await,
        (&Method::GET, ["reports", "decisions", id]) if !id.is_empty() => {
            reports::decision(ctx, &session, id).await
        }
        (&Method::GET, ["reports", "grants", id]) if !id.is_empty() => {
            reports::trace(ctx, &session, id).await
        }
        (&Method::POST, ["signout"]) => {
            let form = form::read(&ctx.head, body).await?;
            signin::sign_out(ctx, &session, &form)
        }
        (&Method::POST, _) if segments.iter().all(|s| !s.is_empty()) => {
            let form = form::read(&ctx.head, body).await?;
            actions::perform(ctx, &session, rest, form).await
        }
        (&Method::GET, _) => Err(not_found()),
        _ => Err(Error::MethodNotAllowed {
            path: path.to_owned(),
            method,
        }),
    }
}

#[cfg(test)]
mod tests;
