//! Task-context stage, approvals: parking a call (or grant request) for a
//! human, within the pending caps, and the human's answer.

use super::{MemoryStore, not_found};
use crate::store::Error;
use crate::store::disk::Record;
use crate::store::model::{Approval, ApprovalState, Ending, Grant};

impl MemoryStore {
    pub(super) fn park_one(&self, approval: Approval) -> Result<Approval, Error> {
        let _admin = self.admin();
        self.task_active(&approval.task_id, approval.created_at_ms)?;
        let now = approval.created_at_ms;
        let (mut pending, mut in_task) = (0, 0);
        for a in &self.approvals {
            if a.state_at(now) != ApprovalState::Pending {
                continue;
            }
            if same_ask(&a, &approval) {
                return Ok(a.clone());
            }
            pending += 1;
            if a.task_id == approval.task_id {
                in_task += 1;
            }
        }
        if pending >= self.limits.max_pending_approvals {
            return Err(Error::Limit(format!(
                "{pending} approvals are pending (approvals.max_pending)"
            )));
        }
        if in_task >= self.limits.max_pending_per_task {
            return Err(Error::Limit(format!(
                "task {} already has {in_task} pending approvals (approvals.max_pending_per_task)",
                approval.task_id
            )));
        }
        self.write(&[Record::Approval(approval.clone())], &[])?;
        self.approvals.insert(approval.id.clone(), approval.clone());
        Ok(approval)
    }

    pub(super) fn approve_one(
        &self,
        id: &str,
        grant: Grant,
        ending: Ending,
    ) -> Result<(Approval, Grant), Error> {
        let _admin = self.admin();
        let mut approval = self.pending(id, &ending)?;
        self.task_active(&grant.task_id, ending.at_ms)?;
        if self.grants.contains_key(grant.id.as_str()) {
            return Err(Error::Exists {
                kind: "grant",
                id: grant.id,
            });
        }
        self.check_grant_room(&grant.task_id)?;
        approval.state = ApprovalState::Approved;
        approval.decided = Some(ending);
        approval.grant_id = Some(grant.id.clone());
        self.write(
            &[
                Record::Grant(grant.clone()),
                Record::Approval(approval.clone()),
            ],
            &[],
        )?;
        self.add_grant(grant.clone());
        self.approvals.insert(id.to_owned(), approval.clone());
        Ok((approval, grant))
    }

    pub(super) fn deny_one(&self, id: &str, ending: Ending) -> Result<Approval, Error> {
        let _admin = self.admin();
        let mut approval = self.pending(id, &ending)?;
        approval.state = ApprovalState::Denied;
        approval.decided = Some(ending);
        self.write(&[Record::Approval(approval.clone())], &[])?;
        self.approvals.insert(id.to_owned(), approval.clone());
        Ok(approval)
    }

    /// The approval `id` if it is still pending when `ending` answers it.
    fn pending(&self, id: &str, ending: &Ending) -> Result<Approval, Error> {
        let approval = self.approval_record(id)?;
        match approval.state_at(ending.at_ms) {
            ApprovalState::Pending => Ok(approval),
            state => Err(Error::NotPending {
                id: id.to_owned(),
                state: state.as_str(),
            }),
        }
    }

    fn approval_record(&self, id: &str) -> Result<Approval, Error> {
        self.approvals
            .get(id)
            .map(|a| a.clone())
            .ok_or_else(|| not_found("approval", id))
    }
}

/// True if `a` asks for what `b` asks: the same caller, task, route, tool
/// and arguments — and, for a grant request, the same grant (a broader
/// request must not be answered with a narrower approval, nor the reverse).
fn same_ask(a: &Approval, b: &Approval) -> bool {
    a.kind == b.kind
        && a.agent == b.agent
        && a.on_behalf_of == b.on_behalf_of
        && a.task_id == b.task_id
        && a.route == b.route
        && a.tool == b.tool
        && a.argument_digest == b.argument_digest
        && a.requested == b.requested
}
