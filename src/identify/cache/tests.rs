use std::sync::Arc;
use std::thread;

use super::*;
use crate::identify::{Delegation, Workload};

const NOW: u64 = 1_700_000_000;

fn identity(subject: &str, expires_at: u64) -> Identity {
    Identity::Workload(Arc::new(Workload {
        subject: subject.into(),
        issuer: "https://issuer.example".into(),
        spiffe: None,
        audience: vec!["toolgate".into()],
        scopes: Vec::new(),
        expires_at,
        claims: serde_json::Map::new(),
        delegation: Delegation::default(),
        task_id: None,
        derived: Default::default(),
    }))
}

#[test]
fn hit_and_miss() {
    let cache = TokenCache::new(10);
    assert!(cache.is_empty());
    cache.insert("token-a", 1, identity("a", NOW + 60), NOW + 60);
    assert_eq!(cache.get("token-a", 1, NOW), Some(identity("a", NOW + 60)));
    assert_eq!(cache.get("token-b", 1, NOW), None);
    assert_eq!(cache.len(), 1);
}

#[test]
fn entries_end_at_exp_and_are_removed() {
    let cache = TokenCache::new(10);
    cache.insert("t", 1, identity("a", NOW + 60), NOW + 60);
    assert!(cache.get("t", 1, NOW + 59).is_some());
    assert_eq!(cache.get("t", 1, NOW + 60), None);
    assert_eq!(cache.len(), 0);
}

#[test]
fn another_generation_misses_and_drops_the_entry() {
    let cache = TokenCache::new(10);
    cache.insert("t", 1, identity("a", NOW + 60), NOW + 60);
    assert_eq!(cache.get("t", 2, NOW), None);
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.get("t", 1, NOW), None);
    cache.insert("t", 2, identity("b", NOW + 60), NOW + 60);
    cache.insert("t", 3, identity("c", NOW + 60), NOW + 60);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.get("t", 3, NOW), Some(identity("c", NOW + 60)));
}

#[test]
fn never_holds_more_than_its_bound() {
    let far = u64::MAX;
    for max in [1, 3, 8, 100] {
        let cache = TokenCache::new(max);
        for i in 0..2_000 {
            cache.insert(&format!("token-{i}"), 1, identity("a", far), far);
            assert!(cache.len() <= max, "max {max}: {} after {i}", cache.len());
        }
        assert!(
            cache.len() >= max / 2,
            "max {max}: only {} kept",
            cache.len()
        );
        // The newest token is always cached after an eviction made room.
        assert!(cache.get("token-1999", 1, NOW).is_some(), "max {max}");
    }
    let disabled = TokenCache::new(0);
    disabled.insert("t", 1, identity("a", far), far);
    assert_eq!(disabled.len(), 0);
}

#[test]
fn eviction_prefers_expired_entries() {
    let cache = TokenCache::new(4);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for i in 0..3 {
        cache.insert(&format!("old-{i}"), 1, identity("old", now - 1), now - 1);
    }
    cache.insert("live", 1, identity("live", now + 600), now + 600);
    cache.insert("new", 1, identity("new", now + 600), now + 600);
    assert!(cache.get("new", 1, now).is_some());
    assert_eq!(cache.len(), 2);
}

#[test]
fn concurrent_use_stays_consistent_and_bounded() {
    let cache = Arc::new(TokenCache::new(256));
    let far = u64::MAX;
    let workers: Vec<_> = (0..6)
        .map(|t| {
            let cache = Arc::clone(&cache);
            thread::spawn(move || {
                for i in 0..3_000u64 {
                    let token = format!("token-{}", (i * 7 + t) % 600);
                    let generation = i % 3;
                    match cache.get(&token, generation, NOW) {
                        Some(found) => assert_eq!(found.subject(), token),
                        None => cache.insert(&token, generation, identity(&token, far), far),
                    }
                    // `len` sums shards one by one, so under churn only the
                    // slot count is exact: at most 256 held, plus one
                    // in-flight failed claim per thread.
                    assert!(cache.reserved.load(Ordering::Acquire) <= 256 + 6);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    assert!(cache.len() <= 256);
    assert_eq!(cache.reserved.load(Ordering::Acquire), cache.len());
}
