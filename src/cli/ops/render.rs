//! Operator CLI, output: an admin API answer as a table (lists) or as
//! `key: value` lines (one record), with times relative to now.

use std::fmt::Write as _;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::Error;
use super::request::Shape;
use super::table::{Fields, Table, relative, when};
use crate::store::{Activity, Approval, Ending, Grant, GrantSource, Millis, Task};

/// The answer of a request of `shape`, ready to print.
pub(crate) fn render(shape: Shape, answer: &Value, now: Millis) -> Result<String, Error> {
    Ok(match shape {
        Shape::Tasks => task_table(&field::<Vec<Task>>(answer, "tasks")?, now),
        Shape::Task => task_fields(&field(answer, "task")?, now),
        Shape::TaskDetail => task_detail(answer, now)?,
        Shape::Grants => grant_table(&records(answer, "grants", now)?, now),
        Shape::Grant => grant_fields(&record(answer, "grant", now)?, now),
        Shape::Revoked => revoked(&field::<Vec<String>>(answer, "revoked")?),
        Shape::Approvals => approval_table(&field::<Vec<Approval>>(answer, "approvals")?, now),
        Shape::Approval => {
            let mut out = approval_fields(&field(answer, "approval")?, now);
            if answer.get("grant").is_some_and(|g| !g.is_null()) {
                out.push_str("\ngrant created:\n");
                out.push_str(&grant_fields(&record(answer, "grant", now)?, now));
            }
            out
        }
    })
}

/// A grant with the state the API reports, or one worked out from it.
pub(crate) struct GrantView {
    pub(crate) grant: Grant,
    pub(crate) state: String,
}

fn field<T: DeserializeOwned>(answer: &Value, key: &str) -> Result<T, Error> {
    let value = answer
        .get(key)
        .ok_or_else(|| Error::BadAnswer(format!("no {key:?} in the answer")))?;
    serde_json::from_value(value.clone())
        .map_err(|e| Error::BadAnswer(format!("{key:?} is not what this CLI expects: {e}")))
}

fn record(answer: &Value, key: &str, now: Millis) -> Result<GrantView, Error> {
    let grant: Grant = field(answer, key)?;
    let state = answer.get(key).and_then(|g| g.get("state"));
    Ok(view(grant, state, now))
}

fn records(answer: &Value, key: &str, now: Millis) -> Result<Vec<GrantView>, Error> {
    let grants: Vec<Grant> = field(answer, key)?;
    let states = answer.get(key).and_then(Value::as_array);
    Ok(grants
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let state = states.and_then(|s| s.get(i)).and_then(|g| g.get("state"));
            view(g, state, now)
        })
        .collect())
}

fn view(grant: Grant, state: Option<&Value>, now: Millis) -> GrantView {
    let state = match state.and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None => grant_state(&grant, now).to_owned(),
    };
    GrantView { grant, state }
}

/// A grant's state on its own terms, for answers that do not carry one.
pub(crate) fn grant_state(grant: &Grant, now: Millis) -> &'static str {
    if grant.revoked.is_some() {
        "revoked"
    } else if now >= grant.expires_at_ms {
        "expired"
    } else if grant.max_uses.is_some_and(|max| grant.uses >= max) {
        "used_up"
    } else if grant.not_before_ms.is_some_and(|nb| now < nb) {
        "scheduled"
    } else {
        "live"
    }
}

pub(crate) fn task_table(tasks: &[Task], now: Millis) -> String {
    let mut table = Table::new(&["ID", "STATE", "AGENT", "PURPOSE", "EXPIRES"]);
    for t in tasks {
        table.row(vec![
            t.id.clone(),
            t.state_at(now).as_str().to_owned(),
            t.agent.clone(),
            t.purpose.clone(),
            expiry(t.ended.is_some(), t.expires_at_ms, now),
        ]);
    }
    or_none(&table, "no tasks")
}

pub(crate) fn grant_table(grants: &[GrantView], now: Millis) -> String {
    let mut table = Table::new(&["ID", "STATE", "AGENT", "TOOL", "ROUTE", "EXPIRES", "USES"]);
    for GrantView { grant: g, state } in grants {
        table.row(vec![
            g.id.clone(),
            state.clone(),
            g.agent.clone(),
            g.tool.clone(),
            g.route.clone().unwrap_or_else(|| "*".to_owned()),
            expiry(ended(state), g.expires_at_ms, now),
            uses(g),
        ]);
    }
    or_none(&table, "no grants")
}

pub(crate) fn approval_table(approvals: &[Approval], now: Millis) -> String {
    let mut table = Table::new(&["ID", "STATE", "KIND", "AGENT", "TOOL", "ROUTE", "EXPIRES"]);
    for a in approvals {
        table.row(vec![
            a.id.clone(),
            a.state_at(now).as_str().to_owned(),
            kind(a).to_owned(),
            a.agent.clone(),
            a.tool.clone(),
            a.route.clone(),
            relative(a.expires_at_ms, now),
        ]);
    }
    or_none(&table, "no approvals")
}

/// `2/5` (used / allowed), or `2/∞` without a limit.
pub(crate) fn uses(grant: &Grant) -> String {
    match grant.max_uses {
        Some(max) => format!("{}/{max}", grant.uses),
        None => format!("{}/∞", grant.uses),
    }
}

pub(crate) fn task_fields(t: &Task, now: Millis) -> String {
    task_field_list(t, now).render()
}

fn task_field_list(t: &Task, now: Millis) -> Fields {
    let mut f = Fields::default();
    f.add("id", t.id.as_str());
    f.add("state", t.state_at(now).as_str());
    f.add("agent", t.agent.as_str());
    f.add_opt("on behalf of", t.on_behalf_of.as_deref());
    f.add("purpose", t.purpose.as_str());
    if !t.labels.is_empty() {
        let labels: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.add("labels", labels.join(", "));
    }
    f.add("created", when(t.created_at_ms, now));
    f.add("created by", t.created_by.as_str());
    // An ended task no longer expires: only its end is shown.
    match &t.ended {
        Some(e) => f.add("ended", ending(e, now)),
        None => f.add("expires", when(t.expires_at_ms, now)),
    }
    f
}

/// The task's fields and activity, then its grants, approvals and recent calls.
fn task_detail(answer: &Value, now: Millis) -> Result<String, Error> {
    let mut fields = task_field_list(&field(answer, "task")?, now);
    let mut recent = Table::new(&["WHEN", "TOOL", "ROUTE", "DECISION"]);
    if answer.get("activity").is_some_and(|a| !a.is_null()) {
        let activity: Activity = field(answer, "activity")?;
        let c = &activity.counters;
        let mut line = format!("{} calls, {} denied", c.total, c.denied);
        for (tool, n) in &c.per_tool {
            let _ = write!(line, "; {tool} {n}");
        }
        fields.add("activity", line);
        for call in activity.recent.iter().rev() {
            recent.row(vec![
                relative(call.at_ms, now),
                call.tool.clone(),
                call.route.clone(),
                call.decision.clone(),
            ]);
        }
    }
    let mut out = fields.render();
    out.push_str("\ngrants:\n");
    out.push_str(&grant_table(&records(answer, "grants", now)?, now));
    out.push_str("\napprovals:\n");
    out.push_str(&approval_table(
        &field::<Vec<Approval>>(answer, "approvals")?,
        now,
    ));
    if !recent.is_empty() {
        out.push_str("\nrecent calls (newest first):\n");
        out.push_str(&recent.render());
    }
    Ok(out)
}

pub(crate) fn grant_fields(view: &GrantView, now: Millis) -> String {
    let g = &view.grant;
    let mut f = Fields::default();
    f.add("id", g.id.as_str());
    f.add("state", view.state.as_str());
    f.add("task", g.task_id.as_str());
    f.add("agent", g.agent.as_str());
    f.add("tool", g.tool.as_str());
    f.add("route", g.route.as_deref().unwrap_or("* (any)"));
    for c in &g.constraints {
        f.add("constraint", serde_json::to_string(c).unwrap_or_default());
    }
    f.add_opt("not before", g.not_before_ms.map(|nb| when(nb, now)));
    if !ended(&view.state) {
        f.add("expires", when(g.expires_at_ms, now));
    }
    f.add("uses", uses(g));
    f.add("reason", g.reason.as_str());
    f.add("granted by", g.granted_by.as_str());
    f.add("created", when(g.created_at_ms, now));
    f.add(
        "source",
        match &g.source {
            GrantSource::Operator => "operator".to_owned(),
            GrantSource::Approval { approval_id } => format!("approval {approval_id}"),
            GrantSource::Policy { approval_id, .. } => format!("policy (request {approval_id})"),
        },
    );
    f.add_opt("for call", g.argument_digest.as_deref());
    f.add_opt("revoked", g.revoked.as_ref().map(|e| ending(e, now)));
    f.render()
}

pub(crate) fn approval_fields(a: &Approval, now: Millis) -> String {
    let mut f = Fields::default();
    f.add("id", a.id.as_str());
    f.add("state", a.state_at(now).as_str());
    f.add("kind", kind(a));
    f.add("task", a.task_id.as_str());
    f.add("agent", a.agent.as_str());
    f.add_opt("on behalf of", a.on_behalf_of.as_deref());
    f.add("route", a.route.as_str());
    f.add("tool", a.tool.as_str());
    f.add("arguments", a.arguments.to_string());
    f.add("why", a.why.as_str());
    if let Some(r) = &a.requested {
        let max = r.max_uses.map_or_else(|| "∞".to_owned(), |m| m.to_string());
        f.add(
            "requested",
            format!(
                "{} on {}, for {}, {max} uses",
                r.tool,
                r.route.as_deref().unwrap_or("any route"),
                super::table::span(r.ttl_ms / 1000)
            ),
        );
        let constraints = if r.constraints.is_empty() {
            "none (any arguments)".to_owned()
        } else {
            serde_json::to_string(&r.constraints).unwrap_or_default()
        };
        f.add("constraints", constraints);
    }
    f.add("created", when(a.created_at_ms, now));
    f.add("expires", when(a.expires_at_ms, now));
    f.add_opt("decided", a.decided.as_ref().map(|e| ending(e, now)));
    f.add_opt("grant", a.grant_id.as_deref());
    f.render()
}

fn kind(a: &Approval) -> &'static str {
    match a.kind {
        crate::store::ApprovalKind::Call => "call",
        crate::store::ApprovalKind::Request => "request",
    }
}

fn ending(e: &Ending, now: Millis) -> String {
    let mut text = format!("{} by {}", relative(e.at_ms, now), e.by);
    if !e.why.is_empty() {
        text.push_str(": ");
        text.push_str(&e.why);
    }
    text
}

fn revoked(ids: &[String]) -> String {
    match ids.len() {
        0 => "revoked no grants (none were live)\n".to_owned(),
        n => {
            let mut out = format!("revoked {n} grant{}:\n", if n == 1 { "" } else { "s" });
            for id in ids {
                out.push_str(&super::table::clean(id));
                out.push('\n');
            }
            out
        }
    }
}

/// Grants in these states can never be used again: they no longer expire.
fn ended(state: &str) -> bool {
    matches!(state, "revoked" | "used_up" | "task_ended")
}

/// The EXPIRES cell: `in 14m`, `3m ago`, or `-` for what has ended.
fn expiry(ended: bool, at: Millis, now: Millis) -> String {
    if ended {
        "-".to_owned()
    } else {
        relative(at, now)
    }
}

fn or_none(table: &Table, none: &str) -> String {
    if table.is_empty() {
        format!("{none}\n")
    } else {
        table.render()
    }
}
