//! Operator console, how a page goes out: HTML from a compiled template,
//! the security headers every console answer carries (a strict CSP among
//! them), redirects after a change, and the one place an [`Error`] becomes
//! a page.

use askama::Template;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};

use super::session::{Flash, Session};
use super::{Ctx, Error};
use crate::Body;
use crate::answer::full;

/// Scripts, styles, images and connections from the console itself only;
/// no inline script or style, no plugins, no framing, forms post only here.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Adds the headers every console answer carries.
pub(crate) fn secure(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name, value| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(headers, header::CONTENT_SECURITY_POLICY, CSP);
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    // Not `no-referrer`: with it browsers send `Origin: null` on a POST,
    // and the CSRF check reads the Origin.
    set(headers, header::REFERRER_POLICY, "same-origin");
    set(
        headers,
        header::HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        headers,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
}

/// The frame around every signed-in page: who, the navigation, the token
/// the page's forms carry, and what the last change did.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) actor: String,
    pub(crate) role: &'static str,
    pub(crate) csrf: String,
    pub(crate) flash: Option<Flash>,
    /// The active navigation entry: `inbox`, `tasks`, `policy`, `reports`.
    pub(crate) nav: &'static str,
}

impl Chrome {
    pub(crate) fn new(ctx: &Ctx, session: &Session, nav: &'static str) -> Self {
        Self {
            actor: session.operator.actor.clone(),
            role: session.operator.role.as_str(),
            csrf: session.csrf.clone(),
            flash: ctx.console.sessions.take_flash(&session.id),
            nav,
        }
    }
}

/// A rendered page.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> Result<Response<Body>, Error> {
    let text = page.render()?;
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(resp)
}

/// 303 See Other to a console path.
pub(crate) fn redirect(to: &str) -> Response<Body> {
    let mut resp = Response::new(full(""));
    *resp.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    resp
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage<'a> {
    status: u16,
    reason: &'a str,
    message: String,
    back: &'a str,
}

/// The page for a failed request: its status, what went wrong, a way back.
pub(crate) fn error(ctx: &Ctx, e: &Error) -> Response<Body> {
    let status = e.status();
    let back = match e {
        Error::NotSignedIn => "/console/signin",
        Error::Csrf(_)
        | Error::NotFound(_)
        | Error::MethodNotAllowed { .. }
        | Error::BadForm(_)
        | Error::TooLarge(_)
        | Error::Api(_)
        | Error::Render(_)
        | Error::Random => "/console/",
    };
    if let Error::Csrf(why) = e {
        tracing::info!(
            target: "toolgate::audit",
            remote = %ctx.conn.remote,
            path = ctx.head.uri.path(),
            outcome = "csrf",
            why,
            "console change refused"
        );
    }
    let page = ErrorPage {
        status: status.as_u16(),
        reason: status.canonical_reason().unwrap_or("Error"),
        message: e.to_string(),
        back,
    };
    html(status, &page).unwrap_or_else(|_| {
        let mut resp = Response::new(full(e.to_string()));
        *resp.status_mut() = status;
        resp
    })
}
