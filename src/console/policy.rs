//! Operator console, the policy set: every loaded module (name, version,
//! hash, the phases, routes and tools it applies to), the reloads counted
//! since start, the last reload (whatever started it) and its result, and
//! the reload button for roles the API lets reload.

use askama::Template;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use serde::Deserialize;

use super::api;
use super::page::{self, Chrome};
use super::session::Session;
use super::{Ctx, Error, view};
use crate::Body;
use crate::config::PolicyPhase;
use crate::store::Millis;
use crate::store::model::now_ms;

/// The last reload, as `GET /v1/policies` reports it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ReloadRecord {
    pub(crate) at_ms: Millis,
    trigger: String,
    #[serde(default)]
    by: Option<String>,
    pub(crate) ok: bool,
    #[serde(default)]
    modules: Option<u64>,
    #[serde(default)]
    error: Option<String>,
}

impl ReloadRecord {
    /// What started it, in words.
    pub(crate) fn cause(&self) -> String {
        match (self.trigger.as_str(), &self.by) {
            ("api", Some(by)) => format!("reload by {by}"),
            ("file_change", _) => "a module file changed".to_owned(),
            ("config", _) => "the config file was re-read".to_owned(),
            (other, _) => other.to_owned(),
        }
    }

    /// Its result, in words.
    pub(crate) fn message(&self) -> String {
        match (&self.error, self.modules) {
            (Some(e), _) => e.clone(),
            (None, Some(n)) => format!("{n} module(s) active"),
            (None, None) => String::new(),
        }
    }
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
    #[serde(default)]
    last_reload: Option<ReloadRecord>,
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
    let last = listed
        .last_reload
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
