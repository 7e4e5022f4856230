//! The grant trace: for one grant, how it came to be — its own events
//! (issued with its rule: source, reason, module evidence, who granted it),
//! the approval it came from (the parked call, the approval's events, who
//! decided), the admin actions on either — and every call that used it.

use std::path::PathBuf;

use serde_json::{Value, json};

use super::{Error, Params, record_json, scan};
use crate::audit::line::Body;
use crate::audit::read::Record;

/// A parsed trace.
#[derive(Debug, Clone)]
pub struct Trace {
    pub grant: String,
}

impl Trace {
    pub const PARAMS: [&'static str; 0] = [];

    pub fn parse(grant: &str, _params: &Params) -> Result<Self, Error> {
        if grant.is_empty() || grant.len() > 128 || grant.chars().any(char::is_control) {
            return Err(Error::Param(
                "grant: must be a grant id (1 to 128 characters, no control characters)".into(),
            ));
        }
        Ok(Self {
            grant: grant.to_owned(),
        })
    }

    pub fn run(&self, dirs: &[PathBuf]) -> Result<Value, Error> {
        let id = self.grant.as_str();
        let mut events: Vec<Record> = Vec::new();
        let mut uses: Vec<Record> = Vec::new();
        let mut admin: Vec<Record> = Vec::new();
        let mut approval: Option<String> = None;
        scan(dirs, |r| {
            match &r.body {
                Body::Grant(e) if e.target.as_deref() == Some(id) => {
                    if let Some(a) = e.grant.as_ref().and_then(|g| g.approval.as_deref()) {
                        approval.get_or_insert_with(|| a.to_owned());
                    }
                    events.push(r.clone());
                }
                // A grant request's own line names the grant it made; a use
                // is a call's.
                Body::Decision(d) if d.phase == "call" && d.grants.iter().any(|g| g == id) => {
                    uses.push(r.clone());
                }
                Body::Admin(a) if a.target.as_deref() == Some(id) => admin.push(r.clone()),
                Body::Decision(_)
                | Body::Grant(_)
                | Body::Task(_)
                | Body::Approval(_)
                | Body::Admin(_)
                | Body::Log(_) => {}
            }
            Ok(())
        })?;
        if events.is_empty() && uses.is_empty() {
            return Err(Error::UnknownGrant(super::short(id)));
        }
        let mut approval_events: Vec<Record> = Vec::new();
        let mut parked: Vec<Record> = Vec::new();
        if let Some(a) = approval.as_deref() {
            scan(dirs, |r| {
                match &r.body {
                    Body::Approval(e) if e.target.as_deref() == Some(a) => {
                        approval_events.push(r.clone());
                    }
                    Body::Decision(d)
                        if d.approval.as_deref() == Some(a) && d.decision != "allow" =>
                    {
                        parked.push(r.clone());
                    }
                    Body::Admin(x) if x.target.as_deref() == Some(a) => admin.push(r.clone()),
                    Body::Decision(_)
                    | Body::Grant(_)
                    | Body::Task(_)
                    | Body::Approval(_)
                    | Body::Admin(_)
                    | Body::Log(_) => {}
                }
                Ok(())
            })?;
        }
        admin.sort_by_key(|r| r.seq);
        let created = events.iter().find_map(|r| match &r.body {
            Body::Grant(e) if e.event == "grant_issued" => e.grant.as_ref().map(|g| {
                json!({"at": r.ts, "record": r.id, "tool": g.tool, "route": g.route,
                       "source": g.source, "reason": g.reason, "granted_by": g.granted_by,
                       "evidence": g.evidence, "approval": g.approval,
                       "constraints": g.constraints, "max_uses": g.max_uses,
                       "task": e.task.as_ref().map(|t| t.id.to_string())})
            }),
            _ => None,
        });
        // Who made it: whoever answered its approval, and the operators
        // who approved or issued it through the admin API (not those who
        // later revoked it, nor an attempt that failed), each once.
        let mut approvers: Vec<String> = Vec::new();
        let answered = approval_events.iter().filter_map(|r| match &r.body {
            Body::Approval(e) => e.approval.as_ref()?.decided_by.as_deref(),
            _ => None,
        });
        let acted = admin.iter().filter_map(|r| match &r.body {
            Body::Admin(a)
                if a.outcome == "ok"
                    && matches!(a.action.as_ref(), "approval.approve" | "grant.issue") =>
            {
                Some(a.actor.as_ref())
            }
            _ => None,
        });
        for who in answered.chain(acted) {
            if !approvers.iter().any(|a| a == who) {
                approvers.push(who.to_owned());
            }
        }
        let all = |v: &[Record]| v.iter().map(record_json).collect::<Vec<_>>();
        Ok(json!({
            "grant": id,
            "created": created,
            "approval": approval,
            "approvers": approvers,
            "parked_calls": all(&parked),
            "approval_events": all(&approval_events),
            "grant_events": all(&events),
            "admin_actions": all(&admin),
            "uses": all(&uses),
        }))
    }
}
