//! Identify stage: legacy MCP sessions belong to the principal that opened
//! them. A request carrying another principal's `Mcp-Session-Id` — or a
//! session the gateway never saw opened — is refused with 404, which MCP
//! clients answer by starting a new session.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;

/// Sessions idle this long are forgotten.
const IDLE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
struct Binding {
    principal: String,
    last_seen: AtomicU64,
}

/// (route, session id) → the principal that opened it. Ids are per route:
/// two upstreams may well hand out the same one.
#[derive(Debug)]
pub struct Sessions {
    bindings: DashMap<String, Binding>,
    /// Principal → keys of its bindings: eviction looks at one caller's
    /// sessions, never scans the table.
    owned: DashMap<String, Vec<String>>,
    max: usize,
    per_principal: usize,
}

impl Sessions {
    pub fn new(max: usize) -> Self {
        Self {
            bindings: DashMap::new(),
            owned: DashMap::new(),
            max,
            per_principal: (max / 64).max(1),
        }
    }

    /// True if `session` on `route` was opened by `principal` (and marks it used).
    pub fn owned_by(&self, route: &str, session: &str, principal: &str) -> bool {
        match self.bindings.get(&key(route, session)) {
            Some(b) if b.principal == principal => {
                b.last_seen.store(now(), Ordering::Relaxed);
                true
            }
            Some(_) | None => false,
        }
    }

    /// Records that `principal` opened `session` on `route`. An id another
    /// principal already holds is never taken over: the new opener's later
    /// requests get 404 and its client opens another session.
    pub fn bind(&self, route: &str, session: &str, principal: &str) {
        let key = key(route, session);
        if let Some(existing) = self.bindings.get(&key) {
            if existing.principal == principal {
                existing.last_seen.store(now(), Ordering::Relaxed);
            } else {
                tracing::warn!(
                    route,
                    "upstream reissued a session id another caller holds; not rebinding it"
                );
            }
            return;
        }
        if self.bindings.len() >= self.max {
            self.sweep();
        }
        // One caller cannot crowd out the others: past its share, its own
        // least recently used session is forgotten (its client gets a 404
        // and opens a new one). Only when the table is full of many callers'
        // live sessions does an arbitrary one go; nobody gets another's.
        let own: Vec<String> = self
            .owned
            .get(principal)
            .map(|keys| keys.clone())
            .unwrap_or_default();
        let victim = if own.len() >= self.per_principal {
            own.into_iter().filter(|k| *k != key).min_by_key(|k| {
                self.bindings
                    .get(k)
                    .map_or(0, |b| b.last_seen.load(Ordering::Relaxed))
            })
        } else if self.bindings.len() >= self.max {
            self.bindings.iter().next().map(|e| e.key().clone())
        } else {
            None
        };
        if let Some(victim) = victim {
            self.remove(&victim);
        }
        let fresh = self
            .bindings
            .insert(
                key.clone(),
                Binding {
                    principal: principal.to_owned(),
                    last_seen: AtomicU64::new(now()),
                },
            )
            .is_none();
        if fresh {
            self.owned
                .entry(principal.to_owned())
                .or_default()
                .push(key);
        }
    }

    /// Forgets one binding and its index entry.
    fn remove(&self, key: &str) {
        let Some((_, binding)) = self.bindings.remove(key) else {
            return;
        };
        let empty = match self.owned.get_mut(&binding.principal) {
            Some(mut keys) => {
                keys.retain(|k| k != key);
                keys.is_empty()
            }
            None => false,
        };
        if empty {
            self.owned
                .remove_if(&binding.principal, |_, keys| keys.is_empty());
        }
    }

    pub fn unbind(&self, route: &str, session: &str) {
        self.remove(&key(route, session));
    }

    /// Forgets sessions idle past the limit.
    pub fn sweep(&self) {
        let cutoff = now().saturating_sub(IDLE.as_secs());
        self.bindings
            .retain(|_, b| b.last_seen.load(Ordering::Relaxed) >= cutoff);
        self.owned.retain(|_, keys| {
            keys.retain(|k| self.bindings.contains_key(k));
            !keys.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }
}

fn key(route: &str, session: &str) -> String {
    format!("{route}\n{session}")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_its_opener_only() {
        let s = Sessions::new(4);
        s.bind("r", "s1", "alice");
        assert!(s.owned_by("r", "s1", "alice"));
        assert!(!s.owned_by("r", "s1", "mallory"));
        assert!(!s.owned_by("other", "s1", "alice"), "ids are per route");
        assert!(!s.owned_by("r", "unknown", "alice"));
        s.bind("r", "s1", "mallory");
        assert!(s.owned_by("r", "s1", "alice"), "never taken over");
        s.unbind("r", "s1");
        assert!(!s.owned_by("r", "s1", "alice"));
    }

    #[test]
    fn one_caller_cannot_evict_the_others() {
        let s = Sessions::new(128); // two sessions per caller at most
        s.bind("r", "alice-1", "alice");
        for i in 0..50 {
            s.bind("r", &format!("m{i}"), "mallory");
        }
        assert!(
            s.owned_by("r", "alice-1", "alice"),
            "alice keeps her session"
        );
        assert!(s.owned_by("r", "m49", "mallory"));
        assert!(!s.owned_by("r", "m0", "mallory"), "mallory's oldest went");
    }

    #[test]
    fn the_table_stays_bounded() {
        let s = Sessions::new(2);
        for i in 0..10 {
            s.bind("r", &format!("s{i}"), "p");
        }
        assert!(s.len() <= 2);
        assert!(s.owned_by("r", "s9", "p"), "the newest binding is kept");
    }

    #[test]
    fn the_index_follows_the_table() {
        let s = Sessions::new(64 * 3); // three per caller
        for i in 0..10 {
            s.bind("r", &format!("a{i}"), "alice");
            s.bind("r", "a-same", "alice"); // rebinding the same id is not a new one
        }
        assert_eq!(s.owned.get("alice").unwrap().len(), 3);
        assert!(s.owned_by("r", "a9", "alice") && s.owned_by("r", "a-same", "alice"));
        for k in s.owned.get("alice").unwrap().clone() {
            assert!(s.bindings.contains_key(&k));
        }
        s.unbind("r", "a9");
        s.unbind("r", "a-same");
        s.unbind("r", "a8");
        assert!(s.owned.get("alice").is_none(), "an empty index entry goes");
        assert!(s.is_empty());
    }
}
