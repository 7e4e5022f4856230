//! Task-context stage, grant changes: using a grant up and revoking grants —
//! one at a time under the grant's own mutex, or many in one journal
//! transaction — and retiring what outlives an ended task.

use std::collections::HashMap;
use std::sync::Arc;

use super::slot::{Change, Slot};
use super::{MemoryStore, not_found};
use crate::store::disk::Record;
use crate::store::model::{Approval, ApprovalState, Ending, Grant, Millis, Task, TaskState};
use crate::store::{Error, RevokeScope};

impl MemoryStore {
    pub(super) fn consume_one(&self, grant_id: &str, now: Millis) -> Result<Grant, Error> {
        let gone = || not_found("grant", grant_id);
        let slot = self.slot(grant_id).ok_or_else(gone)?;
        // Purged while this call waited for the mutex: gone, too.
        let _held = slot.lock().ok_or_else(gone)?;
        self.check_active(&slot.task_id, now)?;
        let mut grant = slot.grant();
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
            self.apply_grant(&slot, grant.clone());
        } else {
            self.apply_grant(&slot, grant.clone());
            self.dirty_grants.insert(Arc::clone(&slot.id), ());
        }
        Ok(grant)
    }

    pub(super) fn revoke_one(&self, id: &str, ending: Ending) -> Result<Grant, Error> {
        let _admin = self.admin();
        let gone = || not_found("grant", id);
        let slot = self.slot(id).ok_or_else(gone)?;
        let _held = slot.lock().ok_or_else(gone)?;
        let mut grant = slot.grant();
        if grant.revoked.is_some() {
            return Ok(grant);
        }
        grant.revoked = Some(ending);
        self.write(&[Record::Grant(grant.clone())], &[])?;
        self.apply_grant(&slot, grant.clone());
        Ok(grant)
    }

    pub(super) fn revoke_scope(
        &self,
        scope: &RevokeScope,
        ending: Ending,
    ) -> Result<Vec<String>, Error> {
        let _admin = self.admin();
        let slots: Vec<Arc<Slot>> = match scope {
            RevokeScope::Task(task_id) => {
                if !self.tasks.contains_key(task_id) {
                    return Err(not_found("task", task_id));
                }
                self.task_slots(task_id)
            }
            RevokeScope::Agent(agent) => self
                .grants
                .iter()
                .filter(|slot| slot.peek(|g| &g.agent == agent))
                .map(|slot| Arc::clone(&slot))
                .collect(),
        };
        let revoked = self.revoke_batch(slots, |_| Some(ending.clone()), Vec::new())?;
        Ok(revoked.into_iter().map(|g| g.id).collect())
    }

    /// Revokes every grant among `slots` still live on its own terms when
    /// it ends (`ending_of` says how; `None` leaves it), journaled in one
    /// transaction with `records`; returns the revoked grants.
    fn revoke_batch(
        &self,
        mut slots: Vec<Arc<Slot>>,
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
        slots.retain(|slot| revocation(slot.grant()).is_some());
        let held = lock_all(&mut slots);
        let revoked: Vec<Grant> = held
            .iter()
            .filter_map(|(slot, _)| revocation(slot.grant()))
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
        let slots: Vec<Arc<Slot>> = ended.keys().flat_map(|t| self.task_slots(t)).collect();
        let revoked = self.revoke_batch(slots, |g| ended.get(&g.task_id).cloned(), records)?;
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

/// Locks the mutexes of `slots` (sorted by id and deduplicated in place)
/// in id order, so two changes of many grants never wait on each other;
/// leaves out a grant purged meanwhile.
pub(super) fn lock_all(slots: &mut Vec<Arc<Slot>>) -> Vec<(&Arc<Slot>, Change<'_>)> {
    slots.sort_unstable_by(|a, b| a.id.cmp(&b.id));
    slots.dedup_by(|a, b| Arc::ptr_eq(a, b));
    slots
        .iter()
        .filter_map(|slot| Some((slot, slot.lock()?)))
        .collect()
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
