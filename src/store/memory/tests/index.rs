//! The tasks' grant indexes: a call finds the grants covering its tool —
//! by exact name or by glob, on its route — and only those; grants that can
//! no longer be used leave the index.

use super::*;

/// The ids of `grants`, sorted (grants issued in one millisecond come in
/// id order).
fn ids(grants: &[Grant]) -> Vec<&str> {
    let mut ids: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
    ids.sort_unstable();
    ids
}

fn sorted(mut ids: Vec<&str>) -> Vec<&str> {
    ids.sort_unstable();
    ids
}

/// How many grants of task `id` the index holds.
fn indexed(store: &MemoryStore, id: &str) -> usize {
    store.by_task.get(id).map_or(0, |t| t.indexed())
}

#[test]
fn a_grant_is_found_by_exact_name_and_by_glob() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    let named = store
        .issue_grant(grant(&t, "read_file", None, 60_000))
        .unwrap();
    let glob = store
        .issue_grant(grant(&t, "read_*", None, 60_000))
        .unwrap();
    let mut literal = grant(&t, "read_*", None, 60_000);
    literal.tool_exact = true;
    let literal = store.issue_grant(literal).unwrap();
    let other = store
        .issue_grant(grant(&t, "write_file", None, 60_000))
        .unwrap();
    let now = now_ms();

    let found = store.live_grants(&t.id, "fs", "read_file", now);
    assert_eq!(
        ids(&found),
        sorted(vec![named.id.as_str(), glob.id.as_str()])
    );
    let found = store.live_grants(&t.id, "fs", "read_dir", now);
    assert_eq!(ids(&found), sorted(vec![glob.id.as_str()]));
    // An exact grant's `*` is a character, not a glob.
    let found = store.live_grants(&t.id, "fs", "read_*", now);
    assert_eq!(
        ids(&found),
        sorted(vec![glob.id.as_str(), literal.id.as_str()]),
        "the glob matches the name too"
    );
    let found = store.live_grants(&t.id, "fs", "write_file", now);
    assert_eq!(ids(&found), sorted(vec![other.id.as_str()]));
    assert!(store.live_grants(&t.id, "fs", "read", now).is_empty());
    assert!(
        store
            .live_grants(&t.id, "fs", "write_files", now)
            .is_empty()
    );
    assert_eq!(indexed(&store, &t.id), 4);
}

#[test]
fn a_call_reads_only_the_grants_that_may_cover_its_tool() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    for i in 0..500 {
        store
            .issue_grant(grant(&t, &format!("tool_{i:03}"), None, 60_000))
            .unwrap();
    }
    let star = store.issue_grant(grant(&t, "echo*", None, 60_000)).unwrap();
    let entry = store.by_task.get(t.id.as_str()).unwrap();
    let hash = store.tools.hash_one("tool_123");
    let read: Vec<String> = entry
        .candidates(hash)
        .map(|slot| slot.grant().tool)
        .collect();
    assert_eq!(read, ["tool_123", "echo*"], "its own name, then the globs");
    drop(entry);
    let found = store.live_grants(&t.id, "r", "echo_twice", now_ms());
    assert_eq!(ids(&found), sorted(vec![star.id.as_str()]));
}

#[test]
fn a_grant_for_one_route_is_found_only_there() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    let mut on_fs = grant(&t, "read_file", None, 60_000);
    on_fs.route = Some("fs".into());
    let on_fs = store.issue_grant(on_fs).unwrap();
    let mut glob_on_web = grant(&t, "read_*", None, 60_000);
    glob_on_web.route = Some("web".into());
    let glob_on_web = store.issue_grant(glob_on_web).unwrap();
    let anywhere = store
        .issue_grant(grant(&t, "read_file", None, 60_000))
        .unwrap();
    let now = now_ms();

    let found = store.live_grants(&t.id, "fs", "read_file", now);
    assert_eq!(
        ids(&found),
        sorted(vec![on_fs.id.as_str(), anywhere.id.as_str()])
    );
    let found = store.live_grants(&t.id, "web", "read_file", now);
    assert_eq!(
        ids(&found),
        sorted(vec![glob_on_web.id.as_str(), anywhere.id.as_str()])
    );
    let found = store.live_grants(&t.id, "db", "read_file", now);
    assert_eq!(ids(&found), sorted(vec![anywhere.id.as_str()]));
}

#[test]
fn revoked_used_up_expired_and_ended_grants_leave_the_index() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    let revoked = store.issue_grant(grant(&t, "a", None, 60_000)).unwrap();
    let once = store.issue_grant(grant(&t, "b", Some(1), 60_000)).unwrap();
    let brief = store.issue_grant(grant(&t, "c*", None, 50)).unwrap();
    let kept = store.issue_grant(grant(&t, "d", None, 60_000)).unwrap();
    assert_eq!(indexed(&store, &t.id), 4);

    store.revoke_grant(&revoked.id, ending("stop")).unwrap();
    assert_eq!(indexed(&store, &t.id), 3);
    assert!(store.live_grants(&t.id, "r", "a", now_ms()).is_empty());

    store.consume(&once.id, now_ms()).unwrap();
    assert_eq!(indexed(&store, &t.id), 2, "its last use took it out");

    // An expired grant stops matching at once, and leaves at the sweep.
    let later = brief.expires_at_ms;
    assert!(store.live_grants(&t.id, "r", "cc", later).is_empty());
    assert_eq!(indexed(&store, &t.id), 2);
    store.sweep(later, 3_600_000).unwrap();
    assert_eq!(indexed(&store, &t.id), 1);
    assert_eq!(
        store.grants(&GrantFilter::default(), later).len(),
        4,
        "the index only: every grant is kept until purged"
    );
    assert_eq!(
        ids(&store.live_grants(&t.id, "r", "d", later)),
        sorted(vec![kept.id.as_str()])
    );

    store
        .end_task(&t.id, TaskState::Completed, ending("done"))
        .unwrap();
    assert_eq!(indexed(&store, &t.id), 0);
}

#[test]
fn a_grant_not_valid_yet_stays_in_the_index() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    let mut later = grant(&t, "a", None, 60_000);
    let from = now_ms() + 30_000;
    later.not_before_ms = Some(from);
    let later = store.issue_grant(later).unwrap();
    store.sweep(now_ms(), 3_600_000).unwrap();
    assert!(store.live_grants(&t.id, "r", "a", now_ms()).is_empty());
    assert_eq!(
        ids(&store.live_grants(&t.id, "r", "a", from)),
        sorted(vec![later.id.as_str()])
    );
}

#[test]
fn a_reloaded_store_indexes_only_the_grants_still_usable() {
    let (journal, store) = journaled();
    let t = store.create_task(task(60_000)).unwrap();
    let live = store.issue_grant(grant(&t, "a", None, 60_000)).unwrap();
    let revoked = store.issue_grant(grant(&t, "a", None, 60_000)).unwrap();
    let once = store.issue_grant(grant(&t, "a", Some(1), 60_000)).unwrap();
    store.revoke_grant(&revoked.id, ending("stop")).unwrap();
    store.consume(&once.id, now_ms()).unwrap();

    let again = MemoryStore::open(journal, StoreLimits::default()).unwrap();
    assert_eq!(indexed(&again, &t.id), 1);
    assert_eq!(again.by_task.get(t.id.as_str()).unwrap().len(), 3);
    assert_eq!(
        ids(&again.live_grants(&t.id, "r", "a", now_ms())),
        sorted(vec![live.id.as_str()])
    );
}

#[test]
fn the_covering_grants_come_oldest_first() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    // One base time for all three: `grant` reads the clock, which may tick
    // between the calls and reorder grants meant to be apart by 1 ms.
    let base = now_ms();
    let made_at = |tool: &str, offset: u64| {
        let mut g = grant(&t, tool, None, 60_000);
        g.created_at_ms = base + offset;
        g
    };
    let newer = store.issue_grant(made_at("a", 2)).unwrap();
    let glob = store.issue_grant(made_at("*", 1)).unwrap();
    let older = store.issue_grant(made_at("a", 0)).unwrap();
    let found = store.live_grants(&t.id, "r", "a", now_ms());
    let in_order: Vec<&str> = found.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(
        in_order,
        [older.id.as_str(), glob.id.as_str(), newer.id.as_str()]
    );
}
