//! The access-drift report: grants not used in the window, grants used far
//! below their limit, long-lived grants, tasks open past their purpose's
//! usual span (the p90 duration of completed tasks with that purpose), and
//! tools a subject is allowed but did not call in the window. "Allowed" is
//! what the log shows: a tool the subject was allowed to call at least once
//! up to the window's end, or the tool of a grant issued on a task the
//! subject called under.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Error, Params, Window, scan};
use crate::audit::line::Body;

/// A parsed drift report.
#[derive(Debug, Clone)]
pub struct Drift {
    pub window: Window,
    long_ms: u64,
    underuse_pct: u64,
}

#[derive(Debug, Clone, Default)]
struct Grant {
    issued_ms: i64,
    tool: String,
    task: Option<String>,
    max_uses: Option<u64>,
    expires_at_ms: u64,
    source: String,
    uses: u64,
}

#[derive(Debug, Clone, Default)]
struct Task {
    purpose: String,
    created_ms: i64,
    ended_ms: Option<i64>,
    completed: bool,
}

impl Drift {
    pub const PARAMS: [&'static str; 4] = ["since", "until", "long", "underuse"];

    pub fn parse(params: &Params, now_ms: i64) -> Result<Self, Error> {
        Ok(Self {
            window: Window::parse(params, now_ms)?,
            long_ms: params.duration_ms("long", 24 * 3_600_000)?,
            underuse_pct: params.number("underuse", 25, 100)?,
        })
    }

    pub fn run(&self, dirs: &[PathBuf]) -> Result<Value, Error> {
        let w = self.window;
        let mut grants: BTreeMap<String, Grant> = BTreeMap::new();
        let mut tasks: BTreeMap<String, Task> = BTreeMap::new();
        let mut task_subjects: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut allowed: BTreeMap<String, BTreeMap<String, &'static str>> = BTreeMap::new();
        let mut called: BTreeSet<(String, String)> = BTreeSet::new();
        scan(dirs, |r| {
            if r.at_ms > w.until_ms {
                return Ok(());
            }
            match &r.body {
                Body::Decision(d) => {
                    let subject = d.identity.subject.to_string();
                    if let Some(t) = &d.task {
                        task_subjects
                            .entry(t.id.to_string())
                            .or_default()
                            .insert(subject.clone());
                    }
                    if d.phase != "call" {
                        return Ok(());
                    }
                    if d.decision == "allow" {
                        allowed
                            .entry(subject.clone())
                            .or_default()
                            .insert(d.tool.to_string(), "called");
                        if w.contains(r.at_ms) {
                            for g in &d.grants {
                                if let Some(g) = grants.get_mut(g.as_ref()) {
                                    g.uses += 1;
                                }
                            }
                        }
                    }
                    if w.contains(r.at_ms) {
                        called.insert((subject, d.tool.to_string()));
                    }
                }
                Body::Grant(e) if e.event == "grant_issued" => {
                    if let (Some(id), Some(g)) = (&e.target, &e.grant) {
                        grants.insert(
                            id.to_string(),
                            Grant {
                                issued_ms: r.at_ms,
                                tool: g.tool.to_string(),
                                task: e.task.as_ref().map(|t| t.id.to_string()),
                                max_uses: g.max_uses,
                                expires_at_ms: g.expires_at_ms,
                                source: g.source.to_string(),
                                uses: 0,
                            },
                        );
                    }
                }
                Body::Task(e) => {
                    let Some(id) = &e.target else { return Ok(()) };
                    match e.event.as_ref() {
                        "task_created" => {
                            let purpose = e
                                .task
                                .as_ref()
                                .and_then(|t| t.purpose.as_deref())
                                .unwrap_or("-");
                            tasks.insert(
                                id.to_string(),
                                Task {
                                    purpose: purpose.to_owned(),
                                    created_ms: r.at_ms,
                                    ..Task::default()
                                },
                            );
                        }
                        "task_completed" | "task_cancelled" | "task_expired" => {
                            if let Some(t) = tasks.get_mut(id.as_ref()) {
                                t.ended_ms.get_or_insert(r.at_ms);
                                t.completed = e.event == "task_completed";
                            }
                        }
                        _ => {}
                    }
                }
                Body::Grant(_) | Body::Approval(_) | Body::Admin(_) | Body::Log(_) => {}
            }
            Ok(())
        })?;
        for g in grants.values() {
            let Some(task) = &g.task else { continue };
            for subject in task_subjects.get(task).into_iter().flatten() {
                allowed
                    .entry(subject.clone())
                    .or_default()
                    .entry(g.tool.clone())
                    .or_insert("granted");
            }
        }
        Ok(self.json(&grants, &tasks, &allowed, &called))
    }

    fn json(
        &self,
        grants: &BTreeMap<String, Grant>,
        tasks: &BTreeMap<String, Task>,
        allowed: &BTreeMap<String, BTreeMap<String, &'static str>>,
        called: &BTreeSet<(String, String)>,
    ) -> Value {
        let t = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms).map_or_else(|_| String::new(), |t| t.to_string())
        };
        let grant = |id: &str, g: &Grant| {
            json!({"grant": id, "tool": g.tool, "task": g.task, "source": g.source,
                   "issued": t(g.issued_ms), "expires": t(g.expires_at_ms as i64),
                   "max_uses": g.max_uses, "uses": g.uses,
                   "lifetime_ms": (g.expires_at_ms as i64).saturating_sub(g.issued_ms)})
        };
        let unused: Vec<_> = grants
            .iter()
            .filter(|(_, g)| g.uses == 0)
            .map(|(id, g)| grant(id, g))
            .collect();
        let underused: Vec<_> = grants
            .iter()
            .filter(|(_, g)| {
                g.uses > 0
                    && g.max_uses
                        .is_some_and(|m| g.uses * 100 <= m * self.underuse_pct)
            })
            .map(|(id, g)| grant(id, g))
            .collect();
        let long_lived: Vec<_> = grants
            .iter()
            .filter(|(_, g)| {
                (g.expires_at_ms as i64).saturating_sub(g.issued_ms) > self.long_ms as i64
            })
            .map(|(id, g)| grant(id, g))
            .collect();
        let mut spans: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for task in tasks.values() {
            if let (true, Some(end)) = (task.completed, task.ended_ms) {
                spans
                    .entry(&task.purpose)
                    .or_default()
                    .push(end - task.created_ms);
            }
        }
        let overdue: Vec<_> = tasks
            .iter()
            .filter(|(_, task)| task.ended_ms.is_none())
            .filter_map(|(id, task)| {
                let p90 = p90(spans.get(task.purpose.as_str())?)?;
                let open = self.window.until_ms - task.created_ms;
                (open > p90).then(|| {
                    json!({"task": id, "purpose": task.purpose,
                    "created": t(task.created_ms), "open_ms": open, "p90_ms": p90,
                    "completed": spans.get(task.purpose.as_str()).map_or(0, Vec::len)})
                })
            })
            .collect();
        let unused_tools: Vec<_> = allowed
            .iter()
            .flat_map(|(subject, tools)| {
                tools.iter().filter(|(tool, _)| !called.contains(&(subject.clone(), (*tool).clone()))).map(
                    move |(tool, why)| json!({"subject": subject, "tool": tool, "allowed_by": why}),
                )
            })
            .collect();
        json!({
            "window": self.window.json(),
            "unused_grants": unused,
            "underused_grants": underused,
            "long_lived_grants": long_lived,
            "overdue_tasks": overdue,
            "unused_tools": unused_tools,
        })
    }
}

/// The nearest-rank 90th percentile.
pub(super) fn p90(values: &[i64]) -> Option<i64> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = (v.len() * 9).div_ceil(10);
    v.get(rank.checked_sub(1)?).copied()
}
