//! Task-context stage, one grant in memory: its record and the mutex its
//! changes are made under, in one allocation that the id map and its task's
//! index both point to — so a call that found the grant by its tool holds
//! everything it needs, and the grant's id is stored once.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use crate::store::model::Grant;

/// One grant. The record is kept without its id and task id (empty
/// strings, which allocate nothing): the slot holds those, shared with the
/// maps' keys, and puts them back into every copy it hands out.
#[derive(Debug)]
pub(super) struct Slot {
    /// The grant's id: the same allocation as its key in the id map.
    pub(super) id: Arc<str>,
    /// Its task's id: the same allocation as the task's key in `by_task`.
    pub(super) task_id: Arc<str>,
    /// Every change of the grant is made under it (the module docs' lock
    /// 2). It holds `true` once the grant is purged: a change that waited
    /// for the purge finds the grant gone.
    change: Mutex<bool>,
    /// The grant as last applied (lock 4, a leaf): replaced under `change`,
    /// read for as long as a copy or a check takes, with nothing else taken
    /// while it is held — so it may be read under a map entry.
    record: RwLock<Grant>,
}

/// A held grant mutex: the grant is not purged while it is held.
pub(super) type Change<'a> = MutexGuard<'a, bool>;

// === impl Slot ===

impl Slot {
    pub(super) fn new(grant: Grant, task_id: Arc<str>) -> Self {
        Self {
            id: Arc::from(grant.id.as_str()),
            task_id,
            change: Mutex::new(false),
            record: RwLock::new(stripped(grant)),
        }
    }

    /// Takes the grant's mutex; `None` if the grant was purged meanwhile.
    pub(super) fn lock(&self) -> Option<Change<'_>> {
        let held = self.change.lock().unwrap_or_else(PoisonError::into_inner);
        (!*held).then_some(held)
    }

    /// A full copy of the grant.
    pub(super) fn grant(&self) -> Grant {
        self.peek(|g| self.dressed(g))
    }

    /// A full copy of the grant if `keep` holds for it.
    pub(super) fn grant_if(&self, keep: impl FnOnce(&Grant) -> bool) -> Option<Grant> {
        self.peek(|g| keep(g).then(|| self.dressed(g)))
    }

    /// Reads the record (its `id` and `task_id` are empty) for `read`.
    pub(super) fn peek<R>(&self, read: impl FnOnce(&Grant) -> R) -> R {
        read(&self.record.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the record; the caller holds the grant's mutex.
    pub(super) fn set(&self, grant: Grant) {
        *self.record.write().unwrap_or_else(PoisonError::into_inner) = stripped(grant);
    }

    /// Marks the grant purged; the caller holds its mutex.
    pub(super) fn purge(held: &mut Change<'_>) {
        **held = true;
    }

    fn dressed(&self, record: &Grant) -> Grant {
        Grant {
            id: self.id.to_string(),
            task_id: self.task_id.to_string(),
            ..record.clone()
        }
    }
}

/// `grant` without its id and task id.
fn stripped(grant: Grant) -> Grant {
    Grant {
        id: String::new(),
        task_id: String::new(),
        ..grant
    }
}
