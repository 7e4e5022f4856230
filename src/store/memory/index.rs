//! Task-context stage, finding a call's grants: each task's grants, and an
//! index of those that may still be used — exact tool names by hash, globs
//! in a short list — so the grants covering one call are found without
//! reading the task's others, however many it holds.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::slot::Slot;
use crate::store::model::{Grant, Millis};

/// A task's grants.
#[derive(Debug, Default)]
pub(super) struct TaskGrants {
    /// Every grant of the task until it is purged, in issue order.
    all: Vec<Arc<Slot>>,
    /// The grants that may still be used and name one tool, by the hash of
    /// the name (sorted; grants of one tool in issue order).
    exact: Vec<(u64, Arc<Slot>)>,
    /// The grants that may still be used and name their tools by a glob.
    globs: Vec<Arc<Slot>>,
}

/// How the index finds a grant: by the hash of the one tool it names, or
/// among the globs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ToolKey {
    Exact(u64),
    Glob,
}

impl ToolKey {
    /// A grant's key. A glob without `*` or `?` matches only itself
    /// (`toolgate_pattern::glob`), so it is indexed as the name it is.
    pub(super) fn of(grant: &Grant, tools: &impl BuildHasher) -> Self {
        if grant.tool_exact || !grant.tool.contains(['*', '?']) {
            Self::Exact(tools.hash_one(grant.tool.as_str()))
        } else {
            Self::Glob
        }
    }
}

/// True if `grant` can never be used again, whatever the time: revoked or
/// used up.
pub(super) fn finished(grant: &Grant) -> bool {
    grant.revoked.is_some() || grant.uses_left() == Some(0)
}

/// True if `grant` can never be used again from `now` on: finished, or
/// expired (one not valid yet may still be used).
pub(super) fn spent(grant: &Grant, now: Millis) -> bool {
    finished(grant) || now >= grant.expires_at_ms
}

// === impl TaskGrants ===

impl TaskGrants {
    /// Adds a grant; `key` indexes it, `None` keeps it out of the index
    /// (it can no longer be used).
    pub(super) fn add(&mut self, slot: Arc<Slot>, key: Option<ToolKey>) {
        match key {
            Some(ToolKey::Exact(hash)) => {
                let at = self.exact.partition_point(|(h, _)| *h <= hash);
                self.exact.insert(at, (hash, Arc::clone(&slot)));
            }
            Some(ToolKey::Glob) => self.globs.push(Arc::clone(&slot)),
            None => {}
        }
        self.all.push(slot);
    }

    /// How many grants the task holds (used or not, until purged).
    pub(super) fn len(&self) -> usize {
        self.all.len()
    }

    pub(super) fn slots(&self) -> &[Arc<Slot>] {
        &self.all
    }

    /// The indexed grants that may name the tool hashed to `hash`: those
    /// for that name, then the globs. The caller checks each.
    pub(super) fn candidates(&self, hash: u64) -> impl Iterator<Item = &Arc<Slot>> {
        let from = self.exact.partition_point(|(h, _)| *h < hash);
        self.exact[from..]
            .iter()
            .take_while(move |(h, _)| *h == hash)
            .map(|(_, slot)| slot)
            .chain(&self.globs)
    }

    /// Takes a grant that can no longer be used out of the index.
    pub(super) fn unindex(&mut self, slot: &Arc<Slot>) {
        self.exact.retain(|(_, s)| !Arc::ptr_eq(s, slot));
        self.globs.retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// True if `spent` holds for an indexed grant.
    pub(super) fn any_indexed(&self, spent: impl Fn(&Slot) -> bool) -> bool {
        self.exact.iter().any(|(_, s)| spent(s)) || self.globs.iter().any(|s| spent(s))
    }

    /// Takes every indexed grant for which `spent` holds out of the index.
    pub(super) fn unindex_spent(&mut self, spent: impl Fn(&Slot) -> bool) {
        self.exact.retain(|(_, s)| !spent(s));
        self.globs.retain(|s| !spent(s));
    }

    /// Forgets a purged grant.
    pub(super) fn remove(&mut self, slot: &Arc<Slot>) {
        self.unindex(slot);
        self.all.retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// How many grants the index holds.
    #[cfg(test)]
    pub(super) fn indexed(&self) -> usize {
        self.exact.len() + self.globs.len()
    }
}
