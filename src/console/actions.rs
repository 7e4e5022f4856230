//! Operator console, changes: every form posts to `/console/<api path>`
//! (the admin API's path without `/v1`), is checked for same origin and the
//! session's CSRF token, and becomes exactly one admin API call as the
//! signed-in operator — the API's role table, handler and audit record
//! decide and remember it. Success goes back to the page with a message;
//! a refusal is a page with the API's status and message.

use bytes::Bytes;
use http::{Method, Response};
use serde_json::Value;

use super::form::Form;
use super::session::{Flash, Session};
use super::{Ctx, Error, csrf, page};
use crate::Body;

/// Performs the change `rest` names (e.g. `approvals/appr_1/approve`).
pub(crate) async fn perform(
    ctx: &Ctx,
    session: &Session,
    rest: &str,
    form: Form,
) -> Result<Response<Body>, Error> {
    csrf::check(&ctx.head, ctx.conn.tls, form.get("csrf"), &session.csrf)?;
    let body = serde_json::to_vec(&form.api_body()?)
        .map_err(|e| Error::BadForm(format!("the form cannot be sent: {e}")))?;
    let path = format!("/v1/{rest}");
    let answer = ctx
        .api
        .call(&session.operator, Method::POST, &path, Bytes::from(body))
        .await;
    if !answer.status.is_success() {
        return Err(Error::Api(answer));
    }
    ctx.console.sessions.set_flash(
        &session.id,
        Flash {
            ok: true,
            text: done(rest, &answer.body),
        },
    );
    Ok(page::redirect(&back(&form, rest, &answer.body)))
}

/// Where the operator goes after a change: the form's `return` if it is a
/// console page, else the page the change belongs to.
fn back(form: &Form, rest: &str, body: &Value) -> String {
    if let Some(to) = form.get("return").filter(|to| is_console_page(to)) {
        return to.to_owned();
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["tasks"] => body["task"]["id"].as_str().map_or_else(
            || "/console/tasks".to_owned(),
            |t| format!("/console/tasks/{t}"),
        ),
        ["tasks", id, ..] => format!("/console/tasks/{id}"),
        ["grants"] => body["grant"]["task_id"].as_str().map_or_else(
            || "/console/tasks".to_owned(),
            |t| format!("/console/tasks/{t}"),
        ),
        ["policies", ..] => "/console/policy".to_owned(),
        _ => "/console/inbox".to_owned(),
    }
}

/// A local console path: no scheme, host or `//`, nothing to escape.
pub(crate) fn is_console_page(to: &str) -> bool {
    to.starts_with("/console/")
        && !to.contains("//")
        && to.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
}

/// What a successful change did, in a sentence.
fn done(rest: &str, body: &Value) -> String {
    let id = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    let count = body["revoked"].as_array().map_or(0, Vec::len);
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["approvals", a, "approve"] => format!(
            "Approved {a}: grant {} issued for exactly that call.",
            id(&body["grant"]["id"])
        ),
        ["approvals", a, "deny"] => format!("Denied {a}."),
        ["tasks"] => format!("Task {} created.", id(&body["task"]["id"])),
        ["tasks", t, "complete"] => format!("Task {t} completed; its grants ended with it."),
        ["tasks", t, "cancel"] => format!("Task {t} cancelled; its grants ended with it."),
        ["tasks", t, "grants", "revoke"] => format!("Revoked {count} grant(s) of task {t}."),
        ["grants"] => format!("Grant {} issued.", id(&body["grant"]["id"])),
        ["grants", g, "revoke"] => format!("Grant {g} revoked."),
        ["agents", "revoke-grants"] => format!("Revoked {count} grant(s) of the agent."),
        ["policies", "reload"] => format!(
            "Policies reloaded: {} module(s) active.",
            body["modules"].as_u64().unwrap_or(0)
        ),
        _ => "Done.".to_owned(),
    }
}
