use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::identify::{Delegation, Workload};
use crate::store::memory::StoreLimits;
use crate::store::{Ending, MemoryStore};

fn who(subject: &str, task: Option<&str>, acting: Option<&str>) -> Identity {
    let delegation = match acting {
        Some(agent) => Delegation {
            user: Some(subject.into()),
            agent: Some(agent.into()),
            intermediaries: Vec::new(),
        },
        None => Delegation::default(),
    };
    Identity::Workload(Arc::new(Workload {
        subject: subject.into(),
        issuer: "https://issuer.test".into(),
        spiffe: None,
        audience: Vec::new(),
        scopes: Vec::new(),
        expires_at: 4_000_000_000,
        claims: serde_json::Map::new(),
        delegation,
        task_id: task.map(str::to_owned),
        derived: Default::default(),
    }))
}

fn store_with(agent: &str, on_behalf_of: Option<&str>) -> (MemoryStore, String) {
    let store = MemoryStore::in_memory(StoreLimits::default());
    let now = now_ms();
    let task = store
        .create_task(Task {
            id: "task_1".into(),
            agent: agent.into(),
            issuer: None,
            on_behalf_of: on_behalf_of.map(str::to_owned),
            purpose: "p".into(),
            labels: BTreeMap::new(),
            created_at_ms: now,
            expires_at_ms: now + 60_000,
            created_by: "ops".into(),
            state: TaskState::Active,
            ended: None,
        })
        .unwrap();
    (store, task.id)
}

fn hint(id: Option<&str>) -> RequestFacts {
    RequestFacts {
        task_hint: id.map(str::to_owned),
        ..RequestFacts::default()
    }
}

fn reason(scope: &Scope) -> Option<&'static str> {
    match scope {
        Scope::Refused { reason, .. } => Some(reason.as_str()),
        Scope::None | Scope::Active(_) => None,
    }
}

#[test]
fn a_task_is_trusted_only_for_its_own_agent() {
    let (store, id) = store_with("agent-a", None);
    let now = now_ms();
    let a = who("agent-a", None, None);
    assert!(matches!(resolve(&store, &a, &hint(None), now), Scope::None));
    assert!(matches!(
        resolve(&store, &a, &hint(Some(&id)), now),
        Scope::Active(_)
    ));
    let claimed = who("agent-a", Some(&id), None);
    assert!(matches!(
        resolve(&store, &claimed, &hint(None), now),
        Scope::Active(_)
    ));
    let b = who("agent-b", None, None);
    assert_eq!(
        reason(&resolve(&store, &b, &hint(Some(&id)), now)),
        Some("task_invalid")
    );
    assert_eq!(
        reason(&resolve(&store, &a, &hint(Some("task_x")), now)),
        Some("task_invalid")
    );
    assert_eq!(
        reason(&resolve(&store, &claimed, &hint(Some("task_x")), now)),
        Some("task_invalid"),
        "claim and header disagree"
    );
    assert_eq!(
        reason(&resolve(
            &store,
            &Identity::Anonymous,
            &hint(Some(&id)),
            now
        )),
        Some("task_invalid")
    );
}

#[test]
fn a_task_bound_to_an_issuer_refuses_the_same_subject_from_another() {
    let (store, _) = store_with("agent-a", None);
    let now = now_ms();
    let mut task = store.task("task_1").unwrap();
    task.id = "task_2".into();
    task.issuer = Some("https://issuer.test".into());
    store.create_task(task).unwrap();
    let same = who("agent-a", None, None);
    assert!(matches!(
        resolve(&store, &same, &hint(Some("task_2")), now),
        Scope::Active(_)
    ));
    let Identity::Workload(w) = same else {
        unreachable!()
    };
    let mut other = (*w).clone();
    other.issuer = "https://other-issuer.test".into();
    let other = Identity::Workload(Arc::new(other));
    assert_eq!(
        reason(&resolve(&store, &other, &hint(Some("task_2")), now)),
        Some("task_invalid")
    );
    assert!(
        matches!(
            resolve(&store, &other, &hint(Some("task_1")), now),
            Scope::Active(_)
        ),
        "unbound tasks take any trusted issuer"
    );
}

#[test]
fn delegated_callers_match_agent_and_user() {
    let (store, id) = store_with("agent-a", Some("alice"));
    let now = now_ms();
    let alice_via_a = who("alice", None, Some("agent-a"));
    assert!(matches!(
        resolve(&store, &alice_via_a, &hint(Some(&id)), now),
        Scope::Active(_)
    ));
    let bob_via_a = who("bob", None, Some("agent-a"));
    assert_eq!(
        reason(&resolve(&store, &bob_via_a, &hint(Some(&id)), now)),
        Some("task_invalid")
    );
    let a_alone = who("agent-a", None, None);
    assert_eq!(
        reason(&resolve(&store, &a_alone, &hint(Some(&id)), now)),
        Some("task_invalid"),
        "a task for alice needs a token acting for alice"
    );
}

#[test]
fn ended_and_expired_tasks_refuse_with_task_ended() {
    let (store, id) = store_with("agent-a", None);
    let a = who("agent-a", None, None);
    let later = now_ms() + 120_000;
    assert_eq!(
        reason(&resolve(&store, &a, &hint(Some(&id)), later)),
        Some("task_ended")
    );
    store
        .end_task(
            &id,
            TaskState::Cancelled,
            Ending {
                by: "ops".into(),
                at_ms: now_ms(),
                why: String::new(),
            },
        )
        .unwrap();
    let live = Live::build(&store, &a, &hint(Some(&id)));
    let refusal = live.refusal().expect("refused");
    assert_eq!(refusal.reason.as_str(), "task_ended");
    assert!(refusal.message.contains("cancelled"));
    assert_eq!(refusal.task.as_deref(), Some(id.as_str()));
}

#[test]
fn the_wire_context_follows_the_abi() {
    let (store, id) = store_with("agent-a", None);
    let now = now_ms();
    // 30.5 to 31.5 s from now, within the task's minute: the grant is still
    // live when the contexts below read the clock, however late on a loaded
    // machine; and it ends mid-second, so that `expires_at` shows rounding up.
    let expires_at_ms = (now / 1000 + 31) * 1000 + 500;
    let grant = crate::store::Grant {
        id: "grant_1".into(),
        task_id: id.clone(),
        agent: "agent-a".into(),
        tool: "read_*".into(),
        tool_exact: false,
        route: Some("fs".into()),
        constraints: vec![],
        not_before_ms: None,
        expires_at_ms,
        max_uses: Some(3),
        uses: 1,
        reason: "r".into(),
        granted_by: "ops".into(),
        created_at_ms: now,
        source: crate::store::GrantSource::Operator,
        argument_digest: None,
        revoked: None,
    };
    store.issue_grant(grant).unwrap();
    store.begin_call(&id, "read_file");
    store.finish_call(
        &id,
        crate::store::RecentCall {
            tool: "read_file".into(),
            route: "fs".into(),
            decision: "allow".into(),
            at_ms: now,
        },
        false,
    );
    // `build` reads the clock once, somewhere between these two readings.
    let before = now_ms();
    let live = Live::build(&store, &who("agent-a", None, None), &hint(Some(&id)));
    let after = now_ms();
    let (wire, grants) = live.for_tool(&store, "fs", "read_file");
    assert_eq!(grants.len(), 1);
    let v = |raw: &Option<Arc<RawValue>>| {
        serde_json::from_str::<serde_json::Value>(raw.as_ref().unwrap().get()).unwrap()
    };
    // Counters and recent calls are serialized when first read: from the
    // activity as it stood when the call was counted, however late.
    let lazy = |json: &crate::decide::LazyJson| {
        serde_json::from_str::<serde_json::Value>(json.get().unwrap().get()).unwrap()
    };
    let task = lazy(&wire.task);
    assert_eq!(task["id"], id.as_str());
    let left = task["remaining_secs"].as_u64().unwrap();
    let ends = store.task(&id).unwrap().expires_at_ms;
    let whole_secs_left = |at: u64| ends.saturating_sub(at) / 1000;
    assert!(
        (whole_secs_left(after)..=whole_secs_left(before)).contains(&left),
        "{task}: built between {before} and {after}, the task ends at {ends}"
    );
    let g = v(&wire.grants);
    assert_eq!(g[0]["uses_left"], 2);
    assert_eq!(g[0]["route"], "fs");
    assert_eq!(
        g[0]["expires_at"].as_u64().unwrap(),
        now / 1000 + 32,
        "rounded up"
    );
    assert_eq!(lazy(&wire.counters)["per_tool"]["read_file"], 1);
    assert_eq!(lazy(&wire.recent_calls)[0]["decision"], "allow");
    // A call is counted before it is decided; policy sees the ones before it.
    let (first, _) = live.for_call(&store, "fs", "read_file");
    let (second, _) = live.for_call(&store, "fs", "read_file");
    assert_eq!(lazy(&first.counters)["per_tool"]["read_file"], 1);
    assert_eq!(lazy(&second.counters)["per_tool"]["read_file"], 2);
    assert_eq!(lazy(&second.counters)["total"], 2);
    // Another tool or route: no grants.
    assert!(live.for_tool(&store, "fs", "write_file").1.is_empty());
    assert!(live.for_tool(&store, "db", "read_file").1.is_empty());
    // A list's contexts are each tool's own, whichever tool came before.
    let tools = ["read_file", "read_dir", "write_file", "read_file"];
    let listed = live.for_tools(&store, "fs", &tools);
    assert_eq!(listed.len(), tools.len());
    for (tool, wire) in tools.iter().zip(&listed) {
        let (own, _) = live.for_tool(&store, "fs", tool);
        let text = |raw: &Option<Arc<RawValue>>| raw.as_ref().map(|r| r.get().to_owned());
        assert_eq!(text(&wire.grants), text(&own.grants), "{tool}");
        assert_eq!(lazy(&wire.task), lazy(&own.task), "{tool}");
        assert_eq!(lazy(&wire.counters), lazy(&own.counters), "{tool}");
    }
    assert!(listed[2].grants.is_none());
    assert!(
        Live::none().for_tools(&store, "fs", &tools)[0]
            .grants
            .is_none()
    );
}
