//! Task-context stage: the in-memory store the hot path reads — dashmaps of
//! owned records, with every acknowledged change journaled first.
//!
//! Concurrency: administrative changes (create, end, issue, revoke, park,
//! approve, deny, sweep) are serialized by one mutex — they are rare and
//! this keeps their invariants simple. The hot path (`task`, `live_grants`,
//! `consume`, `record_call`) never takes it; `consume` and `revoke_grant`
//! change a grant only under its map entry's lock, so use counting is exact.
//! No code path holds an entry of one map while locking another map's
//! entry, so there is no lock-order cycle.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;

use super::disk::{Durable, Key, Record};
use super::model::{
    Activity, Approval, ApprovalState, Ending, Grant, Millis, RecentCall, Task, TaskState,
};
use super::{ApprovalFilter, Error, GrantFilter, RevokeScope, Store, Swept, TaskFilter};

/// Bounds on what the store holds.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    pub max_tasks: usize,
    pub max_grants_per_task: usize,
    pub max_pending_approvals: usize,
    /// How many recent calls each task remembers.
    pub recent_calls: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_tasks: 100_000,
            max_grants_per_task: 1_000,
            max_pending_approvals: 10_000,
            recent_calls: 20,
        }
    }
}

/// Most distinct tools a task's `per_tool` counter keeps.
const MAX_TOOLS_COUNTED: usize = 1_024;

#[derive(Debug)]
pub struct MemoryStore {
    tasks: DashMap<String, Task>,
    grants: DashMap<String, Grant>,
    /// Task id → ids of its grants.
    by_task: DashMap<String, Vec<String>>,
    approvals: DashMap<String, Approval>,
    activity: DashMap<String, Activity>,
    /// Activity and unlimited-grant use counts written by the next sweep.
    dirty_activity: DashMap<String, ()>,
    dirty_grants: DashMap<String, ()>,
    journal: Option<Arc<dyn Durable>>,
    limits: StoreLimits,
    admin: Mutex<()>,
}

impl MemoryStore {
    /// A store without a journal: everything is lost on restart.
    pub fn in_memory(limits: StoreLimits) -> Self {
        Self {
            tasks: DashMap::new(),
            grants: DashMap::new(),
            by_task: DashMap::new(),
            approvals: DashMap::new(),
            activity: DashMap::new(),
            dirty_activity: DashMap::new(),
            dirty_grants: DashMap::new(),
            journal: None,
            limits,
            admin: Mutex::new(()),
        }
    }

    /// A store backed by `journal`, loaded from it.
    pub fn open(journal: Arc<dyn Durable>, limits: StoreLimits) -> Result<Self, Error> {
        let image = journal.load()?;
        let mut store = Self::in_memory(limits);
        for task in image.tasks {
            store.tasks.insert(task.id.clone(), task);
        }
        for grant in image.grants {
            store
                .by_task
                .entry(grant.task_id.clone())
                .or_default()
                .push(grant.id.clone());
            store.grants.insert(grant.id.clone(), grant);
        }
        for approval in image.approvals {
            store.approvals.insert(approval.id.clone(), approval);
        }
        for (task_id, activity) in image.activity {
            store.activity.insert(task_id, activity);
        }
        store.journal = Some(journal);
        Ok(store)
    }

    pub fn is_durable(&self) -> bool {
        self.journal.is_some()
    }

    fn admin(&self) -> MutexGuard<'_, ()> {
        // A panic while holding it leaves no half-applied change (journal
        // first, then one map update), so a poisoned lock is still usable.
        self.admin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self, put: &[Record], delete: &[Key]) -> Result<(), Error> {
        match &self.journal {
            Some(journal) => journal.write(put, delete).map_err(Error::from),
            None => Ok(()),
        }
    }

    fn task_active(&self, id: &str, now: Millis) -> Result<Task, Error> {
        let task = self.task(id).ok_or_else(|| not_found("task", id))?;
        match task.state_at(now) {
            TaskState::Active => Ok(task),
            state => Err(Error::TaskEnded {
                id: id.to_owned(),
                state: state.as_str(),
            }),
        }
    }

    /// Revokes every live grant among `ids`; returns the revoked ids.
    fn revoke_ids(&self, ids: &[String], ending: &Ending) -> Result<Vec<String>, Error> {
        let mut revoked = Vec::new();
        for id in ids {
            if let Some(mut entry) = self.grants.get_mut(id) {
                if entry.revoked.is_some() || ending.at_ms >= entry.expires_at_ms {
                    continue;
                }
                let mut next = entry.clone();
                next.revoked = Some(ending.clone());
                self.write(&[Record::Grant(next.clone())], &[])?;
                *entry = next;
                revoked.push(id.clone());
            }
        }
        Ok(revoked)
    }

    fn grant_ids(&self, task_id: &str) -> Vec<String> {
        self.by_task
            .get(task_id)
            .map(|ids| ids.clone())
            .unwrap_or_default()
    }
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::NotFound {
        kind,
        id: id.to_owned(),
    }
}

impl Store for MemoryStore {
    fn create_task(&self, task: Task) -> Result<Task, Error> {
        let _admin = self.admin();
        if self.tasks.contains_key(&task.id) {
            return Err(Error::Exists {
                kind: "task",
                id: task.id,
            });
        }
        if self.tasks.len() >= self.limits.max_tasks {
            return Err(Error::Limit(format!(
                "{} tasks are stored (tasks.max_tasks); end some first",
                self.limits.max_tasks
            )));
        }
        self.write(&[Record::Task(task.clone())], &[])?;
        self.tasks.insert(task.id.clone(), task.clone());
        Ok(task)
    }

    fn task(&self, id: &str) -> Option<Task> {
        self.tasks.get(id).map(|t| t.clone())
    }

    fn tasks(&self, filter: &TaskFilter) -> Vec<Task> {
        let now = super::model::now_ms();
        let mut out: Vec<Task> = self
            .tasks
            .iter()
            .filter(|t| filter.agent.as_ref().is_none_or(|a| &t.agent == a))
            .filter(|t| filter.state.is_none_or(|s| t.state_at(now) == s))
            .map(|t| t.clone())
            .collect();
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        out
    }

    fn end_task(&self, id: &str, state: TaskState, ending: Ending) -> Result<Task, Error> {
        let _admin = self.admin();
        let mut task = self.task_active(id, ending.at_ms)?;
        task.state = state;
        task.ended = Some(ending.clone());
        // The task's record is the acknowledgment: its grants stop matching
        // with it (a grant is live only in an active task), and their own
        // revocations below are bookkeeping a crash can interrupt safely.
        self.write(&[Record::Task(task.clone())], &[])?;
        self.tasks.insert(id.to_owned(), task.clone());
        let why = Ending {
            why: format!("task {}", state.as_str()),
            ..ending
        };
        self.revoke_ids(&self.grant_ids(id), &why)?;
        Ok(task)
    }

    fn issue_grant(&self, grant: Grant) -> Result<Grant, Error> {
        let _admin = self.admin();
        self.task_active(&grant.task_id, grant.created_at_ms)?;
        if self.grants.contains_key(&grant.id) {
            return Err(Error::Exists {
                kind: "grant",
                id: grant.id,
            });
        }
        if self.grant_ids(&grant.task_id).len() >= self.limits.max_grants_per_task {
            return Err(Error::Limit(format!(
                "task {} already has {} grants (tasks.max_grants_per_task)",
                grant.task_id, self.limits.max_grants_per_task
            )));
        }
        self.write(&[Record::Grant(grant.clone())], &[])?;
        self.by_task
            .entry(grant.task_id.clone())
            .or_default()
            .push(grant.id.clone());
        self.grants.insert(grant.id.clone(), grant.clone());
        Ok(grant)
    }

    fn grant(&self, id: &str) -> Option<Grant> {
        self.grants.get(id).map(|g| g.clone())
    }

    fn grants(&self, filter: &GrantFilter, now: Millis) -> Vec<Grant> {
        let candidates: Vec<Grant> = match &filter.task_id {
            Some(task_id) => self
                .grant_ids(task_id)
                .iter()
                .filter_map(|id| self.grant(id))
                .collect(),
            None => self.grants.iter().map(|g| g.clone()).collect(),
        };
        let mut out: Vec<Grant> = candidates
            .into_iter()
            .filter(|g| filter.agent.as_ref().is_none_or(|a| &g.agent == a))
            .filter(|g| {
                !filter.live_only
                    || (g.is_live(now) && self.task(&g.task_id).is_some_and(|t| t.is_active(now)))
            })
            .collect();
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        out
    }

    fn revoke_grant(&self, id: &str, ending: Ending) -> Result<Grant, Error> {
        let _admin = self.admin();
        let grant = self.grant(id).ok_or_else(|| not_found("grant", id))?;
        if grant.revoked.is_some() {
            return Ok(grant);
        }
        let mut entry = self
            .grants
            .get_mut(id)
            .ok_or_else(|| not_found("grant", id))?;
        let mut next = entry.clone();
        next.revoked = Some(ending);
        self.write(&[Record::Grant(next.clone())], &[])?;
        *entry = next.clone();
        Ok(next)
    }

    fn revoke_grants(&self, scope: &RevokeScope, ending: Ending) -> Result<Vec<String>, Error> {
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
        self.revoke_ids(&ids, &ending)
    }

    fn live_grants(&self, task_id: &str, route: &str, tool: &str, now: Millis) -> Vec<Grant> {
        let Some(ids) = self.by_task.get(task_id).map(|ids| ids.clone()) else {
            return Vec::new();
        };
        ids.iter()
            .filter_map(|id| {
                let g = self.grants.get(id)?;
                (g.is_live(now) && g.covers(route, tool)).then(|| g.clone())
            })
            .collect()
    }

    fn consume(&self, grant_id: &str, now: Millis) -> Result<Grant, Error> {
        let task_id = self
            .grants
            .get(grant_id)
            .map(|g| g.task_id.clone())
            .ok_or_else(|| not_found("grant", grant_id))?;
        self.task_active(&task_id, now)?;
        let mut entry = self
            .grants
            .get_mut(grant_id)
            .ok_or_else(|| not_found("grant", grant_id))?;
        if !entry.is_live(now) {
            return Err(Error::GrantUnusable {
                id: grant_id.to_owned(),
            });
        }
        if entry.max_uses.is_some() {
            // Counted uses are exact across restarts: journaled under the
            // entry's lock before the use is granted.
            let mut next = entry.clone();
            next.uses += 1;
            self.write(&[Record::Grant(next.clone())], &[])?;
            *entry = next;
        } else {
            entry.uses += 1;
            self.dirty_grants.insert(grant_id.to_owned(), ());
        }
        Ok(entry.clone())
    }

    fn record_call(&self, task_id: &str, call: RecentCall, denied: bool) {
        let mut entry = self.activity.entry(task_id.to_owned()).or_default();
        let counters = &mut entry.counters;
        counters.total += 1;
        if denied {
            counters.denied += 1;
        }
        if let Some(n) = counters.per_tool.get_mut(&call.tool) {
            *n += 1;
        } else if counters.per_tool.len() < MAX_TOOLS_COUNTED {
            counters.per_tool.insert(call.tool.clone(), 1);
        }
        entry.recent.push(call);
        let excess = entry.recent.len().saturating_sub(self.limits.recent_calls);
        entry.recent.drain(..excess);
        drop(entry);
        self.dirty_activity.insert(task_id.to_owned(), ());
    }

    fn activity(&self, task_id: &str) -> Activity {
        self.activity
            .get(task_id)
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    fn park(&self, approval: Approval) -> Result<Approval, Error> {
        let _admin = self.admin();
        self.task_active(&approval.task_id, approval.created_at_ms)?;
        let now = approval.created_at_ms;
        let mut pending = 0;
        for a in &self.approvals {
            if a.state_at(now) != ApprovalState::Pending {
                continue;
            }
            pending += 1;
            if a.kind == approval.kind
                && a.agent == approval.agent
                && a.task_id == approval.task_id
                && a.route == approval.route
                && a.tool == approval.tool
                && a.argument_digest == approval.argument_digest
            {
                return Ok(a.clone());
            }
        }
        if pending >= self.limits.max_pending_approvals {
            return Err(Error::Limit(format!(
                "{pending} approvals are pending (approvals.max_pending)"
            )));
        }
        self.write(&[Record::Approval(approval.clone())], &[])?;
        self.approvals.insert(approval.id.clone(), approval.clone());
        Ok(approval)
    }

    fn approval(&self, id: &str) -> Option<Approval> {
        self.approvals.get(id).map(|a| a.clone())
    }

    fn approvals(&self, filter: &ApprovalFilter, now: Millis) -> Vec<Approval> {
        let mut out: Vec<Approval> = self
            .approvals
            .iter()
            .filter(|a| filter.state.is_none_or(|s| a.state_at(now) == s))
            .filter(|a| filter.task_id.as_ref().is_none_or(|t| &a.task_id == t))
            .filter(|a| filter.agent.as_ref().is_none_or(|x| &a.agent == x))
            .map(|a| a.clone())
            .collect();
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        out
    }

    fn approve(&self, id: &str, grant: Grant, ending: Ending) -> Result<(Approval, Grant), Error> {
        let _admin = self.admin();
        let mut approval = self.approval(id).ok_or_else(|| not_found("approval", id))?;
        let state = approval.state_at(ending.at_ms);
        if state != ApprovalState::Pending {
            return Err(Error::NotPending {
                id: id.to_owned(),
                state: state.as_str(),
            });
        }
        self.task_active(&grant.task_id, ending.at_ms)?;
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
        self.by_task
            .entry(grant.task_id.clone())
            .or_default()
            .push(grant.id.clone());
        self.grants.insert(grant.id.clone(), grant.clone());
        self.approvals.insert(id.to_owned(), approval.clone());
        Ok((approval, grant))
    }

    fn deny(&self, id: &str, ending: Ending) -> Result<Approval, Error> {
        let _admin = self.admin();
        let mut approval = self.approval(id).ok_or_else(|| not_found("approval", id))?;
        let state = approval.state_at(ending.at_ms);
        if state != ApprovalState::Pending {
            return Err(Error::NotPending {
                id: id.to_owned(),
                state: state.as_str(),
            });
        }
        approval.state = ApprovalState::Denied;
        approval.decided = Some(ending);
        self.write(&[Record::Approval(approval.clone())], &[])?;
        self.approvals.insert(id.to_owned(), approval.clone());
        Ok(approval)
    }

    fn sweep(&self, now: Millis, retain_ms: Millis) -> Result<Swept, Error> {
        let _admin = self.admin();
        let mut swept = Swept::default();
        let system = |at_ms, why: &str| Ending {
            by: "toolgate".to_owned(),
            at_ms,
            why: why.to_owned(),
        };
        // Tasks past their TTL expire, and their grants with them.
        let due: Vec<Task> = self
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Active && t.state_at(now) == TaskState::Expired)
            .map(|t| t.clone())
            .collect();
        for mut task in due {
            task.state = TaskState::Expired;
            task.ended = Some(system(task.expires_at_ms, "ttl elapsed"));
            self.write(&[Record::Task(task.clone())], &[])?;
            self.revoke_ids(&self.grant_ids(&task.id), &system(now, "task expired"))?;
            self.tasks.insert(task.id.clone(), task);
            swept.tasks_expired += 1;
        }
        let due: Vec<Approval> = self
            .approvals
            .iter()
            .filter(|a| a.state == ApprovalState::Pending && now >= a.expires_at_ms)
            .map(|a| a.clone())
            .collect();
        for mut approval in due {
            approval.state = ApprovalState::Expired;
            approval.decided = Some(system(approval.expires_at_ms, "nobody answered in time"));
            self.write(&[Record::Approval(approval.clone())], &[])?;
            self.approvals.insert(approval.id.clone(), approval);
            swept.approvals_expired += 1;
        }
        // Purge what ended longer than `retain_ms` ago.
        let cutoff = now.saturating_sub(retain_ms);
        let mut delete: Vec<Key> = Vec::new();
        let old_grants: Vec<(String, String)> = self
            .grants
            .iter()
            .filter(|g| {
                let ended = g.revoked.as_ref().map_or(g.expires_at_ms, |r| r.at_ms);
                ended.min(g.expires_at_ms) < cutoff
            })
            .map(|g| (g.id.clone(), g.task_id.clone()))
            .collect();
        let old_tasks: Vec<String> = self
            .tasks
            .iter()
            .filter(|t| {
                t.state_at(now) != TaskState::Active
                    && t.ended.as_ref().map_or(t.expires_at_ms, |e| e.at_ms) < cutoff
            })
            .map(|t| t.id.clone())
            .collect();
        let old_approvals: Vec<String> = self
            .approvals
            .iter()
            .filter(|a| {
                a.state_at(now) != ApprovalState::Pending
                    && a.decided.as_ref().map_or(a.expires_at_ms, |d| d.at_ms) < cutoff
            })
            .map(|a| a.id.clone())
            .collect();
        delete.extend(old_grants.iter().map(|(id, _)| Key::Grant(id.clone())));
        delete.extend(old_tasks.iter().map(|id| Key::Task(id.clone())));
        delete.extend(old_tasks.iter().map(|id| Key::Activity(id.clone())));
        delete.extend(old_approvals.iter().map(|id| Key::Approval(id.clone())));
        // Activity and unlimited use counts since the last sweep.
        let gone: HashSet<&str> = old_tasks.iter().map(String::as_str).collect();
        let mut put: Vec<Record> = Vec::new();
        for key in self
            .dirty_activity
            .iter()
            .map(|k| k.key().clone())
            .collect::<Vec<_>>()
        {
            self.dirty_activity.remove(&key);
            if gone.contains(key.as_str()) {
                continue;
            }
            if let Some(activity) = self.activity.get(&key).map(|a| a.clone()) {
                put.push(Record::Activity {
                    task_id: key,
                    activity,
                });
            }
        }
        let old_grant_ids: HashSet<&str> = old_grants.iter().map(|(id, _)| id.as_str()).collect();
        for key in self
            .dirty_grants
            .iter()
            .map(|k| k.key().clone())
            .collect::<Vec<_>>()
        {
            self.dirty_grants.remove(&key);
            if old_grant_ids.contains(key.as_str()) {
                continue;
            }
            if let Some(grant) = self.grant(&key) {
                put.push(Record::Grant(grant));
            }
        }
        self.write(&put, &delete)?;
        for (id, task_id) in &old_grants {
            self.grants.remove(id);
            if let Some(mut ids) = self.by_task.get_mut(task_id) {
                ids.retain(|g| g != id);
            }
        }
        for id in &old_tasks {
            self.tasks.remove(id);
            self.activity.remove(id);
            self.by_task.remove(id);
        }
        for id in &old_approvals {
            self.approvals.remove(id);
        }
        swept.grants_dropped = old_grants.len();
        swept.purged = old_grants.len() + old_tasks.len() + old_approvals.len();
        Ok(swept)
    }
}

#[cfg(test)]
mod tests;
