use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use super::*;
use crate::store::disk::{Durable, Error as DiskError, Image, Key, Record};
use crate::store::memory::StoreLimits;
use crate::store::{GrantSource, MemoryStore, Store, Task, TaskState};

fn tasks_with_grant(max_uses: Option<u64>) -> (Arc<Tasks>, Grant) {
    with_grant(MemoryStore::in_memory(StoreLimits::default()), max_uses)
}

fn with_grant(store: MemoryStore, max_uses: Option<u64>) -> (Arc<Tasks>, Grant) {
    let now = now_ms();
    store
        .create_task(Task {
            id: "task_1".into(),
            agent: "agent".into(),
            issuer: None,
            on_behalf_of: None,
            purpose: "p".into(),
            labels: BTreeMap::new(),
            created_at_ms: now,
            expires_at_ms: now + 60_000,
            created_by: "ops".into(),
            state: TaskState::Active,
            ended: None,
        })
        .unwrap();
    let grant = store
        .issue_grant(Grant {
            id: "grant_1".into(),
            task_id: "task_1".into(),
            agent: "agent".into(),
            tool: "*".into(),
            tool_exact: false,
            route: None,
            constraints: Vec::new(),
            not_before_ms: None,
            expires_at_ms: now + 60_000,
            max_uses,
            uses: 0,
            reason: "test".into(),
            granted_by: "ops".into(),
            created_at_ms: now,
            source: GrantSource::Operator,
            argument_digest: None,
            revoked: None,
        })
        .unwrap();
    let tasks = Tasks::new(Arc::new(store), &prometheus::Registry::new());
    (tasks, grant)
}

#[test]
fn only_an_unlimited_grant_is_counted_inline() {
    let (_, unlimited) = tasks_with_grant(None);
    let (_, counted) = tasks_with_grant(Some(3));
    assert_eq!(hop(Some(&unlimited)), Hop::Inline);
    assert_eq!(hop(Some(&counted)), Hop::Blocking);
    assert_eq!(hop(None), Hop::Blocking);
}

/// No tokio runtime here: a hop to the blocking pool would panic, and a
/// use counted on this thread is ready at the first poll.
#[test]
fn an_unlimited_grant_is_used_without_a_blocking_hop() {
    let (tasks, grant) = tasks_with_grant(None);
    let mut cx = Context::from_waker(Waker::noop());
    for n in 1..=3 {
        let used = pin!(consume(&tasks, &grant.id, Some(&grant))).poll(&mut cx);
        let Poll::Ready(Ok(used)) = used else {
            panic!("use {n} of an unlimited grant was not counted at once: {used:?}");
        };
        assert_eq!(used.uses, n);
    }
    assert_eq!(tasks.store().grant(&grant.id).unwrap().uses, 3);
}

#[tokio::test]
async fn a_counted_grant_still_runs_out() {
    let (tasks, grant) = tasks_with_grant(Some(2));
    for _ in 0..2 {
        consume(&tasks, &grant.id, Some(&grant)).await.unwrap();
    }
    let (reason, why) = consume(&tasks, &grant.id, Some(&grant)).await.unwrap_err();
    assert_eq!(reason, Reason::GrantExhausted);
    assert!(why.starts_with("grant grant_1:"), "{why}");
}

/// A journal that takes writes until its disk is full.
#[derive(Debug, Default)]
struct Filling(std::sync::atomic::AtomicBool);

impl Durable for Filling {
    fn load(&self) -> Result<Image, DiskError> {
        Ok(Image::default())
    }

    fn write(&self, _: &[Record], _: &[Key]) -> Result<(), DiskError> {
        if self.0.load(std::sync::atomic::Ordering::SeqCst) {
            Err(DiskError::Write(
                "/var/lib/toolgate/tasks.redb: commit: No space left on device".into(),
            ))
        } else {
            Ok(())
        }
    }
}

#[tokio::test]
async fn a_counted_use_that_cannot_be_recorded_is_refused_as_store_unavailable() {
    let journal = Arc::new(Filling::default());
    let store = MemoryStore::open(Arc::clone(&journal) as _, StoreLimits::default()).unwrap();
    let (tasks, grant) = with_grant(store, Some(3));
    journal.0.store(true, std::sync::atomic::Ordering::SeqCst);
    let (reason, why) = consume(&tasks, &grant.id, Some(&grant)).await.unwrap_err();
    assert_eq!(reason, Reason::StoreUnavailable);
    assert!(why.contains("cannot be recorded"), "{why}");
    assert!(
        !why.contains("/var/lib"),
        "the agent never sees the store's path: {why}"
    );
    assert_eq!(
        tasks.store().grant(&grant.id).unwrap().uses,
        0,
        "not counted"
    );
}

#[tokio::test]
async fn an_unlimited_grant_of_an_ended_task_is_refused() {
    let (tasks, grant) = tasks_with_grant(None);
    tasks
        .store()
        .end_task(
            "task_1",
            TaskState::Completed,
            crate::store::Ending {
                at_ms: now_ms(),
                by: "ops".into(),
                why: String::new(),
            },
        )
        .unwrap();
    assert!(consume(&tasks, &grant.id, Some(&grant)).await.is_err());
}
