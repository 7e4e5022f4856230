//! Decision search: the call decisions matching every filter given,
//! newest first, `limit` at a time; `before` (a `seq`) pages back.

use std::collections::VecDeque;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Error, Params, Window, decision, record_json, scan};
use crate::audit::read::Record;

/// A parsed search.
#[derive(Debug, Clone)]
pub struct Search {
    pub window: Window,
    route: Option<String>,
    tool: Option<String>,
    subject: Option<String>,
    task: Option<String>,
    decision: Option<String>,
    reason: Option<String>,
    id: Option<String>,
    pub limit: usize,
    before: Option<u64>,
}

const DECISIONS: &str = "allow, deny, needs_approval";

impl Search {
    pub const PARAMS: [&'static str; 11] = [
        "since", "until", "route", "tool", "subject", "task", "decision", "reason", "id", "limit",
        "before",
    ];

    pub fn parse(params: &Params, now_ms: i64) -> Result<Self, Error> {
        let text = |k: &str| params.get(k).map(str::to_owned);
        let decision = text("decision");
        if let Some(d) = &decision
            && !DECISIONS.split(", ").any(|x| x == d)
        {
            return Err(Error::Param(format!(
                "decision: {:?} is not one of {DECISIONS}",
                super::short(d)
            )));
        }
        let before = match params.get("before") {
            None => None,
            Some(_) => Some(params.number("before", 0, u64::MAX)?),
        };
        Ok(Self {
            window: Window::parse(params, now_ms)?,
            route: text("route"),
            tool: text("tool"),
            subject: text("subject"),
            task: text("task"),
            decision,
            reason: text("reason"),
            id: text("id"),
            limit: usize::try_from(params.number("limit", 100, 1000)?).unwrap_or(1000),
            before,
        })
    }

    fn matches(&self, record: &Record) -> bool {
        let Some(d) = decision(record) else {
            return false;
        };
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        self.window.contains(record.at_ms)
            && self.before.is_none_or(|b| record.seq < b)
            && eq(&self.id, &record.id)
            && eq(&self.route, &d.route)
            && eq(&self.tool, &d.tool)
            && eq(&self.subject, &d.identity.subject)
            && eq(&self.decision, &d.decision)
            && eq(&self.reason, &d.reason)
            && self
                .task
                .as_deref()
                .is_none_or(|t| d.task.as_ref().is_some_and(|x| x.id == t))
    }

    /// The newest `limit` matches, newest first, kept while scanning.
    pub fn run(&self, dirs: &[PathBuf]) -> Result<Vec<Record>, Error> {
        let mut newest: VecDeque<Record> = VecDeque::with_capacity(self.limit + 1);
        scan(dirs, |r| {
            if self.matches(r) {
                newest.push_back(r.clone());
                if newest.len() > self.limit {
                    newest.pop_front();
                }
            }
            Ok(())
        })?;
        Ok(newest.into_iter().rev().collect())
    }

    /// `{"decisions": [...], "next_before": seq?}`.
    pub fn json(&self, found: &[Record]) -> Value {
        let next = (found.len() == self.limit)
            .then(|| found.last().map(|r| r.seq))
            .flatten();
        json!({
            "window": self.window.json(),
            "decisions": found.iter().map(record_json).collect::<Vec<_>>(),
            "next_before": next,
        })
    }
}
