//! Record stage, read back for people: decision search and the denial,
//! access-drift and grant-trace reports, each computed by one streaming
//! scan of the verified log ([`super::read::Records`]) — no index is kept.
//! The admin API (`/v1/decisions`, `/v1/reports/…`) and `toolgate audit
//! search|denials|drift|trace|tail` share the parameters parsed here, so
//! both refuse a bad one with the same words.

mod denials;
mod drift;
mod search;
mod trace;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::line::{Body, Line};
use super::read::{Record, Records};

pub use denials::Denials;
pub use drift::Drift;
pub use search::Search;
pub use trace::Trace;

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A parameter that is unknown, repeated or malformed; the message
    /// names it and what it accepts.
    #[error("{0}")]
    Param(String),
    /// The log could not be read, or failed verification.
    #[error("the decision log cannot be read: {0}")]
    Log(#[from] super::Error),
    #[error("no record of grant {0} in the decision log")]
    UnknownGrant(String),
}

/// Query parameters by name, each given once, empty values dropped.
#[derive(Debug, Default, Clone)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// `pairs` checked against `allowed`.
    pub fn new<K, V>(
        pairs: impl IntoIterator<Item = (K, V)>,
        allowed: &[&str],
    ) -> Result<Self, Error>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut out = BTreeMap::new();
        for (key, value) in pairs {
            let key = key.as_ref();
            if !allowed.contains(&key) {
                return Err(Error::Param(format!(
                    "unknown parameter {key:?} (accepted: {})",
                    allowed.join(", ")
                )));
            }
            if out.insert(key.to_owned(), value.into()).is_some() {
                return Err(Error::Param(format!("parameter {key:?} is repeated")));
            }
        }
        out.retain(|_, v: &mut String| !v.is_empty());
        Ok(Self(out))
    }

    /// A URL query string, checked against `allowed`.
    pub fn from_query(query: Option<&str>, allowed: &[&str]) -> Result<Self, Error> {
        Self::new(
            form_urlencoded::parse(query.unwrap_or_default().as_bytes()),
            allowed,
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn number(&self, key: &str, default: u64, max: u64) -> Result<u64, Error> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    Error::Param(format!(
                        "{key}: {:?} is not a whole number from 1 to {max}",
                        short(v)
                    ))
                }),
        }
    }

    fn duration_ms(&self, key: &str, default_ms: u64) -> Result<u64, Error> {
        match self.get(key) {
            None => Ok(default_ms),
            Some(v) => crate::config::duration::parse(v)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .map_err(|e| {
                    Error::Param(format!(
                        "{key}: {:?} is not a duration like 30m, 24h or 7d ({e})",
                        short(v)
                    ))
                }),
        }
    }
}

/// At most 64 characters of a value, for an error message: a value is
/// echoed only to name the mistake, never whole.
fn short(v: &str) -> String {
    v.chars().take(64).collect()
}

/// The time a report covers: `since` (default: everything) to `until`
/// (default: now). Each is RFC 3339 or a duration before now (`1h`, `7d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since_ms: i64,
    pub until_ms: i64,
}

impl Window {
    pub const PARAMS: [&'static str; 2] = ["since", "until"];

    pub fn parse(params: &Params, now_ms: i64) -> Result<Self, Error> {
        let at = |key: &str, default: i64| {
            match params.get(key) {
            None => Ok(default),
            Some(v) => point(v, now_ms).ok_or_else(|| {
                Error::Param(format!(
                    "{key}: {:?} is neither an RFC 3339 time (2026-12-04T10:00:00Z) nor a duration before now (15m, 1h, 7d)",
                    short(v)
                ))
            }),
        }
        };
        let window = Self {
            since_ms: at("since", i64::MIN)?,
            until_ms: at("until", now_ms)?,
        };
        if window.since_ms > window.until_ms {
            return Err(Error::Param("since: is after until".into()));
        }
        Ok(window)
    }

    pub fn contains(&self, at_ms: i64) -> bool {
        (self.since_ms..=self.until_ms).contains(&at_ms)
    }

    fn json(&self) -> Value {
        let t = |ms: i64| {
            jiff::Timestamp::from_millisecond(ms)
                .ok()
                .filter(|_| ms != i64::MIN)
                .map(|t| t.to_string())
        };
        json!({"since": t(self.since_ms), "until": t(self.until_ms)})
    }
}

fn point(text: &str, now_ms: i64) -> Option<i64> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t.as_millisecond());
    }
    let back = crate::config::duration::parse(text).ok()?;
    now_ms.checked_sub(i64::try_from(back.as_millis()).ok()?)
}

/// How a refusal came about: an operator must tell a slow approval path
/// from least privilege at work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// No grant (yet): parked for approval, still pending, refused by the
    /// approver, or the grant ran out.
    Approval,
    /// Policy said no: denied by a module, no policy, an ended or unknown task.
    Policy,
    /// The gateway could not decide: a policy fault, the log unavailable.
    Fault,
}

impl Class {
    pub fn of(reason: &str) -> Self {
        match reason {
            "needs_approval" | "approval_pending" | "approval_denied" | "approval_expired"
            | "grant_exhausted" => Self::Approval,
            "policy_error" | "policy_busy" | "policy_budget" | "audit_unavailable" => Self::Fault,
            // Every other refusal reason is policy's: `policy_deny`,
            // `no_policy`, `task_ended`, `task_invalid` — and any reason
            // a newer gateway adds is counted here, never dropped.
            _ => Self::Policy,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approval => "approval",
            Self::Policy => "policy",
            Self::Fault => "fault",
        }
    }
}

/// Reads every verified record of `dirs`, oldest first, as a running
/// gateway may be writing them ([`Records::open_live`]).
pub(crate) fn scan(
    dirs: &[PathBuf],
    mut each: impl FnMut(&Record) -> Result<(), Error>,
) -> Result<(), Error> {
    for record in Records::open_live(dirs)? {
        each(&record?)?;
    }
    Ok(())
}

/// A record as its log line (without `prev` and `hash`), plus where it is.
pub fn record_json(record: &Record) -> Value {
    let line = Line {
        v: super::line::VERSION,
        seq: record.seq,
        id: record.id.as_str().into(),
        ts: record.ts.as_str().into(),
        body: record.body.clone(),
        prev: "".into(),
        hash: String::new(),
    };
    let mut v = serde_json::to_value(&line).unwrap_or(Value::Null);
    if let Some(obj) = v.as_object_mut() {
        obj.remove("prev");
        obj.insert("file".into(), json!(record.file.as_ref()));
        obj.insert("line".into(), json!(record.line));
    }
    v
}

/// The decision of a record, if it is one.
fn decision(record: &Record) -> Option<&super::line::DecisionLine<'static>> {
    match &record.body {
        Body::Decision(d) => Some(d),
        Body::Task(_) | Body::Grant(_) | Body::Approval(_) | Body::Admin(_) | Body::Log(_) => None,
    }
}

/// The call decisions after `seq`, oldest first (for `tail --follow`).
pub fn scan_from(dirs: &[PathBuf], seq: u64, mut each: impl FnMut(&Record)) -> Result<(), Error> {
    scan(dirs, |r| {
        if r.seq > seq && decision(r).is_some() {
            each(r);
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests;
