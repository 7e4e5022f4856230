//! Identify stage: verified-token cache, so a busy agent pays for signature
//! verification once per token. Entries are keyed by the token's SHA-256
//! (never the token), tagged with the key-set generation they were verified
//! under, bounded in number, and never outlive the token's `exp`.
//!
//! One cache serves one verification context (issuer rules and audience):
//! the key does not include the audience a token was checked for.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use dashmap::DashMap;

use super::Identity;

type Digest = [u8; 32];

#[derive(Debug)]
struct Entry {
    identity: Identity,
    generation: u64,
    expires_at: u64,
}

/// A bounded map from token digest to the identity it verified to.
#[derive(Debug)]
pub struct TokenCache {
    map: DashMap<Digest, Entry>,
    max_entries: usize,
    /// Entries in `map` plus inserts in flight (each reserves a slot first).
    reserved: AtomicUsize,
    /// Held by the one thread evicting; the others skip caching meanwhile.
    evicting: Mutex<()>,
    /// Which eighth of the digest space the next forced eviction takes.
    next_class: AtomicUsize,
}

fn digest_of(token: &str) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
    out
}

impl TokenCache {
    /// A cache of at most `max_entries` tokens (0 disables caching).
    pub fn new(max_entries: usize) -> Self {
        Self {
            map: DashMap::new(),
            max_entries,
            reserved: AtomicUsize::new(0),
            evicting: Mutex::new(()),
            next_class: AtomicUsize::new(0),
        }
    }

    /// The identity `token` verified to under key-set `generation`, unless it
    /// has expired by `now_unix` or was verified under another generation
    /// (either way the entry is dropped).
    pub fn get(&self, token: &str, generation: u64, now_unix: u64) -> Option<Identity> {
        let key = digest_of(token);
        let fresh = |entry: &Entry| entry.generation == generation && now_unix < entry.expires_at;
        if let Some(entry) = self.map.get(&key) {
            if fresh(&entry) {
                return Some(entry.identity.clone());
            }
        } else {
            return None;
        }
        // The read guard is gone: removing under it would deadlock its shard.
        if self.map.remove_if(&key, |_, entry| !fresh(entry)).is_some() {
            self.reserved.fetch_sub(1, Ordering::AcqRel);
        }
        None
    }

    /// Remembers that `token` verified to `identity` under `generation`,
    /// until `expires_at` (unix seconds). When full, evicts first; if another
    /// thread is evicting, the token is simply not cached.
    pub fn insert(&self, token: &str, generation: u64, identity: Identity, expires_at: u64) {
        if !self.reserve() {
            return;
        }
        let entry = Entry {
            identity,
            generation,
            expires_at,
        };
        if self.map.insert(digest_of(token), entry).is_some() {
            // Replaced an entry: the reserved slot was not needed.
            self.reserved.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Entries held. Shards are counted one by one, so under concurrent
    /// churn this is approximate; the bound itself is never exceeded.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Claims one slot under the bound, evicting once if there is none.
    fn reserve(&self) -> bool {
        if self.max_entries == 0 {
            return false;
        }
        for attempt in 0..2 {
            if self.reserved.fetch_add(1, Ordering::AcqRel) < self.max_entries {
                return true;
            }
            self.reserved.fetch_sub(1, Ordering::AcqRel);
            if attempt == 0 && !self.evict() {
                return false;
            }
        }
        false
    }

    /// Drops expired entries and one eighth of the digest space (a random
    /// eighth of the tokens, since digests are uniform), moving on to the next
    /// eighth until there is room. Returns false if another thread is at it.
    fn evict(&self) -> bool {
        let Ok(_guard) = self.evicting.try_lock() else {
            return false;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for _ in 0..8 {
            let class = self.next_class.fetch_add(1, Ordering::Relaxed) % 8;
            let mut removed = 0;
            self.map.retain(|key, entry| {
                let drop = entry.expires_at <= now || usize::from(key[0] & 7) == class;
                removed += usize::from(drop);
                !drop
            });
            self.reserved.fetch_sub(removed, Ordering::AcqRel);
            if self.reserved.load(Ordering::Acquire) < self.max_entries {
                break;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests;
