//! Operator console, signing in and out: an admin token (the same tokens
//! as the admin API, checked by the API's own credentials) or the client
//! certificate of an mTLS admin listener is exchanged once for a session
//! cookie. The token is never kept, logged or echoed. The sign-in form
//! carries its own token (a cookie of its own), so no other site can sign
//! a browser in as someone else.

use askama::Template;
use http::header::{HeaderValue, SET_COOKIE};
use http::{Response, StatusCode};

use super::form::Form;
use super::page;
use super::session::{self, COOKIE_NAME, SESSION_TTL, SIGNIN_COOKIE, SIGNIN_TTL, Session};
use super::{Ctx, Error, csrf};
use crate::Body;
use crate::store::model::now_ms;

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignIn {
    csrf: String,
    /// The connection's client certificate SANs, if it presented one.
    cert: Option<String>,
    error: Option<String>,
}

/// The sign-in form (with a fresh form token), maybe saying what failed.
pub(crate) fn page(
    ctx: &Ctx,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response<Body>, Error> {
    let token = session::random_token()?;
    let cert = ctx.client().map(|c| c.sans.join(", "));
    let mut resp = page::html(
        status,
        &SignIn {
            csrf: token.clone(),
            cert,
            error,
        },
    )?;
    add_cookie(
        &mut resp,
        &session::set_cookie(SIGNIN_COOKIE, &token, SIGNIN_TTL, ctx.conn.tls),
    );
    Ok(resp)
}

/// `POST /console/signin`: `method=token` with `token`, or `method=cert`.
pub(crate) fn submit(ctx: &Ctx, form: Form) -> Result<Response<Body>, Error> {
    csrf::same_origin(&ctx.head, ctx.conn.tls)?;
    let expected = session::cookie_value(&ctx.head.headers, SIGNIN_COOKIE)
        .ok_or(Error::Csrf("the sign-in form has expired; reload it"))?;
    csrf::token(form.get("csrf"), &expected)?;
    let by_cert = form.get("method") == Some("cert");
    let client = ctx.client();
    let who = if by_cert {
        ctx.api.authenticate(None, client)
    } else {
        let token = form.get("token").map(str::trim).unwrap_or("");
        if token.is_empty() {
            return page(
                ctx,
                Some("Paste an admin token.".into()),
                StatusCode::UNAUTHORIZED,
            );
        }
        ctx.api.authenticate(Some(token), None)
    };
    let via = if by_cert { "certificate" } else { "token" };
    let operator = match who {
        Ok(operator) => operator,
        Err(answer) => {
            tracing::info!(
                target: "toolgate::audit",
                remote = %ctx.conn.remote,
                via,
                outcome = answer.code(),
                "console sign-in refused"
            );
            return page(ctx, Some(answer.message()), answer.status);
        }
    };
    let cert = if by_cert {
        client.map(|c| c.sans.clone())
    } else {
        None
    };
    let session = ctx.console.sessions.open(operator, cert, now_ms())?;
    tracing::info!(
        target: "toolgate::audit",
        actor = %session.operator.actor,
        role = session.operator.role.as_str(),
        remote = %ctx.conn.remote,
        via,
        outcome = "ok",
        "console sign-in"
    );
    let mut resp = page::redirect("/console/inbox");
    let tls = ctx.conn.tls;
    add_cookie(
        &mut resp,
        &session::set_cookie(COOKIE_NAME, &session.id, SESSION_TTL, tls),
    );
    add_cookie(
        &mut resp,
        &session::set_cookie(SIGNIN_COOKIE, "", std::time::Duration::ZERO, tls),
    );
    Ok(resp)
}

/// `POST /console/signout`: the session ends here and in the browser.
pub(crate) fn sign_out(ctx: &Ctx, session: &Session, form: &Form) -> Result<Response<Body>, Error> {
    csrf::check(&ctx.head, ctx.conn.tls, form.get("csrf"), &session.csrf)?;
    ctx.console.sessions.close(&session.id);
    tracing::info!(
        target: "toolgate::audit",
        actor = %session.operator.actor,
        remote = %ctx.conn.remote,
        outcome = "ok",
        "console sign-out"
    );
    let mut resp = page::redirect("/console/signin");
    add_cookie(
        &mut resp,
        &session::set_cookie(COOKIE_NAME, "", std::time::Duration::ZERO, ctx.conn.tls),
    );
    Ok(resp)
}

fn add_cookie(resp: &mut Response<Body>, cookie: &str) {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(SET_COOKIE, value);
    }
}
