//! Task-context stage, grant changes: using a grant up and revoking grants —
//! one at a time under the grant's own mutex, or many in one journal
//! transaction — and retiring what outlives an ended task.

use std::collections::HashMap;
use std::sync::MutexGuard;

use super::{GrantLock, MemoryStore, hold, not_found};
use crate::store::disk::Record;
use crate::store::model::{Approval, ApprovalState, Ending, Grant, Millis, Task, TaskState};
use crate::store::{Error, RevokeScope, Store as _};

impl MemoryStore {
    /// The mutex of a grant, cloned out of its map (never locked in it).
    fn grant_lock(&self, id: &str) -> Option<GrantLock> {
        self.grant_locks.get(id).map(|lock| GrantLock::clone(&lock))
    }

    /// The mutexes of the grants among `ids` (sorted, deduplicated in
    /// place): every change of many grants locks them in id order, so two
    /// never wait on each other.
    pub(super) fn grant_locks_of(&self, ids: &mut Vec<String>) -> Vec<GrantLock> {
        ids.sort_unstable();
        ids.dedup();
        ids.iter().filter_map(|id| self.grant_lock(id)).collect()
    }

    pub(super) fn consume_one(&self, grant_id: &str, now: Millis) -> Result<Grant, Error> {
        let lock = self
            .grant_lock(grant_id)
            .ok_or_else(|| not_found("grant", grant_id))?;
        let _grant = hold(&lock);
        let mut grant = self
            .grant(grant_id)
            .ok_or_else(|| not_found("grant", grant_id))?;
        self.task_active(&grant.task_id, now)?;
        if !grant.is_live(now) {
            return Err(Error::GrantUnusable {
                id: grant_id.to_owned(),
            });
        }
        grant.uses += 1;
        if grant.max_uses.is_some() {
            // Counted uses are exact across restarts: journaled under the
            // grant's mutex before the use is granted.
            self.write(&[Record::Grant(grant.clone())], &[])?;
            self.apply_grant(grant.clone());
        } else {
            self.apply_grant(grant.clone());
            self.dirty_grants.insert(grant_id.to_owned(), ());
        }
        Ok(grant)
    }

    pub(super) fn revoke_one(&self, id: &str, ending: Ending) -> Result<Grant, Error> {
        let _admin = self.admin();
        let lock = self.grant_lock(id).ok_or_else(|| not_found("grant", id))?;
        let _grant = hold(&lock);
        let mut grant = self.grant(id).ok_or_else(|| not_found("grant", id))?;
        if grant.revoked.is_some() {
            return Ok(grant);
        }
        grant.revoked = Some(ending);
        self.write(&[Record::Grant(grant.clone())], &[])?;
        self.apply_grant(grant.clone());
        Ok(grant)
    }

    pub(super) fn revoke_scope(
        &self,
        scope: &RevokeScope,
        ending: Ending,
    ) -> Result<Vec<String>, Error> {
        let _admin = self.admin();
        let ids: Vec<String> = match scope {
            RevokeScope::Task(task_id) => {
                if !self.tasks.contains_key(task_id) {
                    return Err(not_found("task", task_id));
                }
                self.grant_ids(task_id)
            }
            RevokeScope::Agent(agent) => self
                .grants
                .iter()
                .filter(|g| &g.agent == agent)
                .map(|g| g.id.clone())
                .collect(),
        };
        let revoked = self.revoke_batch(ids, |_| Some(ending.clone()), Vec::new())?;
        Ok(revoked.into_iter().map(|g| g.id).collect())
    }

    /// Revokes every grant among `ids` still live on its own terms when it
    /// ends (`ending_of` says how; `None` leaves it), journaled in one
    /// transaction with `records`; returns the revoked grants.
    fn revoke_batch(
        &self,
        mut ids: Vec<String>,
        ending_of: impl Fn(&Grant) -> Option<Ending>,
        mut records: Vec<Record>,
    ) -> Result<Vec<Grant>, Error> {
        let revocation = |grant: Grant| {
            let ending = ending_of(&grant)?;
            let live = grant.revoked.is_none() && ending.at_ms < grant.expires_at_ms;
            live.then_some(Grant {
                revoked: Some(ending),
                ..grant
            })
        };
        // Lock only the grants worth it, then look again under their locks.
        ids.retain(|id| self.grant(id).and_then(&revocation).is_some());
        let locks = self.grant_locks_of(&mut ids);
        let _grants: Vec<MutexGuard<'_, ()>> = locks.iter().map(|lock| hold(lock)).collect();
        let revoked: Vec<Grant> = ids
            .iter()
            .filter_map(|id| self.grant(id).and_then(&revocation))
            .collect();
        records.extend(revoked.iter().cloned().map(Record::Grant));
        self.commit(records)?;
        Ok(revoked)
    }

    /// Ends a task. Its record is the acknowledgment: its grants stop
    /// matching with it (`consume` checks the task), so revoking them and
    /// expiring its pending approvals is bookkeeping that may fail (logged;
    /// the next sweep retries) without undoing the end.
    pub(super) fn end_task_now(
        &self,
        id: &str,
        state: TaskState,
        ending: Ending,
    ) -> Result<Task, Error> {
        let _admin = self.admin();
        let mut task = self.task_active(id, ending.at_ms)?;
        task.state = state;
        task.ended = Some(ending.clone());
        self.write(&[Record::Task(task.clone())], &[])?;
        self.tasks.insert(id.to_owned(), task.clone());
        let at_ms = ending.at_ms;
        let why = Ending {
            why: format!("task {}", state.as_str()),
            ..ending
        };
        let ended = HashMap::from([(id.to_owned(), why)]);
        if let Err(error) = self.retire(&ended, Vec::new(), at_ms) {
            tracing::error!(
                task = id,
                %error,
                "task ended, but revoking its grants and expiring its approvals failed; the next sweep retries"
            );
        }
        Ok(task)
    }

    /// Revokes the live grants and expires the pending approvals of the
    /// `ended` tasks (task id → how it ended), in one journal transaction
    /// with `records`. Returns how many grants and approvals it ended.
    pub(super) fn retire(
        &self,
        ended: &HashMap<String, Ending>,
        mut records: Vec<Record>,
        now: Millis,
    ) -> Result<(usize, usize), Error> {
        let approvals = self.ended_approvals(ended, now);
        let expired = approvals.len();
        records.extend(approvals.into_iter().map(Record::Approval));
        let ids: Vec<String> = ended.keys().flat_map(|t| self.grant_ids(t)).collect();
        let revoked = self.revoke_batch(ids, |g| ended.get(&g.task_id).cloned(), records)?;
        Ok((revoked.len(), expired))
    }

    /// The pending approvals of the `ended` tasks, expired: by the task's
    /// end, or by their own deadline if that came first.
    fn ended_approvals(&self, ended: &HashMap<String, Ending>, now: Millis) -> Vec<Approval> {
        self.approvals
            .iter()
            .filter(|a| a.state == ApprovalState::Pending)
            .filter_map(|a| {
                let end = ended.get(&a.task_id)?;
                Some(if now >= a.expires_at_ms {
                    expire(&a, a.expires_at_ms, "nobody answered in time")
                } else {
                    expire(&a, end.at_ms, &end.why)
                })
            })
            .collect()
    }
}

/// `approval` expired by toolgate at `at_ms` for `why`.
pub(super) fn expire(approval: &Approval, at_ms: Millis, why: &str) -> Approval {
    Approval {
        state: ApprovalState::Expired,
        decided: Some(Ending {
            by: "toolgate".to_owned(),
            at_ms,
            why: why.to_owned(),
        }),
        ..approval.clone()
    }
}
