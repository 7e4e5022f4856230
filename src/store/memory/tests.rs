use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Barrier, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::store::disk::{self, Image};
use crate::store::model::{
    ApprovalKind, ApprovalState, Constraint, ConstraintTest, GrantSource, RequestedGrant,
    argument_digest, new_id, now_ms,
};

/// A journal kept in memory, to prove what the store writes and reloads.
#[derive(Debug, Default)]
struct TestJournal {
    image: Mutex<BTreeMap<String, Record>>,
    fail: AtomicBool,
    /// Fail only the writes that put a grant.
    fail_grants: AtomicBool,
    /// Writes that landed.
    writes: AtomicUsize,
    /// While set, a write says so on the sender and waits on the receiver.
    gate: Mutex<Option<Gate>>,
}

/// Where a held write reports that it waits, and what releases it.
type Gate = (Sender<()>, Arc<Mutex<Receiver<()>>>);

impl TestJournal {
    /// Holds every write until the returned sender releases it; the
    /// receiver hears of each write that starts waiting.
    fn close_gate(&self) -> (Sender<()>, Receiver<()>) {
        let (entered, waiting) = mpsc::channel();
        let (release, held) = mpsc::channel();
        *self.gate.lock().unwrap() = Some((entered, Arc::new(Mutex::new(held))));
        (release, waiting)
    }

    fn open_gate(&self, release: &Sender<()>) {
        *self.gate.lock().unwrap() = None;
        let _ = release.send(());
    }

    fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }
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
        let gate = self.gate.lock().unwrap().clone();
        if let Some((entered, held)) = gate {
            let _ = entered.send(());
            let _ = held.lock().unwrap().recv();
        }
        if self.fail.load(Ordering::SeqCst)
            || (self.fail_grants.load(Ordering::SeqCst)
                && put.iter().any(|r| matches!(r, Record::Grant(_))))
        {
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
        self.writes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn journaled() -> (Arc<TestJournal>, Arc<MemoryStore>) {
    let journal = Arc::new(TestJournal::default());
    let store = MemoryStore::open(journal.clone(), StoreLimits::default()).unwrap();
    (journal, Arc::new(store))
}

fn call(tool: &str, decision: &str, at_ms: u64) -> RecentCall {
    RecentCall {
        tool: tool.into(),
        route: "r".into(),
        decision: decision.into(),
        at_ms,
    }
}

fn task(ttl_ms: u64) -> Task {
    let now = now_ms();
    Task {
        id: new_id("task"),
        agent: "spiffe://example.org/agent".into(),
        issuer: None,
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
        tool_exact: false,
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

/// `grant`, made the moment `task` was created instead of now. A task that
/// lives a few milliseconds may be over by the time the clock is read again
/// (a preempted test), and `issue_grant` refuses a grant made after its
/// task ended.
fn grant_at_start(task: &Task, tool: &str, ttl_ms: u64) -> Grant {
    Grant {
        created_at_ms: task.created_at_ms,
        expires_at_ms: task.created_at_ms + ttl_ms,
        ..grant(task, tool, None, ttl_ms)
    }
}

fn ending(why: &str) -> Ending {
    Ending {
        by: "ops".into(),
        at_ms: now_ms(),
        why: why.into(),
    }
}

/// `approval`, made the moment `task` was created instead of now: see
/// [`grant_at_start`] (`park` refuses an approval made after its task ended).
fn approval_at_start(task: &Task, tool: &str) -> Approval {
    Approval {
        created_at_ms: task.created_at_ms,
        expires_at_ms: task.created_at_ms + 60_000,
        ..approval(task, tool)
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
    let barrier = Arc::new(Barrier::new(64));
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
    // The grant's own times, not the clock's: 50 ms may be gone by now.
    for live in [g.created_at_ms, g.expires_at_ms - 1] {
        assert_eq!(store.live_grants(&t.id, "fs", "read_file", live).len(), 1);
    }
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
    assert!(store.grants.is_empty());
}

#[test]
fn tasks_expire_on_their_own() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(10)).unwrap();
    let g = store.issue_grant(grant_at_start(&t, "*", 60_000)).unwrap();
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
    journal.fail.store(true, Ordering::SeqCst);
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
    store.begin_call(&t.id, "read_file");
    store.finish_call(&t.id, call("read_file", "allow", now_ms()), false);
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
        let tool = format!("tool{}", i % 2);
        let before = store.begin_call("t", &tool);
        assert_eq!(before.counters.total, i, "policy sees the calls before");
        store.finish_call("t", call(&tool, "deny", i), i % 3 == 0);
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

// === counting calls ===

#[test]
fn concurrent_calls_each_see_a_different_count() {
    let store = Arc::new(MemoryStore::in_memory(StoreLimits::default()));
    let t = store.create_task(task(60_000)).unwrap();
    let barrier = Arc::new(Barrier::new(64));
    let handles: Vec<_> = (0..64)
        .map(|_| {
            let (store, barrier, id) = (Arc::clone(&store), Arc::clone(&barrier), t.id.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let before = store.begin_call(&id, "read_file");
                let per_tool = before.counters.per_tool.get("read_file").copied();
                (before.counters.total, per_tool.unwrap_or(0))
            })
        })
        .collect();
    let (mut totals, mut per_tool): (Vec<u64>, Vec<u64>) =
        handles.into_iter().map(|h| h.join().unwrap()).unzip();
    totals.sort_unstable();
    per_tool.sort_unstable();
    let expected: Vec<u64> = (0..64).collect();
    assert_eq!(totals, expected, "no two calls saw the same total");
    assert_eq!(
        per_tool, expected,
        "no two calls saw the same per-tool count"
    );
    let after = store.activity(&t.id).counters;
    assert_eq!((after.total, after.per_tool["read_file"]), (64, 64));
}

#[test]
fn tool_names_are_clipped_and_tools_counted_are_capped() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let huge = "x".repeat(100_000);
    store.begin_call("t", &huge);
    store.finish_call("t", call(&huge, "deny", 1), true);
    let wide = "é".repeat(200);
    store.begin_call("t", &wide);
    let a = store.activity("t");
    assert_eq!(a.counters.per_tool["x".repeat(128).as_str()], 1);
    assert_eq!(a.counters.per_tool["é".repeat(128).as_str()], 1);
    assert!(a.counters.per_tool.keys().all(|k| k.chars().count() <= 128));
    assert_eq!(a.recent[0].tool, "x".repeat(128));
    for i in 0..2 * MAX_TOOLS_COUNTED {
        store.begin_call("t", &format!("tool{i}"));
    }
    let a = store.activity("t");
    assert_eq!(a.counters.per_tool.len(), MAX_TOOLS_COUNTED);
    assert_eq!(a.counters.total, 2 + 2 * MAX_TOOLS_COUNTED as u64);
}

// === journal writes ===

#[test]
fn no_map_lock_is_held_across_a_journal_write() {
    let (journal, store) = journaled();
    let t = store.create_task(task(60_000)).unwrap();
    for change in ["consume", "revoke_grant"] {
        let g = store
            .issue_grant(grant(&t, "read_*", Some(5), 60_000))
            .unwrap();
        let (release, waiting) = journal.close_gate();
        let writer = {
            let (store, id) = (Arc::clone(&store), g.id.clone());
            std::thread::spawn(move || match change {
                "consume" => store.consume(&id, now_ms()).map(drop),
                _ => store.revoke_grant(&id, ending("stop")).map(drop),
            })
        };
        waiting
            .recv_timeout(Duration::from_secs(10))
            .expect("the write started");
        let (seen, heard) = mpsc::channel();
        let reader = {
            let (store, task_id, id) = (Arc::clone(&store), t.id.clone(), g.id.clone());
            std::thread::spawn(move || {
                let live = store.live_grants(&task_id, "fs", "read_file", now_ms());
                let _ = seen.send((live.len(), store.grant(&id).is_some()));
            })
        };
        let read = heard.recv_timeout(Duration::from_secs(2));
        journal.open_gate(&release);
        writer.join().unwrap().unwrap();
        reader.join().unwrap();
        assert!(read.is_ok(), "{change}: a reader waited for the fsync");
    }
}

#[test]
fn many_grants_are_revoked_in_one_journal_write() {
    let (journal, store) = journaled();
    let with_grants = |ttl_ms| {
        let t = store.create_task(task(ttl_ms)).unwrap();
        for _ in 0..5 {
            store.issue_grant(grant_at_start(&t, "*", 60_000)).unwrap();
        }
        t
    };
    let revoked_all = |t: &Task| {
        store
            .grants(&GrantFilter::default(), now_ms())
            .iter()
            .filter(|g| g.task_id == t.id)
            .all(|g| g.revoked.is_some())
    };

    let a = with_grants(60_000);
    let before = journal.writes();
    let ids = store
        .revoke_grants(&RevokeScope::Task(a.id.clone()), ending("t"))
        .unwrap();
    assert_eq!((ids.len(), journal.writes() - before), (5, 1));
    assert!(revoked_all(&a));

    let b = with_grants(60_000);
    let before = journal.writes();
    store
        .end_task(&b.id, TaskState::Completed, ending("done"))
        .unwrap();
    assert_eq!(journal.writes() - before, 2, "the task, then its grants");
    assert!(revoked_all(&b));

    let c = with_grants(10);
    let before = journal.writes();
    let swept = store.sweep(c.expires_at_ms + 1, 3_600_000).unwrap();
    assert_eq!(swept.tasks_expired, 1);
    assert_eq!(journal.writes() - before, 1, "the task with its grants");
    assert!(revoked_all(&c));
}

#[test]
fn a_task_ends_even_if_revoking_its_grants_fails_and_the_sweep_finishes() {
    let (journal, store) = journaled();
    let t = store.create_task(task(60_000)).unwrap();
    let g = store.issue_grant(grant(&t, "*", None, 60_000)).unwrap();
    let p = store.park(approval(&t, "read_file")).unwrap();
    journal.fail_grants.store(true, Ordering::SeqCst);
    let ended = store
        .end_task(&t.id, TaskState::Cancelled, ending("stop"))
        .expect("the task's own record was journaled");
    assert_eq!(ended.state, TaskState::Cancelled);
    assert!(matches!(
        store.consume(&g.id, now_ms()),
        Err(Error::TaskEnded {
            state: "cancelled",
            ..
        })
    ));
    let mut late = grant(&t, "*", None, 60_000);
    late.argument_digest = Some(p.argument_digest.clone());
    assert!(matches!(
        store.approve(&p.id, late, ending("ok")),
        Err(Error::TaskEnded { .. })
    ));

    journal.fail_grants.store(false, Ordering::SeqCst);
    store.sweep(now_ms(), 3_600_000).unwrap();
    let store = MemoryStore::open(journal, StoreLimits::default()).unwrap();
    assert_eq!(store.task(&t.id).unwrap().state, TaskState::Cancelled);
    assert_eq!(
        store.grant(&g.id).unwrap().revoked.unwrap().why,
        "task cancelled"
    );
    let p = store.approval(&p.id).unwrap();
    assert_eq!(p.state, ApprovalState::Expired);
    let decided = p.decided.unwrap();
    assert_eq!(
        (decided.by.as_str(), decided.why.as_str()),
        ("toolgate", "task cancelled")
    );
}

#[test]
fn ending_a_task_expires_its_pending_approvals() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let a = store.create_task(task(60_000)).unwrap();
    let b = store.create_task(task(10)).unwrap();
    let on_a = store.park(approval(&a, "read_file")).unwrap();
    let on_b = store.park(approval_at_start(&b, "read_file")).unwrap();
    store
        .end_task(&a.id, TaskState::Completed, ending("done"))
        .unwrap();
    let on_a = store.approval(&on_a.id).unwrap();
    assert_eq!(on_a.state, ApprovalState::Expired);
    let decided = on_a.decided.unwrap();
    assert_eq!(
        (decided.by.as_str(), decided.why.as_str()),
        ("toolgate", "task completed")
    );
    let swept = store.sweep(b.expires_at_ms + 1, 3_600_000).unwrap();
    assert_eq!((swept.tasks_expired, swept.approvals_expired), (1, 1));
    let on_b = store.approval(&on_b.id).unwrap();
    assert_eq!(on_b.state, ApprovalState::Expired);
    assert_eq!(on_b.decided.unwrap().why, "task expired");
}

#[test]
fn a_failed_sweep_keeps_what_it_did_not_flush() {
    let (journal, store) = journaled();
    let t = store.create_task(task(60_000)).unwrap();
    let g = store.issue_grant(grant(&t, "*", None, 60_000)).unwrap();
    for i in 0..3 {
        store.begin_call(&t.id, "read_file");
        store.finish_call(&t.id, call("read_file", "allow", i), false);
        store.consume(&g.id, now_ms()).unwrap();
    }
    journal.fail.store(true, Ordering::SeqCst);
    assert!(store.sweep(now_ms(), 3_600_000).is_err());
    journal.fail.store(false, Ordering::SeqCst);
    store.sweep(now_ms(), 3_600_000).unwrap();
    let store = MemoryStore::open(journal, StoreLimits::default()).unwrap();
    assert_eq!(store.activity(&t.id).counters.total, 3);
    assert_eq!(store.grant(&g.id).unwrap().uses, 3);
}

// === approvals ===

#[test]
fn approving_respects_the_grants_per_task_limit() {
    let limits = StoreLimits {
        max_grants_per_task: 1,
        ..StoreLimits::default()
    };
    let store = MemoryStore::in_memory(limits);
    let t = store.create_task(task(60_000)).unwrap();
    store.issue_grant(grant(&t, "*", None, 60_000)).unwrap();
    let p = store.park(approval(&t, "read_file")).unwrap();
    let e = store
        .approve(&p.id, grant(&t, "read_file", Some(1), 60_000), ending("ok"))
        .unwrap_err();
    assert!(matches!(e, Error::Limit(ref m) if m.contains("tasks.max_grants_per_task")));
    assert_eq!(store.approval(&p.id).unwrap().state, ApprovalState::Pending);
    assert_eq!(store.grants(&GrantFilter::default(), now_ms()).len(), 1);
}

#[test]
fn pending_approvals_are_capped_per_task() {
    let limits = StoreLimits {
        max_pending_per_task: 2,
        ..StoreLimits::default()
    };
    let store = MemoryStore::in_memory(limits);
    let a = store.create_task(task(60_000)).unwrap();
    let b = store.create_task(task(60_000)).unwrap();
    let first = store.park(approval(&a, "read_file")).unwrap();
    store.park(approval(&a, "write_file")).unwrap();
    let e = store.park(approval(&a, "delete_file")).unwrap_err();
    let Error::Limit(message) = e else {
        panic!("expected a limit, got {e:?}");
    };
    assert!(message.contains(&a.id) && message.contains("approvals.max_pending_per_task"));
    assert_eq!(
        store.park(approval(&a, "read_file")).unwrap().id,
        first.id,
        "an identical call still finds its approval"
    );
    store.park(approval(&b, "delete_file")).unwrap();
}

fn request(task: &Task, constraints: Vec<Constraint>) -> Approval {
    let arguments = Value::Null;
    Approval {
        kind: ApprovalKind::Request,
        tool: "create_issue".into(),
        route: "github".into(),
        argument_digest: argument_digest(&arguments),
        arguments,
        requested: Some(RequestedGrant {
            tool: "create_issue".into(),
            route: Some("github".into()),
            constraints,
            ttl_ms: 900_000,
            max_uses: Some(3),
        }),
        ..approval(task, "create_issue")
    }
}

#[test]
fn grant_requests_dedupe_only_on_the_same_requested_grant() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(60_000)).unwrap();
    let repo = || Constraint {
        pointer: "/repo".into(),
        test: ConstraintTest::Equals(json!("acme/app")),
    };
    let narrow = store.park(request(&t, vec![repo()])).unwrap();
    let broad = store.park(request(&t, Vec::new())).unwrap();
    assert_ne!(narrow.id, broad.id, "a broader request is a new approval");
    assert!(broad.requested.unwrap().constraints.is_empty());
    let again = store.park(request(&t, vec![repo()])).unwrap();
    assert_eq!(again.id, narrow.id);
    let mut longer = request(&t, vec![repo()]);
    if let Some(r) = longer.requested.as_mut() {
        r.ttl_ms *= 2;
    }
    assert_ne!(store.park(longer).unwrap().id, narrow.id);
}

// === purge ===

#[test]
fn purging_a_task_takes_its_approvals_grants_and_their_entries() {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let t = store.create_task(task(10)).unwrap();
    let g = store.issue_grant(grant_at_start(&t, "*", 60_000)).unwrap();
    let p = store.park(approval_at_start(&t, "read_file")).unwrap();
    store.begin_call(&t.id, "read_file");
    let end = t.expires_at_ms;
    store.sweep(end + 1_000, 3_600_000).unwrap();
    assert_eq!(store.grants.len(), 1);
    // The task ended at `end`, its grant and approval a second later: the
    // task is purged first, and nothing of it may stay behind.
    let swept = store.sweep(end + 500 + 3_600_000, 3_600_000).unwrap();
    assert_eq!((swept.grants_dropped, swept.purged), (1, 3));
    assert!(store.task(&t.id).is_none());
    assert!(store.grant(&g.id).is_none());
    assert!(store.approval(&p.id).is_none());
    assert!(store.grants.is_empty());
    assert!(store.by_task.is_empty());
    assert!(store.activity.is_empty());
}

mod index;

#[test]
fn a_grants_approval_is_named_without_a_copy_of_the_grant() {
    let store =
        MemoryStore::open(Arc::new(TestJournal::default()), StoreLimits::default()).unwrap();
    let t = store.create_task(task(60_000)).unwrap();
    let by_operator = store
        .issue_grant(grant(&t, "read_file", None, 60_000))
        .unwrap();
    let mut approved = grant(&t, "write_file", None, 60_000);
    approved.source = GrantSource::Approval {
        approval_id: "appr_1".into(),
    };
    approved.granted_by = "alice".into();
    let approved = store.issue_grant(approved).unwrap();
    let mut by_policy = grant(&t, "deploy", None, 60_000);
    by_policy.source = GrantSource::Policy {
        approval_id: "appr_2".into(),
        evidence: vec!["grants@0.1.0#abc".into()],
    };
    by_policy.granted_by = "policy".into();
    let by_policy = store.issue_grant(by_policy).unwrap();
    assert_eq!(store.grant_approval(&by_operator.id), None);
    assert_eq!(
        store.grant_approval(&approved.id),
        Some(("appr_1".into(), "alice".into()))
    );
    assert_eq!(
        store.grant_approval(&by_policy.id),
        Some(("appr_2".into(), "policy".into()))
    );
    assert_eq!(store.grant_approval("grant_unknown"), None);
    // The same answer as the default, read from a full copy.
    for id in [&by_operator.id, &approved.id, &by_policy.id] {
        assert_eq!(
            store.grant_approval(id),
            store.grant(id).and_then(|g| crate::store::approval_of(&g))
        );
    }
}
