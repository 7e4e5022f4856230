//! Decide stage: hot reload of the policy set — on a change to a module or
//! vectors file, on SIGHUP (with the rest of the config) and on the admin
//! trigger. The new set is compiled and checked off the request path and
//! swapped in whole; a set that fails keeps the last good one serving.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use super::PolicySet;
use crate::gateway::Gateway;

/// Changes closer together than this are one reload.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Rebuilds the policy set from the current snapshot's policy config and
/// swaps it in. Returns the number of modules now active.
pub async fn reload(gateway: &Arc<Gateway>) -> Result<usize, String> {
    let snapshot = gateway.snapshot();
    let (policies, limits) = (
        Arc::clone(&snapshot.policies),
        snapshot.policy_limits.clone(),
    );
    let from = Arc::clone(&policies);
    let built = tokio::task::spawn_blocking(move || PolicySet::build(&policies, &limits))
        .await
        .map_err(|e| format!("policy build task failed: {e}"))?;
    match built {
        Ok(set) => {
            let n = set.modules().len();
            if !gateway.swap_policy(Arc::new(set), &from) {
                tracing::info!("the config was reloaded meanwhile; its own policy set stays");
                return Ok(gateway.snapshot().policy.modules().len());
            }
            gateway.recorder().policy_reload("ok");
            tracing::info!(modules = n, "policy set reloaded");
            Ok(n)
        }
        Err(e) => {
            gateway.recorder().policy_reload("error");
            tracing::error!("policy reload refused, the last good set keeps serving: {e}");
            Err(e.to_string())
        }
    }
}

/// Watches the directories of every configured module and vectors file and
/// reloads on a change to one of those files. The returned watcher stops
/// when dropped.
pub fn watch(gateway: &Arc<Gateway>) -> Option<notify::RecommendedWatcher> {
    let snapshot = gateway.snapshot();
    if !snapshot.policy_limits.watch || snapshot.policies.is_empty() {
        return None;
    }
    let files: BTreeSet<PathBuf> = snapshot
        .policies
        .iter()
        .flat_map(|p| std::iter::once(p.module.clone()).chain(p.vectors.clone()))
        .filter_map(|p| std::fs::canonicalize(&p).ok().or(Some(p)))
        .collect();
    let dirs: BTreeSet<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(PathBuf::from))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let watched = files.clone();
    let mut watcher = match notify::recommended_watcher(
        move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event
                && event.paths.iter().any(|p| watched.contains(p))
            {
                let _ = tx.send(());
            }
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch policy modules; reload with SIGHUP or the admin API");
            return None;
        }
    };
    for dir in &dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a policy directory");
        }
    }
    let weak: Weak<Gateway> = Arc::downgrade(gateway);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Let a burst of writes (a build, a copy) settle first.
            tokio::time::sleep(DEBOUNCE).await;
            while rx.try_recv().is_ok() {}
            let Some(gateway) = weak.upgrade() else {
                return;
            };
            let _ = reload(&gateway).await;
        }
    });
    Some(watcher)
}
