//! Operator console, the approvals inbox: every pending approval with who
//! asked (agent, on-behalf-of user), the task and its purpose, the tool,
//! the arguments (masked), the policy's reason and how long the call has
//! waited — kept live by a server-sent event stream that sends the rendered
//! list whenever the set of pending approvals changes. Approving and
//! denying are ordinary forms (see `actions`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use askama::Template;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde::Deserialize;

use super::api::{self, Answer};
use super::page::{self, Chrome};
use super::session::Session;
use super::{Ctx, Error, view};
use crate::Body;
use crate::store::model::now_ms;
use crate::store::{Approval, ApprovalKind};

/// How often the live stream looks for changes.
const POLL: Duration = Duration::from_secs(1);
/// A stream ends after this long; the browser reconnects by itself (and
/// the session is looked at again).
const STREAM_LIFE: Duration = Duration::from_secs(60);
/// A comment this often keeps idle proxies from closing the stream.
const KEEPALIVE_TICKS: u32 = 15;

/// One pending approval as the inbox shows it.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) id: String,
    /// `call` (a parked tool call) or `request` (an agent asked for a grant).
    pub(crate) kind: &'static str,
    pub(crate) agent: String,
    pub(crate) on_behalf_of: Option<String>,
    pub(crate) task_id: String,
    pub(crate) purpose: Option<String>,
    pub(crate) route: String,
    pub(crate) tool: String,
    pub(crate) arguments: String,
    pub(crate) why: String,
    /// The grant an agent asked for, in one line.
    pub(crate) requested: Option<String>,
    pub(crate) waited_ms: u64,
    pub(crate) waited: String,
    pub(crate) expires: String,
}

/// The list itself: rendered into the page and sent by the live stream.
#[derive(Template)]
#[template(path = "console/inbox_items.html")]
pub(crate) struct Items {
    pub(crate) items: Vec<Item>,
    /// The API's role table lets this operator approve and deny.
    pub(crate) may_answer: bool,
    pub(crate) csrf: String,
}

#[derive(Template)]
#[template(path = "console/inbox.html")]
struct InboxPage {
    chrome: Chrome,
    items_html: String,
    count: usize,
}

#[derive(Deserialize)]
struct Listed {
    approvals: Vec<Approval>,
}

/// `GET /console/inbox`.
pub(crate) async fn page(ctx: &Ctx, session: &Session) -> Result<Response<Body>, Error> {
    let items = pending(ctx, session).await?;
    let count = items.items.len();
    let page = InboxPage {
        chrome: Chrome::new(ctx, session, "inbox"),
        items_html: items.render()?,
        count,
    };
    page::html(StatusCode::OK, &page)
}

/// The pending approvals, oldest first, read through the API as `session`.
pub(crate) async fn pending(ctx: &Ctx, session: &Session) -> Result<Items, Answer> {
    let answer = ctx
        .api
        .call(
            &session.operator,
            Method::GET,
            "/v1/approvals?state=pending",
            Bytes::new(),
        )
        .await;
    let mut listed: Listed = api::read(answer)?;
    listed.approvals.sort_by_key(|a| a.created_at_ms);
    let store = ctx.api.gateway().tasks().store();
    let mut purposes: HashMap<String, Option<String>> = HashMap::new();
    let now = now_ms();
    let items = listed
        .approvals
        .into_iter()
        .map(|a| {
            let purpose = purposes
                .entry(a.task_id.clone())
                .or_insert_with(|| store.task(&a.task_id).map(|t| t.purpose))
                .clone();
            item(a, purpose, now)
        })
        .collect();
    let may_answer = ctx.api.allows(
        &session.operator,
        &Method::POST,
        "/v1/approvals/any/approve",
    );
    Ok(Items {
        items,
        may_answer,
        csrf: session.csrf.clone(),
    })
}

fn item(a: Approval, purpose: Option<String>, now: u64) -> Item {
    let waited_ms = now.saturating_sub(a.created_at_ms);
    let requested = a.requested.as_ref().map(|r| {
        let mut line = format!("{} for {}", r.tool, view::span(r.ttl_ms));
        if let Some(route) = &r.route {
            line.push_str(&format!(" on route {route}"));
        }
        if let Some(n) = r.max_uses {
            line.push_str(&format!(", at most {n} use(s)"));
        }
        for c in &r.constraints {
            line.push_str(&format!("; {}", view::constraint(c)));
        }
        line
    });
    Item {
        kind: match a.kind {
            ApprovalKind::Call => "call",
            ApprovalKind::Request => "request",
        },
        arguments: view::arguments(&a.arguments),
        waited: view::span(waited_ms),
        expires: view::relative(a.expires_at_ms, now),
        waited_ms,
        requested,
        purpose,
        id: a.id,
        agent: a.agent,
        on_behalf_of: a.on_behalf_of,
        task_id: a.task_id,
        route: a.route,
        tool: a.tool,
        why: a.why,
    }
}

/// `GET /console/inbox/events`: an `inbox` event with the rendered list at
/// once and on every change; `signedout` when the session has ended.
pub(crate) fn events(ctx: &Ctx, session: &Session) -> Response<Body> {
    let state = Stream {
        ctx: ctx.clone(),
        session: session.clone(),
        shown: None,
        ticks: 0,
        started: tokio::time::Instant::now(),
    };
    let stream = futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        let (chunk, go_on) = state.next().await;
        let next = go_on.then_some(state);
        Some((Ok::<_, Infallible>(Frame::data(chunk)), next))
    });
    let body = StreamBody::new(stream)
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

struct Stream {
    ctx: Ctx,
    session: Session,
    /// The ids last sent, in order; `None` before the first event.
    shown: Option<Vec<String>>,
    ticks: u32,
    started: tokio::time::Instant,
}

impl Stream {
    /// The next chunk to send, and whether the stream goes on after it.
    async fn next(&mut self) -> (Bytes, bool) {
        loop {
            if self.shown.is_some() {
                tokio::time::sleep(POLL).await;
                self.ticks += 1;
            }
            let live = self
                .ctx
                .console
                .sessions
                .get(&self.session.id, now_ms())
                .is_some();
            if !live {
                return (Bytes::from_static(b"event: signedout\ndata: \n\n"), false);
            }
            if self.started.elapsed() >= STREAM_LIFE {
                return (Bytes::from_static(b": reconnect\n\n"), false);
            }
            let items = match pending(&self.ctx, &self.session).await {
                Ok(items) => items,
                // A refusal now (e.g. the API is failing) ends this
                // stream; the browser retries.
                Err(_) => return (Bytes::from_static(b": unavailable\n\n"), false),
            };
            let ids: Vec<String> = items.items.iter().map(|i| i.id.clone()).collect();
            let first = self.shown.is_none();
            if self.shown.as_ref() != Some(&ids) {
                self.shown = Some(ids);
                let html = items.render().unwrap_or_default();
                let retry = if first { "retry: 2000\n" } else { "" };
                return (Bytes::from(sse("inbox", retry, &html)), true);
            }
            if self.ticks.is_multiple_of(KEEPALIVE_TICKS) {
                return (Bytes::from_static(b": keepalive\n\n"), true);
            }
        }
    }
}

/// One server-sent event: every line of `data` behind `data: `.
pub(crate) fn sse(event: &str, prefix: &str, data: &str) -> String {
    let mut out = format!("{prefix}event: {event}\n");
    for line in data.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}
