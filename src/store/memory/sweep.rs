//! Task-context stage, housekeeping off the request path: expiring what is
//! due, purging what ended long ago, flushing counters and the uses of
//! unlimited grants.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::Hash;
use std::sync::Arc;

use dashmap::DashMap;

use super::MemoryStore;
use super::grants::{expire, lock_all};
use super::index;
use super::slot::Slot;
use crate::store::disk::{Key, Record};
use crate::store::model::{ApprovalState, Ending, Millis, Task, TaskState};
use crate::store::{Error, Store as _, Swept};

impl MemoryStore {
    pub(super) fn sweep_now(&self, now: Millis, retain_ms: Millis) -> Result<Swept, Error> {
        let _admin = self.admin();
        let (tasks_expired, approvals_expired) = self.expire_due(now)?;
        let (grants_dropped, purged) = self.purge_and_flush(now, now.saturating_sub(retain_ms))?;
        self.unindex_expired(now);
        Ok(Swept {
            tasks_expired,
            approvals_expired,
            grants_dropped,
            purged,
        })
    }

    /// Expires, in one journal transaction: tasks past their TTL with their
    /// grants and pending approvals; what a task ended earlier left live
    /// (its own retirement failed to journal); approvals nobody answered in
    /// time. Returns how many tasks and approvals it expired.
    fn expire_due(&self, now: Millis) -> Result<(usize, usize), Error> {
        let expired: Vec<Task> = self
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Active && t.state_at(now) == TaskState::Expired)
            .map(|t| Task {
                state: TaskState::Expired,
                ended: Some(system(t.expires_at_ms, "ttl elapsed")),
                ..t.clone()
            })
            .collect();
        let mut ended: HashMap<String, Ending> = expired
            .iter()
            .map(|t| (t.id.clone(), system(now, "task expired")))
            .collect();
        let over: HashMap<String, TaskState> = self
            .tasks
            .iter()
            .filter(|t| t.state != TaskState::Active)
            .map(|t| (t.id.clone(), t.state))
            .collect();
        let mut left: Vec<String> = self
            .grants
            .iter()
            .filter(|slot| slot.peek(|g| g.revoked.is_none() && now < g.expires_at_ms))
            .map(|slot| slot.task_id.to_string())
            .collect();
        left.extend(
            self.approvals
                .iter()
                .filter(|a| a.state == ApprovalState::Pending)
                .map(|a| a.task_id.clone()),
        );
        for task_id in left {
            if let Some(state) = over.get(&task_id) {
                let why = format!("task {}", state.as_str());
                ended.entry(task_id).or_insert_with(|| system(now, &why));
            }
        }
        let due: Vec<Record> = self
            .approvals
            .iter()
            .filter(|a| a.state == ApprovalState::Pending && now >= a.expires_at_ms)
            .filter(|a| !ended.contains_key(&a.task_id))
            .map(|a| Record::Approval(expire(&a, a.expires_at_ms, "nobody answered in time")))
            .collect();
        let (tasks_expired, answered_late) = (expired.len(), due.len());
        let mut records: Vec<Record> = expired.into_iter().map(Record::Task).collect();
        records.extend(due);
        let (_, of_ended) = self.retire(&ended, records, now)?;
        Ok((tasks_expired, answered_late + of_ended))
    }

    /// Purges what ended before `cutoff` — and the grants, approvals and
    /// activity of tasks no longer kept — and flushes the activity and
    /// unlimited-grant uses changed since the last sweep, in one journal
    /// transaction. A failed write restores the flush marks, so the next
    /// sweep writes them. Returns how many grants, and records, it purged.
    fn purge_and_flush(&self, now: Millis, cutoff: Millis) -> Result<(usize, usize), Error> {
        let mut old_tasks: Vec<String> = Vec::new();
        let mut kept: HashSet<String> = HashSet::new();
        for t in &self.tasks {
            let ended = t.ended.as_ref().map_or(t.expires_at_ms, |e| e.at_ms);
            if t.state_at(now) != TaskState::Active && ended < cutoff {
                old_tasks.push(t.id.clone());
            } else {
                kept.insert(t.id.clone());
            }
        }
        let mut old_grants: Vec<Arc<Slot>> = self
            .grants
            .iter()
            .filter(|slot| {
                let ended = slot.peek(|g| {
                    let ended = g.revoked.as_ref().map_or(g.expires_at_ms, |r| r.at_ms);
                    ended.min(g.expires_at_ms)
                });
                ended < cutoff || !kept.contains(&*slot.task_id)
            })
            .map(|slot| Arc::clone(&slot))
            .collect();
        let old_approvals: Vec<String> = self
            .approvals
            .iter()
            .filter(|a| {
                let decided = a.decided.as_ref().map_or(a.expires_at_ms, |d| d.at_ms);
                (a.state_at(now) != ApprovalState::Pending && decided < cutoff)
                    || !kept.contains(&a.task_id)
            })
            .map(|a| a.id.clone())
            .collect();
        let mut old_activity: BTreeSet<String> = old_tasks.iter().cloned().collect();
        old_activity.extend(
            self.activity
                .iter()
                .filter(|a| !kept.contains(a.key()))
                .map(|a| a.key().clone()),
        );
        // Purged grants are locked, so no use is journaled after their delete.
        let mut old_grants = lock_all(&mut old_grants);

        let mut delete: Vec<Key> = Vec::new();
        delete.extend(
            old_grants
                .iter()
                .map(|(slot, _)| Key::Grant(slot.id.to_string())),
        );
        delete.extend(old_tasks.iter().cloned().map(Key::Task));
        delete.extend(old_activity.iter().cloned().map(Key::Activity));
        delete.extend(old_approvals.iter().cloned().map(Key::Approval));
        let activity_marks = take_marks(&self.dirty_activity);
        let grant_marks = take_marks(&self.dirty_grants);
        let mut put: Vec<Record> = Vec::new();
        for task_id in activity_marks.iter().filter(|id| kept.contains(*id)) {
            if let Some(activity) = self.activity.get(task_id).map(|a| a.clone()) {
                put.push(Record::Activity {
                    task_id: task_id.clone(),
                    activity,
                });
            }
        }
        let purged: HashSet<&str> = old_grants.iter().map(|(slot, _)| &*slot.id).collect();
        for id in grant_marks.iter().filter(|id| !purged.contains(&***id)) {
            put.extend(self.grant(id).map(Record::Grant));
        }
        if !(put.is_empty() && delete.is_empty())
            && let Err(error) = self.write(&put, &delete)
        {
            restore_marks(&self.dirty_activity, activity_marks);
            restore_marks(&self.dirty_grants, grant_marks);
            return Err(error);
        }

        for (slot, held) in &mut old_grants {
            Slot::purge(held);
            self.grants.remove(&*slot.id);
            if let Some(mut task) = self.by_task.get_mut(&*slot.task_id) {
                task.remove(slot);
            }
            // A task kept with no grant left needs no entry.
            self.by_task
                .remove_if(&*slot.task_id, |_, task| task.len() == 0);
        }
        for id in &old_tasks {
            self.tasks.remove(id);
            self.by_task.remove(id.as_str());
        }
        for id in &old_activity {
            self.activity.remove(id);
        }
        for id in &old_approvals {
            self.approvals.remove(id);
        }
        let purged = old_grants.len() + old_tasks.len() + old_approvals.len();
        Ok((old_grants.len(), purged))
    }

    /// Takes the grants that expired by `now` out of their tasks' indexes
    /// (revoked and used-up ones leave it when that is applied). Tasks are
    /// looked at under shared map locks first; only those with such a
    /// grant are locked to change.
    fn unindex_expired(&self, now: Millis) {
        let spent = |slot: &Slot| slot.peek(|g| index::spent(g, now));
        let stale: Vec<Arc<str>> = self
            .by_task
            .iter()
            .filter(|task| task.any_indexed(spent))
            .map(|task| Arc::clone(task.key()))
            .collect();
        for task_id in stale {
            if let Some(mut task) = self.by_task.get_mut(&task_id) {
                task.unindex_spent(spent);
            }
        }
    }
}

/// Clears a map of flush marks; returns the keys it held.
fn take_marks<K: Clone + Eq + Hash>(marks: &DashMap<K, ()>) -> Vec<K> {
    let keys: Vec<K> = marks.iter().map(|k| k.key().clone()).collect();
    for key in &keys {
        marks.remove(key);
    }
    keys
}

fn restore_marks<K: Eq + Hash>(marks: &DashMap<K, ()>, keys: Vec<K>) {
    for key in keys {
        marks.insert(key, ());
    }
}

fn system(at_ms: Millis, why: &str) -> Ending {
    Ending {
        by: "toolgate".to_owned(),
        at_ms,
        why: why.to_owned(),
    }
}
