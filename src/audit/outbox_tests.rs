use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::audit::entry::{Text, Texts};
use crate::audit::mask::Masks;
use crate::audit::render::Renderer;
use crate::identify::{Delegation, Workload};

fn workload() -> Identity {
    Identity::Workload(Arc::new(Workload {
        subject: "spiffe://example.org/agent/triage".into(),
        issuer: "https://spire.example.org".into(),
        spiffe: None,
        audience: vec!["https://tools.example.com/mcp".into()],
        scopes: vec!["tools:call".into()],
        expires_at: 4_000_000_000,
        claims: serde_json::Map::new(),
        delegation: Delegation::default(),
        task_id: Some("t-1".into()),
        derived: Default::default(),
    }))
}

fn evidence(module: &Arc<str>, outcome: Result<Verdict, &'static str>) -> Evidence {
    Evidence {
        module: Arc::clone(module),
        version: "1.2.0".into(),
        hash: "0123456789ab".into(),
        outcome,
        reason: outcome
            .is_err()
            .then(|| "trapped: \"unreachable\" é".to_owned()),
        grant: outcome.is_ok().then(|| "grant_7".to_owned()),
    }
}

/// A record with every kind of field filled: absent and empty strings,
/// masked arguments, a workload, two modules (one faulted), an upstream.
fn record(n: u64, masked: bool) -> DecisionEntry {
    let module: Arc<str> = "jit-grants".into();
    DecisionEntry {
        at_ms: 1_764_843_072_000 + n,
        phase: Phase::Call,
        text: Texts::new([
            Some("tools"),
            Some("tools/call"),
            Some("echo"),
            Some("task_1"),
            Some(""),
            Some("grant_7"),
            None,
            (!masked).then_some(r#"{"text":"hi ✓"}"#),
            Some("0af7651916cd43dd8448eb211c80319c"),
        ]),
        arguments: masked.then(|| json!({"secret": "s3cr3t", "n": n})),
        identity: workload(),
        verdict: Verdict::Allow,
        reason: Reason::PolicyAllow,
        evidence: Arc::from(vec![
            evidence(&module, Ok(Verdict::Allow)),
            evidence(&"allowlist".into(), Err("trap")),
        ]),
        identify: Duration::from_nanos(1_234),
        decide: Duration::from_nanos(56_789),
        total: Duration::from_micros(412),
        upstream: Some(Upstream::Status(200, Duration::from_micros(301))),
    }
}

fn line(renderer: &mut Renderer, d: &DecisionEntry) -> String {
    let mut buf = Vec::new();
    renderer.write_decision(d, 7, super::super::GENESIS, &mut buf);
    let mut line: serde_json::Value = serde_json::from_slice(&buf).unwrap();
    // A line's id is random in part: the rest must be the same.
    line.as_object_mut().unwrap().remove("id");
    line.to_string()
}

/// A record unlike [`record`]: other lengths, absent strings, no modules,
/// no workload, no upstream.
fn plain(n: u64) -> DecisionEntry {
    DecisionEntry {
        at_ms: 1_764_843_072_000 + n,
        phase: Phase::List,
        text: Texts::new([
            Some("route-ü"),
            Some("tools/list"),
            None,
            None,
            Some("no grant for “search”"),
            None,
            Some("appr_1"),
            Some("{}"),
            None,
        ]),
        arguments: None,
        identity: Identity::Anonymous,
        verdict: Verdict::Deny,
        reason: Reason::NoPolicy,
        evidence: Arc::from(Vec::new()),
        identify: Duration::from_nanos(9),
        decide: Duration::ZERO,
        total: Duration::from_micros(3),
        upstream: None,
    }
}

#[test]
fn decisions_read_from_one_mail_are_the_records_posted_and_render_the_same_lines() {
    let made = || {
        vec![
            record(1, false),
            plain(2),
            record(3, true),
            plain(4),
            record(5, false),
        ]
    };
    let before = made();
    let mut posted = made();
    let mut mail = Mail::default();
    for p in &mut posted {
        mail.push_decision(p);
        assert!(
            matches!(p.identity, Identity::Anonymous) && p.arguments.is_none(),
            "identity and masked arguments move into the mail"
        );
    }
    let masks = Arc::new(Masks::new(&[], None));
    let mut decoder = Decoder::default();
    let mut at = Cursor::default();
    for (i, before) in before.iter().enumerate() {
        assert!(
            matches!(mail.next(&mut at, &mut decoder), Some(Item::Decision)),
            "record {i}"
        );
        let after = &decoder.record;
        for which in [
            Text::Route,
            Text::Method,
            Text::Tool,
            Text::Task,
            Text::Message,
            Text::Grant,
            Text::Approval,
            Text::Arguments,
            Text::TraceId,
        ] {
            assert_eq!(
                after.text.get(which),
                before.text.get(which),
                "{i}: {which:?}"
            );
        }
        assert_eq!(after.at_ms, before.at_ms, "{i}");
        assert_eq!(after.phase, before.phase, "{i}");
        assert_eq!(after.verdict, before.verdict, "{i}");
        assert_eq!(after.reason, before.reason, "{i}");
        assert_eq!(after.identity, before.identity, "{i}");
        assert_eq!(after.arguments, before.arguments, "{i}");
        assert_eq!(&*after.evidence, &*before.evidence, "{i}");
        assert_eq!(
            (after.identify, after.decide, after.total),
            (before.identify, before.decide, before.total),
            "{i}"
        );
        assert_eq!(after.upstream, before.upstream, "{i}");
        let direct = line(&mut Renderer::new(Arc::clone(&masks), None), before);
        let read = line(&mut Renderer::new(Arc::clone(&masks), None), after);
        assert_eq!(read, direct, "record {i}");
    }
    assert!(mail.next(&mut at, &mut decoder).is_none());
    assert!(at.done(&mail));
}

#[test]
fn entries_come_out_in_the_order_posted_and_a_cursor_reads_them_again() {
    let mut mail = Mail::default();
    let (ack, _wait) = std::sync::mpsc::channel();
    mail.push_entry(super::super::tests::admin(0));
    mail.push_decision(&mut record(1, false));
    mail.push_decision(&mut record(2, true));
    mail.push_entry(super::super::tests::admin(3));
    mail.push_decision(&mut record(4, false));
    mail.push_entry(Entry::Stop(ack));
    assert_eq!(mail.len(), 6);
    let mut decoder = Decoder::default();
    let read = |at: &mut Cursor, decoder: &mut Decoder| {
        let mut seen = Vec::new();
        while let Some(item) = mail.next(at, decoder) {
            seen.push(match item {
                Item::Decision => format!("decision {}", decoder.record.at_ms % 1000),
                Item::Other(Entry::Admin(a)) => format!("admin {}", a.actor),
                Item::Other(Entry::Stop(_)) => "stop".to_owned(),
                Item::Other(other) => format!("{other:?}"),
            });
        }
        seen
    };
    let mut at = Cursor::default();
    let first = mail.next(&mut at, &mut decoder).map(|i| format!("{i:?}"));
    assert!(first.is_some_and(|i| i.starts_with("Other(Admin")));
    let retry = at;
    let all = read(&mut at, &mut decoder);
    assert_eq!(
        all,
        [
            "decision 1",
            "decision 2",
            "admin ops-3",
            "decision 4",
            "stop"
        ]
    );
    assert_eq!(at.left(&mail), 0);
    let mut again = retry;
    assert_eq!(
        read(&mut again, &mut decoder),
        all,
        "a copied cursor reads the same records again (a failed batch's retry)"
    );
    mail.clear();
    assert!(mail.is_empty());
    assert_eq!(Cursor::default().left(&mail), 0);
}

#[test]
fn one_module_is_one_set_of_strings_across_records() {
    let mut mail = Mail::default();
    mail.push_decision(&mut record(1, false));
    mail.push_decision(&mut record(2, false));
    let mut decoder = Decoder::default();
    let mut at = Cursor::default();
    mail.next(&mut at, &mut decoder);
    let first = Arc::clone(&decoder.record.evidence);
    mail.next(&mut at, &mut decoder);
    let second = &decoder.record.evidence;
    for (a, b) in first.iter().zip(second.iter()) {
        assert!(Arc::ptr_eq(&a.module, &b.module) && Arc::ptr_eq(&a.hash, &b.hash));
    }
    assert!(!Arc::ptr_eq(&first[0].module, &first[1].module));
}

#[test]
fn places_are_reserved_up_to_capacity_and_given_back_unused_or_taken() {
    let outbox = Arc::new(Outbox::new(2, |_| {}));
    let a = outbox.reserve().expect("first place");
    let b = outbox.reserve().expect("second place");
    assert!(outbox.reserve().is_none() && !outbox.has_room(), "full");
    drop(b);
    assert_eq!(outbox.held(), 1, "an unused permit gives its place back");
    a.send_decision(&mut record(1, false));
    let c = outbox.reserve().expect("the place given back");
    c.send(super::super::tests::admin(2));
    assert_eq!(outbox.held(), 2, "posted records hold their places");
    assert!(outbox.reserve().is_none());
    let mut mail = Mail::default();
    assert!(outbox.take(&mut mail, Duration::ZERO));
    assert_eq!(mail.len(), 2);
    assert!(
        outbox.reserve().is_none(),
        "taken but not yet written: still held"
    );
    outbox.written(2);
    assert_eq!(outbox.held(), 0, "written records free their places");
    assert!(!outbox.take(&mut Mail::default(), Duration::ZERO), "empty");
    let (ack, _stopped) = std::sync::mpsc::channel();
    let full = [outbox.reserve(), outbox.reserve()];
    assert!(full.iter().all(Option::is_some) && outbox.reserve().is_none());
    outbox.post_stop(ack);
    assert_eq!(outbox.held(), 3, "past capacity: the stop is never refused");
}

#[test]
fn a_waiting_writer_is_woken_by_the_first_record() {
    let outbox = Arc::new(Outbox::new(8, |_| {}));
    let poster = {
        let outbox = Arc::clone(&outbox);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            outbox
                .reserve()
                .expect("room")
                .send_decision(&mut record(1, false));
        })
    };
    let mut mail = Mail::default();
    // Generous: the test proves the wake-up (not a timeout running out),
    // not its speed.
    let waited = std::time::Instant::now();
    assert!(outbox.take(&mut mail, Duration::from_secs(60)));
    assert!(
        waited.elapsed() < Duration::from_secs(30),
        "woken, not timed out"
    );
    assert_eq!(mail.len(), 1);
    poster.join().unwrap();
}

#[test]
fn a_shut_outbox_takes_nothing_answers_a_waiting_stop_and_counts_every_record_lost() {
    let lost = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&lost);
    let outbox = Arc::new(Outbox::new(8, move |n| {
        counted.fetch_add(n, Ordering::Relaxed);
    }));
    let held = outbox.reserve().expect("room");
    outbox
        .reserve()
        .expect("room")
        .send_decision(&mut record(1, false));
    let (ack, stopped) = std::sync::mpsc::channel();
    outbox.post_stop(ack);
    outbox.shut();
    assert_eq!(
        lost.load(Ordering::Relaxed),
        1,
        "the waiting decision, not the stop"
    );
    assert!(
        matches!(
            stopped.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Disconnected)
        ),
        "a close waiting on the stop returns at once"
    );
    assert!(outbox.reserve().is_none() && !outbox.has_room());
    held.send(super::super::tests::admin(2));
    assert_eq!(
        lost.load(Ordering::Relaxed),
        2,
        "posted on a permit held across the stop"
    );
    assert!(!outbox.take(&mut Mail::default(), Duration::ZERO));
}

#[test]
fn a_mail_keeps_its_room_after_a_usual_batch_but_not_after_a_burst() {
    let mut mail = Mail::default();
    mail.push_decision(&mut record(1, false));
    mail.push_entry(super::super::tests::admin(2));
    mail.clear();
    assert!(mail.is_empty());
    assert!(
        mail.text.capacity() > 0 && mail.others.capacity() > 0,
        "kept"
    );
    for i in 0..=KEEP_RECORDS {
        mail.push_entry(super::super::tests::admin(i));
    }
    mail.clear();
    assert!(mail.is_empty());
    assert_eq!(mail.others.capacity(), 0, "a burst's room is freed");
}
