use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::json;

use super::*;
use crate::store::disk::{self, Image};
use crate::store::model::{ApprovalKind, GrantSource, argument_digest, new_id, now_ms};

/// A journal kept in memory, to prove what the store writes and reloads.
#[derive(Debug, Default)]
struct TestJournal {
    image: Mutex<BTreeMap<String, Record>>,
    fail: std::sync::atomic::AtomicBool,
}

fn key_of(r: &Record) -> String {
    match r {
        Record::Task(t) => format!("task/{}", t.id),
        Record::Grant(g) => format!("grant/{}", g.id),
        Record::Approval(a) => format!("approval/{}", a.id),
        Record::Activity { task_id, .. } => format!("activity/{task_id}"),
    }
}

impl Durable for TestJournal {
    fn load(&self) -> Result<Image, disk::Error> {
        let mut image = Image::default();
        for r in self.image.lock().unwrap().values() {
            match r.clone() {
                Record::Task(t) => image.tasks.push(t),
                Record::Grant(g) => image.grants.push(g),
                Record::Approval(a) => image.approvals.push(a),
                Record::Activity { task_id, activity } => image.activity.push((task_id, activity)),
            }
        }
        Ok(image)
    }
    fn write(&self, put: &[Record], delete: &[Key]) -> Result<(), disk::Error> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(disk::Error::Write("disk full".into()));
        }
        let mut image = self.image.lock().unwrap();
        for r in put {
            image.insert(key_of(r), r.clone());
        }
        for k in delete {
            let key = match k {
                Key::Task(id) => format!("task/{id}"),
                Key::Grant(id) => format!("grant/{id}"),
                Key::Approval(id) => format!("approval/{id}"),
                Key::Activity(id) => format!("activity/{id}"),
            };
            image.remove(&key);
        }
        Ok(())
    }
}

fn task(ttl_ms: u64) -> Task {
    let now = now_ms();
    Task {
        id: new_id("task"),
        agent: "spiffe://example.org/agent".into(),
        on_behalf_of: None,
        purpose: "triage".into(),
        labels: BTreeMap::new(),
        created_at_ms: now,
        expires_at_ms: now + ttl_ms,
        created_by: "ops".into(),
        state: TaskState::Active,
        ended: None,
    }
}

fn grant(task: &Task, tool: &str, max_uses: Option<u64>, ttl_ms: u64) -> Grant {
    let now = now_ms();
    Grant {
        id: new_id("grant"),
        task_id: task.id.clone(),
        agent: task.agent.clone(),
        tool: tool.into(),
        route: None,
        constraints: Vec::new(),
        not_before_ms: None,
        expires_at_ms: now + ttl_ms,
        max_uses,
        uses: 0,
        reason: "test".into(),
        granted_by: "ops".into(),
        created_at_ms: now,
        source: GrantSource::Operator,
        argument_digest: None,
        revoked: None,
    }
}

fn ending(why: &str) -> Ending {
    Ending {
        by: "ops".into(),
        at_ms: now_ms(),
        why: why.into(),
    }
}

fn approval(task: &Task, tool: &str) -> Approval {
    let now = now_ms();
    let args = json!({"path": "/etc/passwd"});
    Approval {
        id: new_id("appr"),
        kind: ApprovalKind::Call,
        task_id: task.id.clone(),
        agent: task.agent.clone(),
        on_behalf_of: None,
        route: "fs".into(),
        tool: tool.into(),
        argument_digest: argument_digest(&args),
        arguments: args,
        why: "sensitive path".into(),
        requested: None,
        created_at_ms: now,
        expires_at_ms: now + 60_000,
        state: ApprovalState::Pending,
        decided: None,
        grant_id: None,
    }
}

#[test]
fn max_uses_is_exact_under_64_threads() {
    let store = Arc::new(
        MemoryStore::open(Arc::new(TestJournal::default()), StoreLimits::default()).unwrap(),
    );
    let t = store.create_task(task(60_000)).unwrap();
    let g = store
        .issue_grant(grant(&t, "read_*", Some(10), 60_000))
        .unwrap();
    let barrier = Arc::new(std::sync::Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (store, barrier, id) = (Arc::clone(&store), Arc::clone(&barrier), g.id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store.consume(&id, now_ms()).is_ok()
            })
        })
        .collect();
    let ok = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&ok| ok)
        .count();
    assert_eq!(ok, 10);
    assert_eq!(store.grant(&g.id).unwrap().uses, 10);
    assert!(matches!(
        store.consume(&g.id, now_ms()),
        Err(Error::GrantUnusable { .. })
    ));
}

#[test]
fn ending_a_task_ends_its_grants_and_refuses_new_ones() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    let g = store.issue_grant(grant(&t, "*", None, 60_000)).unwrap();
    assert_eq!(
        store.live_grants(&t.id, "fs", "read_file", now_ms()).len(),
        1
    );
    store
        .end_task(&t.id, TaskState::Completed, ending("done"))
        .unwrap();
    assert!(
        store
            .live_grants(&t.id, "fs", "read_file", now_ms())
            .is_empty()
    );
    assert!(store.grant(&g.id).unwrap().revoked.is_some());
    assert!(matches!(
        store.consume(&g.id, now_ms()),
        Err(Error::TaskEnded { .. })
    ));
    assert!(matches!(
        store.issue_grant(grant(&t, "*", None, 60_000)),
        Err(Error::TaskEnded {
            state: "completed",
            ..
        })
    ));
    assert!(matches!(
        store.end_task(&t.id, TaskState::Cancelled, ending("again")),
        Err(Error::TaskEnded { .. })
    ));
}

#[test]
fn expired_grants_stop_matching_at_once_and_are_swept() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    let g = store.issue_grant(grant(&t, "read_file", None, 50)).unwrap();
    let now = now_ms();
    assert_eq!(store.live_grants(&t.id, "fs", "read_file", now).len(), 1);
    let later = g.expires_at_ms;
    assert!(
        store
            .live_grants(&t.id, "fs", "read_file", later)
            .is_empty()
    );
    assert!(store.consume(&g.id, later).is_err());
    let swept = store.sweep(later + 10, 0).unwrap();
    assert_eq!(swept.grants_dropped, 1);
    assert!(store.grant(&g.id).is_none());
}

#[test]
fn tasks_expire_on_their_own() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(10)).unwrap();
    let g = store.issue_grant(grant(&t, "*", None, 60_000)).unwrap();
    let later = t.expires_at_ms + 1;
    assert!(matches!(
        store.consume(&g.id, later),
        Err(Error::TaskEnded {
            state: "expired",
            ..
        })
    ));
    let swept = store.sweep(later, 3_600_000).unwrap();
    assert_eq!(swept.tasks_expired, 1);
    let t = store.task(&t.id).unwrap();
    assert_eq!(t.state, TaskState::Expired);
    assert!(store.grant(&g.id).unwrap().revoked.is_some());
}

#[test]
fn revocation_by_task_and_by_agent() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let a = store.create_task(task(60_000)).unwrap();
    let b = store.create_task(task(60_000)).unwrap();
    let mut other = task(60_000);
    other.agent = "spiffe://example.org/other".into();
    let c = store.create_task(other).unwrap();
    for t in [&a, &a, &b, &c] {
        store.issue_grant(grant(t, "*", None, 60_000)).unwrap();
    }
    let by_task = store
        .revoke_grants(&RevokeScope::Task(a.id.clone()), ending("t"))
        .unwrap();
    assert_eq!(by_task.len(), 2);
    let by_agent = store
        .revoke_grants(
            &RevokeScope::Agent("spiffe://example.org/agent".into()),
            ending("hr"),
        )
        .unwrap();
    assert_eq!(by_agent.len(), 1, "a's grants were already revoked");
    assert_eq!(store.live_grants(&c.id, "r", "x", now_ms()).len(), 1);
}

#[test]
fn approvals_dedupe_approve_once_and_deny() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    let first = store.park(approval(&t, "read_file")).unwrap();
    let again = store.park(approval(&t, "read_file")).unwrap();
    assert_eq!(first.id, again.id, "identical pending call parks once");
    let mut g = grant(&t, "read_file", Some(1), 60_000);
    g.argument_digest = Some(first.argument_digest.clone());
    let (done, g) = store.approve(&first.id, g, ending("ok")).unwrap();
    assert_eq!(done.state, ApprovalState::Approved);
    assert_eq!(done.grant_id.as_deref(), Some(g.id.as_str()));
    let twice = store.approve(&first.id, grant(&t, "x", None, 1000), ending("again"));
    assert!(matches!(
        twice,
        Err(Error::NotPending {
            state: "approved",
            ..
        })
    ));
    let other = store.park(approval(&t, "write_file")).unwrap();
    let denied = store.deny(&other.id, ending("no")).unwrap();
    assert_eq!(denied.state, ApprovalState::Denied);
    assert_eq!(denied.decided.unwrap().why, "no");
}

#[test]
fn a_failed_journal_write_changes_nothing() {
    let journal = Arc::new(TestJournal::default());
    let store = MemoryStore::open(journal.clone(), StoreLimits::default()).unwrap();
    let t = store.create_task(task(60_000)).unwrap();
    let g = store.issue_grant(grant(&t, "*", Some(3), 60_000)).unwrap();
    journal
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        store.create_task(task(1000)),
        Err(Error::Durable(_))
    ));
    assert!(matches!(
        store.consume(&g.id, now_ms()),
        Err(Error::Durable(_))
    ));
    assert_eq!(
        store.grant(&g.id).unwrap().uses,
        0,
        "an unjournaled use is not granted"
    );
    assert!(
        store
            .end_task(&t.id, TaskState::Completed, ending("x"))
            .is_err()
    );
    assert!(store.task(&t.id).unwrap().is_active(now_ms()));
    assert_eq!(store.tasks(&TaskFilter::default()).len(), 1);
}

#[test]
fn reload_restores_everything_acknowledged() {
    let journal = Arc::new(TestJournal::default());
    let store = MemoryStore::open(journal.clone(), StoreLimits::default()).unwrap();
    let t = store.create_task(task(60_000)).unwrap();
    let g = store.issue_grant(grant(&t, "*", Some(5), 60_000)).unwrap();
    store.consume(&g.id, now_ms()).unwrap();
    store.consume(&g.id, now_ms()).unwrap();
    let p = store.park(approval(&t, "read_file")).unwrap();
    store.record_call(
        &t.id,
        RecentCall {
            tool: "read_file".into(),
            route: "fs".into(),
            decision: "allow".into(),
            at_ms: now_ms(),
        },
        false,
    );
    store.sweep(now_ms(), 3_600_000).unwrap();
    drop(store);
    let store = MemoryStore::open(journal, StoreLimits::default()).unwrap();
    assert_eq!(store.task(&t.id).unwrap(), t);
    assert_eq!(store.grant(&g.id).unwrap().uses, 2);
    assert_eq!(store.approval(&p.id).unwrap().state, ApprovalState::Pending);
    assert_eq!(store.activity(&t.id).counters.total, 1);
    assert_eq!(
        store.live_grants(&t.id, "fs", "read_file", now_ms()).len(),
        1
    );
}

#[test]
fn recent_calls_and_counters_are_bounded() {
    let limits = StoreLimits {
        recent_calls: 3,
        ..StoreLimits::default()
    };
    let store = MemoryStore::in_memory(limits);
    for i in 0..10 {
        store.record_call(
            "t",
            RecentCall {
                tool: format!("tool{}", i % 2),
                route: "r".into(),
                decision: "deny".into(),
                at_ms: i,
            },
            i % 3 == 0,
        );
    }
    let a = store.activity("t");
    assert_eq!(a.counters.total, 10);
    assert_eq!(a.counters.denied, 4);
    assert_eq!(a.counters.per_tool["tool0"], 5);
    assert_eq!(
        a.recent.iter().map(|c| c.at_ms).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
}

#[test]
fn limits_refuse_clearly() {
    let limits = StoreLimits {
        max_tasks: 1,
        max_grants_per_task: 1,
        ..StoreLimits::default()
    };
    let store = MemoryStore::in_memory(limits);
    let t = store.create_task(task(60_000)).unwrap();
    assert!(matches!(
        store.create_task(task(60_000)),
        Err(Error::Limit(_))
    ));
    store.issue_grant(grant(&t, "*", None, 1000)).unwrap();
    let e = store.issue_grant(grant(&t, "*", None, 1000)).unwrap_err();
    assert_eq!(e.code(), "limit_reached");
}
