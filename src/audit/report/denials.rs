//! The denial report: refused calls in a window grouped by any of tool,
//! subject, issuer, route, reason, class, a task label (`label:team`) and
//! hour of day (UTC), with counts and their share of all calls decided in
//! the window; each group split into approval path, policy and fault.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Class, Error, Params, Window, decision, scan};
use crate::audit::line::DecisionLine;

/// One way of grouping.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dim {
    Tool,
    Subject,
    Issuer,
    Route,
    Reason,
    Class,
    Hour,
    Label(String),
}

const DIMS: &str = "tool, subject, issuer, route, reason, class, hour, label:NAME";

impl Dim {
    fn parse(text: &str) -> Result<Self, Error> {
        Ok(match text {
            "tool" => Self::Tool,
            "subject" => Self::Subject,
            "issuer" => Self::Issuer,
            "route" => Self::Route,
            "reason" => Self::Reason,
            "class" => Self::Class,
            "hour" => Self::Hour,
            other => match other.strip_prefix("label:") {
                Some(name) if !name.is_empty() => Self::Label(name.to_owned()),
                _ => {
                    return Err(Error::Param(format!(
                        "by: {:?} is not one of {DIMS} (comma-separated)",
                        super::short(other)
                    )));
                }
            },
        })
    }

    fn name(&self) -> String {
        match self {
            Self::Tool => "tool".into(),
            Self::Subject => "subject".into(),
            Self::Issuer => "issuer".into(),
            Self::Route => "route".into(),
            Self::Reason => "reason".into(),
            Self::Class => "class".into(),
            Self::Hour => "hour".into(),
            Self::Label(l) => format!("label:{l}"),
        }
    }

    fn value(&self, d: &DecisionLine<'_>, at_ms: i64) -> String {
        let none = || "-".to_owned();
        match self {
            Self::Tool => d.tool.to_string(),
            Self::Subject => d.identity.subject.to_string(),
            Self::Issuer => d
                .identity
                .issuer
                .as_deref()
                .map_or_else(none, str::to_owned),
            Self::Route => d.route.to_string(),
            Self::Reason => d.reason.to_string(),
            Self::Class => Class::of(&d.reason).as_str().to_owned(),
            Self::Hour => format!("{:02}", at_ms.rem_euclid(86_400_000) / 3_600_000),
            Self::Label(l) => d
                .task
                .as_ref()
                .and_then(|t| t.labels.get(l))
                .cloned()
                .unwrap_or_else(none),
        }
    }
}

/// A parsed denial report.
#[derive(Debug, Clone)]
pub struct Denials {
    pub window: Window,
    by: Vec<Dim>,
}

/// The counts of one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub denied: u64,
    pub approval: u64,
    pub policy: u64,
    pub fault: u64,
}

impl Counts {
    fn add(&mut self, class: Class) {
        self.denied += 1;
        match class {
            Class::Approval => self.approval += 1,
            Class::Policy => self.policy += 1,
            Class::Fault => self.fault += 1,
        }
    }
}

/// What a scan found.
#[derive(Debug, Clone, Default)]
pub struct Found {
    pub calls: u64,
    pub total: Counts,
    pub groups: BTreeMap<Vec<String>, Counts>,
}

impl Denials {
    pub const PARAMS: [&'static str; 3] = ["since", "until", "by"];

    pub fn parse(params: &Params, now_ms: i64) -> Result<Self, Error> {
        let by = params
            .get("by")
            .unwrap_or("tool,reason")
            .split(',')
            .map(|s| Dim::parse(s.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            window: Window::parse(params, now_ms)?,
            by,
        })
    }

    pub fn run(&self, dirs: &[PathBuf]) -> Result<Found, Error> {
        let mut found = Found::default();
        scan(dirs, |r| {
            let Some(d) = decision(r) else { return Ok(()) };
            if d.phase != "call" || !self.window.contains(r.at_ms) {
                return Ok(());
            }
            found.calls += 1;
            if d.decision == "allow" {
                return Ok(());
            }
            let class = Class::of(&d.reason);
            found.total.add(class);
            let key = self.by.iter().map(|dim| dim.value(d, r.at_ms)).collect();
            found.groups.entry(key).or_default().add(class);
            Ok(())
        })?;
        Ok(found)
    }

    /// Group names, in order.
    pub fn columns(&self) -> Vec<String> {
        self.by.iter().map(Dim::name).collect()
    }

    /// Groups, most denials first.
    pub fn json(&self, found: &Found) -> Value {
        let share = |n: u64| {
            if found.calls == 0 {
                0.0
            } else {
                (n as f64 / found.calls as f64 * 10_000.0).round() / 10_000.0
            }
        };
        let counts = |c: &Counts| {
            json!({"denied": c.denied, "share": share(c.denied),
                   "approval": c.approval, "policy": c.policy, "fault": c.fault})
        };
        let mut groups: Vec<_> = found.groups.iter().collect();
        groups.sort_by(|a, b| b.1.denied.cmp(&a.1.denied).then(a.0.cmp(b.0)));
        let columns = self.columns();
        json!({
            "window": self.window.json(),
            "by": columns,
            "calls": found.calls,
            "total": counts(&found.total),
            "groups": groups.iter().map(|(key, c)| {
                let mut g = counts(c);
                g["key"] = columns.iter().cloned().zip(key.iter().map(|k| Value::from(k.as_str()))).collect::<serde_json::Map<_, _>>().into();
                g
            }).collect::<Vec<_>>(),
        })
    }
}
