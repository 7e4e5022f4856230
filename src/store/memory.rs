//! Task-context stage: the in-memory store the hot path reads — dashmaps of
//! owned records, with every acknowledged change journaled first.
//!
//! Locking, in the order locks are taken:
//!
//! 1. `admin`: administrative changes (create, end, issue, revoke, park,
//!    approve, deny, sweep) are serialized by one mutex — they are rare, and
//!    this keeps their invariants simple. The hot path (`task`,
//!    `live_grants`, `consume`, `begin_call`, `finish_call`) never takes it.
//! 2. One mutex per grant, in the grant's own [`Slot`]: every change to a
//!    grant is made under it — lock, read a copy, check, journal the new
//!    record, apply it — so counting the uses of a `max_uses` grant is
//!    exact. `consume` takes only its grant's mutex; changes of many grants
//!    lock theirs in id order and journal them in one transaction.
//! 3. Map entries (dashmap shard locks), only for a short read or write:
//!    none is held across a journal write (an fsync), while taking a mutex,
//!    or while taking another map's entry — so hot-path readers wait at most
//!    for a copy, and there is no lock-order cycle.
//! 4. A grant's record (a read-write lock in its slot): a leaf, held only
//!    to copy, check or replace the record, with nothing taken under it —
//!    so it may be read under a map entry, and never waits on an fsync.
//!
//! A task's counters change only under its `activity` entry: `begin_call`
//! counts a call and returns the counters from before it in one step.
//!
//! Memory: a grant is one [`Slot`] (its record, without the id and task id
//! it shares with the maps' keys, and its mutex), pointed to by the id map
//! and by its task's [`TaskGrants`]; the task's index finds the grants that
//! cover a call by the tool's name, so a call reads only those.

mod approvals;
mod calls;
mod grants;
mod index;
mod slot;
mod sweep;

use std::hash::{BuildHasher as _, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dashmap::DashMap;

use super::disk::{Durable, Key, Record};
use super::model::{Activity, Approval, Ending, Grant, Millis, RecentCall, Task, TaskState};
use super::{ApprovalFilter, Error, GrantFilter, RevokeScope, Store, Swept, TaskFilter};
use index::{TaskGrants, ToolKey};
use slot::Slot;

/// Bounds on what the store holds.
#[derive(Debug, Clone, Copy)]
pub struct StoreLimits {
    pub max_tasks: usize,
    pub max_grants_per_task: usize,
    /// Pending approvals across all tasks.
    pub max_pending_approvals: usize,
    /// Pending approvals in one task.
    pub max_pending_per_task: usize,
    /// How many recent calls each task remembers.
    pub recent_calls: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_tasks: 100_000,
            max_grants_per_task: 1_000,
            max_pending_approvals: 10_000,
            max_pending_per_task: 100,
            recent_calls: 20,
        }
    }
}

/// Most distinct tools a task's `per_tool` counter keeps.
const MAX_TOOLS_COUNTED: usize = 1_024;

#[derive(Debug)]
pub struct MemoryStore {
    tasks: DashMap<String, Task>,
    /// Grant id → the grant; the key is the slot's own id.
    grants: DashMap<Arc<str>, Arc<Slot>>,
    /// Task id → its grants, and the index a call finds its grants by.
    by_task: DashMap<Arc<str>, TaskGrants>,
    approvals: DashMap<String, Approval>,
    activity: DashMap<String, Activity>,
    /// Activity and unlimited-grant use counts written by the next sweep.
    dirty_activity: DashMap<String, ()>,
    dirty_grants: DashMap<Arc<str>, ()>,
    /// Hashes tool names for the tasks' indexes.
    tools: RandomState,
    journal: Option<Arc<dyn Durable>>,
    limits: StoreLimits,
    admin: Mutex<()>,
}

// === impl MemoryStore ===

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
            tools: RandomState::new(),
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
            store.add_grant(grant);
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
        hold(&self.admin)
    }

    fn write(&self, put: &[Record], delete: &[Key]) -> Result<(), Error> {
        match &self.journal {
            Some(journal) => journal.write(put, delete).map_err(Error::from),
            None => Ok(()),
        }
    }

    /// Journals `records` in one transaction, then applies them (an
    /// `Activity` record is already in memory). The caller holds the locks
    /// of every grant among them.
    fn commit(&self, records: Vec<Record>) -> Result<(), Error> {
        if records.is_empty() {
            return Ok(());
        }
        self.write(&records, &[])?;
        for record in records {
            match record {
                Record::Task(task) => {
                    self.tasks.insert(task.id.clone(), task);
                }
                Record::Grant(grant) => {
                    if let Some(slot) = self.slot(&grant.id) {
                        self.apply_grant(&slot, grant);
                    }
                }
                Record::Approval(approval) => {
                    self.approvals.insert(approval.id.clone(), approval);
                }
                Record::Activity { .. } => {}
            }
        }
        Ok(())
    }

    /// Refuses unless task `id` is active at `now` (without copying it).
    fn check_active(&self, id: &str, now: Millis) -> Result<(), Error> {
        let state = self
            .tasks
            .get(id)
            .map(|t| t.state_at(now))
            .ok_or_else(|| not_found("task", id))?;
        match state {
            TaskState::Active => Ok(()),
            state => Err(Error::TaskEnded {
                id: id.to_owned(),
                state: state.as_str(),
            }),
        }
    }

    fn task_active(&self, id: &str, now: Millis) -> Result<Task, Error> {
        self.check_active(id, now)?;
        self.task(id).ok_or_else(|| not_found("task", id))
    }

    fn slot(&self, id: &str) -> Option<Arc<Slot>> {
        self.grants.get(id).map(|slot| Arc::clone(&slot))
    }

    /// The grants of a task, in issue order.
    fn task_slots(&self, task_id: &str) -> Vec<Arc<Slot>> {
        self.by_task
            .get(task_id)
            .map(|t| t.slots().to_vec())
            .unwrap_or_default()
    }

    /// Refuses a new grant in a task that has as many as it may hold.
    fn check_grant_room(&self, task_id: &str) -> Result<(), Error> {
        let held = self.by_task.get(task_id).map_or(0, |t| t.len());
        if held >= self.limits.max_grants_per_task {
            return Err(Error::Limit(format!(
                "task {task_id} already has {} grants (tasks.max_grants_per_task)",
                self.limits.max_grants_per_task
            )));
        }
        Ok(())
    }

    /// Puts a new grant in the id map, then in its task's grants (and
    /// index, unless it can no longer be used): whoever finds it by its
    /// tool finds it by its id.
    fn add_grant(&self, grant: Grant) {
        let key = (!index::finished(&grant)).then(|| ToolKey::of(&grant, &self.tools));
        let task_id = match self.by_task.get(grant.task_id.as_str()) {
            Some(task) => Arc::clone(task.key()),
            None => Arc::from(grant.task_id.as_str()),
        };
        let slot = Arc::new(Slot::new(grant, Arc::clone(&task_id)));
        self.grants.insert(Arc::clone(&slot.id), Arc::clone(&slot));
        self.by_task.entry(task_id).or_default().add(slot, key);
    }

    /// Replaces a grant's record, and takes it out of its task's index once
    /// it can no longer be used. The caller holds the grant's mutex.
    fn apply_grant(&self, slot: &Arc<Slot>, grant: Grant) {
        let finished = index::finished(&grant);
        slot.set(grant);
        if finished && let Some(mut task) = self.by_task.get_mut(&*slot.task_id) {
            task.unindex(slot);
        }
    }

    /// Is task `id` active at `now`?
    fn task_is_active(&self, id: &str, now: Millis) -> bool {
        self.tasks.get(id).is_some_and(|t| t.is_active(now))
    }
}

/// Locks a mutex that guards no data. A panic while holding one leaves no
/// half-applied change (journal first, then map updates that cannot fail),
/// so a poisoned lock is still good.
fn hold(lock: &Mutex<()>) -> MutexGuard<'_, ()> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

fn not_found(kind: &'static str, id: &str) -> Error {
    Error::NotFound {
        kind,
        id: id.to_owned(),
    }
}

// === impl Store for MemoryStore ===

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
        self.end_task_now(id, state, ending)
    }

    fn issue_grant(&self, grant: Grant) -> Result<Grant, Error> {
        let _admin = self.admin();
        self.task_active(&grant.task_id, grant.created_at_ms)?;
        if self.grants.contains_key(grant.id.as_str()) {
            return Err(Error::Exists {
                kind: "grant",
                id: grant.id,
            });
        }
        self.check_grant_room(&grant.task_id)?;
        self.write(&[Record::Grant(grant.clone())], &[])?;
        self.add_grant(grant.clone());
        Ok(grant)
    }

    fn grant(&self, id: &str) -> Option<Grant> {
        self.grants.get(id).map(|slot| slot.grant())
    }

    fn grant_approval(&self, id: &str) -> Option<(String, String)> {
        self.grants.get(id)?.peek(crate::store::approval_of)
    }

    fn grants(&self, filter: &GrantFilter, now: Millis) -> Vec<Grant> {
        let wanted = |g: &Grant| {
            filter.agent.as_ref().is_none_or(|a| &g.agent == a)
                && (!filter.live_only || g.is_live(now))
        };
        let mut out: Vec<Grant> = match &filter.task_id {
            Some(task_id) => self
                .task_slots(task_id)
                .iter()
                .filter_map(|slot| slot.grant_if(wanted))
                .collect(),
            None => self
                .grants
                .iter()
                .filter_map(|slot| slot.grant_if(wanted))
                .collect(),
        };
        if filter.live_only {
            out.retain(|g| self.task_is_active(&g.task_id, now));
        }
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        out
    }

    fn revoke_grant(&self, id: &str, ending: Ending) -> Result<Grant, Error> {
        self.revoke_one(id, ending)
    }

    fn revoke_grants(&self, scope: &RevokeScope, ending: Ending) -> Result<Vec<String>, Error> {
        self.revoke_scope(scope, ending)
    }

    fn live_grants(&self, task_id: &str, route: &str, tool: &str, now: Millis) -> Vec<Grant> {
        let Some(task) = self.by_task.get(task_id) else {
            return Vec::new();
        };
        let covering = |g: &Grant| g.is_live(now) && g.covers(route, tool);
        let mut out: Vec<Grant> = task
            .candidates(self.tools.hash_one(tool))
            .filter_map(|slot| slot.grant_if(covering))
            .collect();
        drop(task);
        out.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        out
    }

    fn consume(&self, grant_id: &str, now: Millis) -> Result<Grant, Error> {
        self.consume_one(grant_id, now)
    }

    fn begin_call(&self, task_id: &str, tool: &str) -> Activity {
        self.count_call(task_id, tool)
    }

    fn finish_call(&self, task_id: &str, call: RecentCall, denied: bool) {
        self.record_outcome(task_id, call, denied);
    }

    fn activity(&self, task_id: &str) -> Activity {
        self.activity
            .get(task_id)
            .map(|a| a.clone())
            .unwrap_or_default()
    }

    fn park(&self, approval: Approval) -> Result<Approval, Error> {
        self.park_one(approval)
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
        self.approve_one(id, grant, ending)
    }

    fn deny(&self, id: &str, ending: Ending) -> Result<Approval, Error> {
        self.deny_one(id, ending)
    }

    fn sweep(&self, now: Millis, retain_ms: Millis) -> Result<Swept, Error> {
        self.sweep_now(now, retain_ms)
    }
}

#[cfg(test)]
mod tests;
