//! Operator console, the policy set: every loaded module (name, version,
//! hash, the phases, routes and tools it applies to), the reloads counted
//! since start, the last reload made from the console and its result, and
//! the reload button for roles the API lets reload.

use askama::Template;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;

use super::api::{self, Answer};
use super::page::{self, Chrome};
use super::session::Session;
use super::{Ctx, Error, view};
use crate::Body;
use crate::config::PolicyPhase;
use crate::store::Millis;
use crate::store::model::now_ms;

/// The last reload made from the console.
#[derive(Debug, Clone)]
pub(crate) struct ReloadRecord {
    pub(crate) at_ms: Millis,
    pub(crate) actor: String,
    pub(crate) ok: bool,
    pub(crate) message: String,
}

/// One module in the table.
#[derive(Debug)]
pub(crate) struct ModuleRow {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) sha256: String,
    pub(crate) phases: String,
    pub(crate) routes: String,
    pub(crate) tools: String,
}

#[derive(Template)]
#[template(path = "console/policy.html")]
struct PolicyPage {
    chrome: Chrome,
    modules: Vec<ModuleRow>,
    reloads_ok: u64,
    reloads_failed: u64,
    last: Option<(String, ReloadRecord)>,
    may_reload: bool,
}

#[derive(Deserialize)]
struct Listed {
    policies: Vec<Listing>,
}

#[derive(Deserialize)]
struct Listing {
    name: String,
    version: String,
    sha256: String,
}

/// `GET /console/policy`.
pub(crate) async fn page(ctx: &Ctx, session: &Session) -> Result<Response<Body>, Error> {
    let answer = ctx
        .api
        .call(&session.operator, Method::GET, "/v1/policies", Bytes::new())
        .await;
    let listed: Listed = api::read(answer)?;
    let snapshot = ctx.api.gateway().snapshot();
    let modules = listed
        .policies
        .into_iter()
        .map(|m| {
            let config = snapshot.policies.iter().find(|p| p.name == m.name);
            let all = |list: Option<&Vec<String>>, none: &str| {
                list.filter(|l| !l.is_empty())
                    .map_or_else(|| none.to_owned(), |l| l.join(", "))
            };
            ModuleRow {
                phases: phases(config.map(|c| c.phases.as_slice()).unwrap_or_default()),
                routes: all(config.map(|c| &c.routes), "every route"),
                tools: all(config.map(|c| &c.tools), "every tool"),
                name: m.name,
                version: m.version,
                sha256: m.sha256,
            }
        })
        .collect();
    let (reloads_ok, reloads_failed) = reload_counts(ctx);
    let last = ctx
        .console
        .last_reload
        .lock()
        .ok()
        .and_then(|l| l.clone())
        .map(|r| (view::relative(r.at_ms, now_ms()), r));
    let page = PolicyPage {
        chrome: Chrome::new(ctx, session, "policy"),
        modules,
        reloads_ok,
        reloads_failed,
        last,
        may_reload: ctx
            .api
            .allows(&session.operator, &Method::POST, "/v1/policies/reload"),
    };
    page::html(StatusCode::OK, &page)
}

/// The phases a module decides in, as the config says (empty: call, list).
fn phases(list: &[PolicyPhase]) -> String {
    let name = |p: &PolicyPhase| match p {
        PolicyPhase::Call => "call",
        PolicyPhase::List => "list",
        PolicyPhase::Grant => "grant",
    };
    if list.is_empty() {
        "call, list".to_owned()
    } else {
        list.iter().map(name).collect::<Vec<_>>().join(", ")
    }
}

/// `toolgate_policy_reloads_total` by result: (ok, error).
fn reload_counts(ctx: &Ctx) -> (u64, u64) {
    let mut counts = (0, 0);
    let families = ctx.api.gateway().recorder().registry().gather();
    let family = families
        .iter()
        .find(|f| f.name() == "toolgate_policy_reloads_total");
    for metric in family.map(|f| f.get_metric()).unwrap_or_default() {
        let result = metric
            .get_label()
            .iter()
            .find(|l| l.name() == "result")
            .map(|l| l.value());
        // Counters hold whole numbers of reloads.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = metric.get_counter().get_value() as u64;
        match result {
            Some("ok") => counts.0 += n,
            Some(_) | None => counts.1 += n,
        }
    }
    counts
}

/// Remembers the outcome of a reload made from the console.
pub(crate) fn remember_reload(ctx: &Ctx, session: &Session, answer: &Answer) {
    let ok = answer.status.is_success();
    let message = if ok {
        format!(
            "{} module(s) active",
            answer.body["modules"].as_u64().unwrap_or(0)
        )
    } else {
        answer.message()
    };
    if let Ok(mut last) = ctx.console.last_reload.lock() {
        *last = Some(ReloadRecord {
            at_ms: now_ms(),
            actor: session.operator.actor.clone(),
            ok,
            message,
        });
    }
}
