//! Decide stage: hot reload of the policy set — on a change to a module or
//! vectors file, on SIGHUP (with the rest of the config) and on the admin
//! trigger. The new set is compiled and checked off the request path and
//! swapped in whole; a set that fails keeps the last good one serving.
//!
//! This stage never sees the gateway: it takes a [`PolicyHost`], the narrow
//! handle that reads the policy config in force and swaps a new set in.
//!
//! The watcher reloads on changes of content only. It listens for creates,
//! writes, renames and removals of the watched files (never for reads: a
//! reload reads every file, and reacting to that was a reload loop),
//! debounced, and then compares the files' SHA-256 with those of the set
//! in force and of the last attempt: a reload that would read the same
//! bytes again is skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::PolicySet;
use crate::config;

/// Events closer together than this are one change.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// What a policy reload needs from whoever owns the snapshot.
pub trait PolicyHost: Send + Sync + 'static {
    /// The policy config in force, and the set built from it.
    fn policy_source(&self) -> PolicySource;
    /// Swaps in a set built from `built_from`, unless the config was
    /// replaced meanwhile (its own, newer set then stays). True if swapped.
    fn swap_policy(&self, set: Arc<PolicySet>, built_from: &Arc<[config::Policy]>) -> bool;
    /// Records one reload and its outcome (modules active, or why not).
    fn policy_reloaded(&self, trigger: Trigger, outcome: Result<usize, &str>);
}

/// What started a policy reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// A module or vectors file changed (`policy_limits.watch`).
    FileChange,
    /// `POST /v1/policies/reload` (also the console's button), by this actor.
    Api(String),
    /// The whole config file was re-read (SIGHUP or `POST /v1/config/reload`).
    Config,
}

/// The policy config in force and the set built from it.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub policies: Arc<[config::Policy]>,
    pub limits: config::PolicyLimits,
    pub active: Arc<PolicySet>,
}

/// A file and the SHA-256 (hex) of its content; `None`: unreadable.
type Fingerprint = Vec<(PathBuf, Option<String>)>;

/// Rebuilds the policy set from the policy config in force and swaps it
/// in. Returns the number of modules now active.
pub async fn reload<H: PolicyHost>(host: &Arc<H>, trigger: Trigger) -> Result<usize, String> {
    let source = host.policy_source();
    let (policies, limits) = (Arc::clone(&source.policies), source.limits.clone());
    let built = tokio::task::spawn_blocking(move || PolicySet::build(&policies, &limits))
        .await
        .map_err(|e| format!("policy build task failed: {e}"))?;
    match built {
        Ok(set) => {
            let n = set.modules().len();
            if !host.swap_policy(Arc::new(set), &source.policies) {
                tracing::info!("the config was reloaded meanwhile; its own policy set stays");
                return Ok(host.policy_source().active.modules().len());
            }
            host.policy_reloaded(trigger, Ok(n));
            tracing::info!(modules = n, "policy set reloaded");
            Ok(n)
        }
        Err(e) => {
            let e = e.to_string();
            host.policy_reloaded(trigger, Err(&e));
            tracing::error!("policy reload refused, the last good set keeps serving: {e}");
            Err(e)
        }
    }
}

/// Watches the configured module and vectors files; stops when dropped.
pub struct PolicyWatch {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for PolicyWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyWatch").finish_non_exhaustive()
    }
}

/// Starts watching the directories of every configured module and vectors
/// file, reloading when one of those files' content changes. `None` when
/// watching is off, there is nothing to watch, or the OS refuses.
pub fn watch<H: PolicyHost>(host: &Arc<H>) -> Option<PolicyWatch> {
    let source = host.policy_source();
    if !source.limits.watch || source.policies.is_empty() {
        return None;
    }
    // Events name canonical paths; hashes are read through the configured ones.
    let files: BTreeMap<PathBuf, PathBuf> = source
        .policies
        .iter()
        .flat_map(|p| std::iter::once(p.module.clone()).chain(p.vectors.clone()))
        .map(|p| (std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone()), p))
        .collect();
    let dirs: BTreeSet<PathBuf> = files
        .keys()
        .filter_map(|f| f.parent().map(PathBuf::from))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watched: BTreeSet<PathBuf> = files.keys().cloned().collect();
    let handler = move |result: DebounceEventResult| {
        let Ok(events) = result else { return };
        if events
            .iter()
            .any(|e| changes_content(&e.kind) && e.paths.iter().any(|p| watched.contains(p)))
        {
            let _ = tx.send(());
        }
    };
    let mut debouncer = match new_debouncer(DEBOUNCE, None, handler) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch policy modules; reload with SIGHUP or the admin API");
            return None;
        }
    };
    for dir in &dirs {
        if let Err(e) = debouncer.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a policy directory");
        }
    }
    let paths: Vec<PathBuf> = files.into_values().collect();
    let in_force = of_set(&source.active, &paths);
    tokio::spawn(follow(Arc::downgrade(host), rx, paths, in_force));
    Some(PolicyWatch {
        _debouncer: debouncer,
    })
}

/// Reloads on each debounced change whose content differs from both the
/// set in force and the last attempt. Ends when the watcher is dropped.
async fn follow<H: PolicyHost>(
    host: Weak<H>,
    mut changes: tokio::sync::mpsc::UnboundedReceiver<()>,
    paths: Vec<PathBuf>,
    mut last_attempt: Fingerprint,
) {
    while changes.recv().await.is_some() {
        while changes.try_recv().is_ok() {}
        let read = paths.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&read)).await else {
            continue;
        };
        let Some(host) = host.upgrade() else {
            return;
        };
        let in_force = of_set(&host.policy_source().active, &paths);
        if now == in_force || now == last_attempt {
            tracing::debug!("policy files touched, content unchanged: no reload");
            continue;
        }
        last_attempt = now;
        let _ = reload(&host, Trigger::FileChange).await;
    }
}

/// Whether a file event can mean new content: never a read or a change of
/// metadata alone (the hash check catches what slips through).
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any => true,
        EventKind::Modify(m) => match m {
            ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any | ModifyKind::Other => true,
            ModifyKind::Metadata(_) => false,
        },
        EventKind::Access(_) | EventKind::Other => false,
    }
}

/// The files' content hashes now.
fn fingerprint(paths: &[PathBuf]) -> Fingerprint {
    paths
        .iter()
        .map(|p| {
            let hash = std::fs::read(p).ok().map(|bytes| {
                hex::encode(aws_lc_rs::digest::digest(
                    &aws_lc_rs::digest::SHA256,
                    &bytes,
                ))
            });
            (p.clone(), hash)
        })
        .collect()
}

/// The hashes of the bytes the set was built from, for the same paths.
fn of_set(set: &PolicySet, paths: &[PathBuf]) -> Fingerprint {
    let loaded: BTreeMap<&PathBuf, &String> = set
        .modules()
        .iter()
        .flat_map(|m| m.sources().iter().map(|(p, h)| (p, h)))
        .collect();
    paths
        .iter()
        .map(|p| (p.clone(), loaded.get(p).map(|h| (*h).clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind};

    use super::*;

    #[test]
    fn reads_and_metadata_are_not_changes() {
        assert!(!changes_content(&EventKind::Access(AccessKind::Open(
            AccessMode::Read
        ))));
        assert!(!changes_content(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!changes_content(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
        assert!(changes_content(&EventKind::Modify(ModifyKind::Data(
            DataChange::Content
        ))));
        assert!(changes_content(&EventKind::Create(CreateKind::File)));
    }
}
