use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::store::model::{
    Activity, ApprovalKind, ApprovalState, Constraint, ConstraintTest, Counters, GrantSource,
    Range, RecentCall, TaskState,
};

fn task(id: &str) -> Task {
    Task {
        id: id.into(),
        agent: "spiffe://toolgate.dev/agent/a".into(),
        issuer: None,
        on_behalf_of: Some("alice".into()),
        purpose: "close the quarter".into(),
        labels: BTreeMap::from([("team".into(), "finance".into())]),
        created_at_ms: 1,
        expires_at_ms: 2,
        created_by: "op".into(),
        state: TaskState::Active,
        ended: None,
    }
}

fn grant(id: &str) -> Grant {
    Grant {
        id: id.into(),
        task_id: "t1".into(),
        agent: "spiffe://toolgate.dev/agent/a".into(),
        tool: "pay_*".into(),
        tool_exact: false,
        route: Some("bank".into()),
        constraints: vec![Constraint {
            pointer: "/amount".into(),
            test: ConstraintTest::Range(Range {
                min: None,
                max: Some(100.0),
            }),
        }],
        not_before_ms: None,
        expires_at_ms: 9,
        max_uses: Some(3),
        uses: 1,
        reason: "invoice 42".into(),
        granted_by: "bob".into(),
        created_at_ms: 1,
        source: GrantSource::Approval {
            approval_id: "ap1".into(),
        },
        argument_digest: None,
        revoked: None,
    }
}

fn approval(id: &str) -> Approval {
    Approval {
        id: id.into(),
        kind: ApprovalKind::Call,
        task_id: "t1".into(),
        agent: "spiffe://toolgate.dev/agent/a".into(),
        on_behalf_of: None,
        route: "bank".into(),
        tool: "pay".into(),
        arguments: json!({"amount": 120}),
        argument_digest: "d".into(),
        why: "over the limit".into(),
        requested: None,
        created_at_ms: 1,
        expires_at_ms: 5,
        state: ApprovalState::Pending,
        decided: None,
        grant_id: None,
    }
}

fn activity() -> Activity {
    Activity {
        counters: Counters {
            total: 2,
            denied: 1,
            per_tool: BTreeMap::from([("pay".into(), 2)]),
        },
        recent: vec![std::sync::Arc::new(RecentCall {
            tool: "pay".into(),
            route: "bank".into(),
            decision: "deny".into(),
            at_ms: 3,
        })],
    }
}

fn every_kind() -> Vec<Record> {
    vec![
        Record::Task(task("t1")),
        Record::Grant(grant("g1")),
        Record::Approval(approval("ap1")),
        Record::Activity {
            task_id: "t1".into(),
            activity: activity(),
        },
    ]
}

fn store_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("tasks.store")
}

fn open_detail_of(result: Result<RedbJournal, Error>) -> String {
    match result {
        Err(Error::Open { detail, .. }) => detail,
        other => panic!("expected an Open error, got {other:?}"),
    }
}

/// Writes raw bytes under `table/key`, bypassing the journal's encoding.
fn put_raw(path: &Path, table: &str, key: &str, value: &[u8]) {
    let db = Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(TableDefinition::<&str, &[u8]>::new(table))
        .unwrap()
        .insert(key, value)
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn every_record_kind_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let journal = RedbJournal::open(&store_path(&dir)).unwrap();
    journal.write(&every_kind(), &[]).unwrap();
    let image = journal.load().unwrap();
    assert_eq!(image.tasks, vec![task("t1")]);
    assert_eq!(image.grants, vec![grant("g1")]);
    assert_eq!(image.approvals, vec![approval("ap1")]);
    assert_eq!(image.activity, vec![("t1".to_string(), activity())]);
}

#[test]
fn a_put_replaces_and_a_delete_removes() {
    let dir = tempfile::tempdir().unwrap();
    let journal = RedbJournal::open(&store_path(&dir)).unwrap();
    journal.write(&every_kind(), &[]).unwrap();
    let mut done = task("t1");
    done.state = TaskState::Completed;
    journal.write(&[Record::Task(done.clone())], &[]).unwrap();
    assert_eq!(journal.load().unwrap().tasks, vec![done]);

    let all = [
        Key::Task("t1".into()),
        Key::Grant("g1".into()),
        Key::Approval("ap1".into()),
        Key::Activity("t1".into()),
        Key::Grant("never-written".into()),
    ];
    journal.write(&[], &all).unwrap();
    let image = journal.load().unwrap();
    assert!(image.tasks.is_empty() && image.grants.is_empty());
    assert!(image.approvals.is_empty() && image.activity.is_empty());
    // Nothing to do opens no transaction and fails nothing.
    journal.write(&[], &[]).unwrap();
}

#[test]
fn a_reopened_journal_sees_everything_and_creates_directories() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/tasks.store");
    let journal = RedbJournal::open(&path).unwrap();
    journal.write(&every_kind(), &[]).unwrap();
    journal
        .write(
            &[Record::Grant(grant("g2"))],
            &[Key::Approval("ap1".into())],
        )
        .unwrap();
    drop(journal);

    let image = RedbJournal::open(&path).unwrap().load().unwrap();
    assert_eq!(image.tasks, vec![task("t1")]);
    assert_eq!(image.grants, vec![grant("g1"), grant("g2")]);
    assert!(image.approvals.is_empty());
    assert_eq!(image.activity.len(), 1);
}

#[test]
fn a_batch_is_seen_whole_or_not_at_all() {
    // A writer moves one task along (put t{n+1}, delete t{n}) while readers
    // load: every load sees exactly one task, never zero or two.
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(RedbJournal::open(&store_path(&dir)).unwrap());
    let first = [Record::Task(task("t0")), Record::Grant(grant("g0"))];
    journal.write(&first, &[]).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (journal, done) = (journal.clone(), done.clone());
            std::thread::spawn(move || {
                let mut loads = 0;
                while !done.load(Ordering::Relaxed) || loads == 0 {
                    let image = journal.load().unwrap();
                    assert_eq!(image.tasks.len(), 1, "a half-applied batch: {image:?}");
                    assert_eq!(image.grants.len(), 1);
                    loads += 1;
                }
            })
        })
        .collect();
    for n in 0..40 {
        let put = [
            Record::Task(task(&format!("t{}", n + 1))),
            Record::Grant(grant(&format!("g{}", n + 1))),
        ];
        let delete = [Key::Task(format!("t{n}")), Key::Grant(format!("g{n}"))];
        journal.write(&put, &delete).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(journal.load().unwrap().tasks, vec![task("t40")]);
}

#[test]
fn writers_on_many_threads_all_land() {
    fn shared<T: Send + Sync>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let journal = Arc::new(RedbJournal::open(&store_path(&dir)).unwrap());
    shared(&*journal);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let journal = journal.clone();
            std::thread::spawn(move || {
                for n in 0..8 {
                    let record = Record::Task(task(&format!("t{t}-{n}")));
                    journal.write(&[record], &[]).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(journal.load().unwrap().tasks.len(), 32);
}

#[test]
fn a_record_that_does_not_decode_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    RedbJournal::open(&path)
        .unwrap()
        .write(&every_kind(), &[])
        .unwrap();
    put_raw(&path, "grants", "g-bad", b"\x00not json");
    match RedbJournal::open(&path).unwrap().load() {
        Err(Error::Corrupt { key, detail }) => {
            assert_eq!(key, "grants/g-bad");
            assert!(!detail.is_empty());
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_record_under_another_id_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    drop(RedbJournal::open(&path).unwrap());
    put_raw(
        &path,
        "tasks",
        "t2",
        &serde_json::to_vec(&task("t1")).unwrap(),
    );
    let err = RedbJournal::open(&path).unwrap().load().unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { key, .. } if key == "tasks/t2"),
        "{err}"
    );
}

#[test]
fn a_second_open_of_an_open_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let first = RedbJournal::open(&path).unwrap();
    let err = RedbJournal::open(&path).unwrap_err();
    assert!(err.to_string().contains("another toolgate"), "{err}");
    assert!(err.to_string().contains("tasks.store"), "{err}");
    drop(first);
    RedbJournal::open(&path).unwrap();
}

#[test]
fn files_that_are_not_this_journal_are_refused() {
    let dir = tempfile::tempdir().unwrap();

    let text = dir.path().join("notes.txt");
    std::fs::write(
        &text,
        "these are not the records you are looking for\n".repeat(200),
    )
    .unwrap();
    let detail = open_detail_of(RedbJournal::open(&text));
    assert!(detail.contains("not a redb database"), "{detail}");

    let foreign = dir.path().join("foreign.redb");
    put_raw(&foreign, "users", "u1", b"{}");
    let detail = open_detail_of(RedbJournal::open(&foreign));
    assert!(detail.contains("not a toolgate journal"), "{detail}");

    let newer = store_path(&dir);
    drop(RedbJournal::open(&newer).unwrap());
    let db = Database::create(&newer).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert(FORMAT_KEY, FORMAT_VERSION + 1)
        .unwrap();
    txn.commit().unwrap();
    drop(db);
    let detail = open_detail_of(RedbJournal::open(&newer));
    assert!(detail.contains("version 2"), "{detail}");
}

#[test]
fn debug_shows_the_path_not_the_records() {
    let dir = tempfile::tempdir().unwrap();
    let journal = RedbJournal::open(&store_path(&dir)).unwrap();
    journal.write(&every_kind(), &[]).unwrap();
    let shown = format!("{journal:?}");
    assert!(shown.contains("tasks.store"), "{shown}");
    assert!(!shown.contains("close the quarter"), "{shown}");
}

// === crash safety ===

const CHILD_ENV: &str = "TOOLGATE_REDB_CRASH_WRITER";
const CHILD_TEST: &str = "store::disk::redb::tests::crash_writer_child";

/// Not a test on its own: with `CHILD_ENV` set it is the writer the crash
/// test kills. Prints `ack <id>` only after `write` returned Ok.
#[test]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let journal = RedbJournal::open(Path::new(&path)).unwrap();
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    // Bounded, in case the parent dies without killing us; and generously:
    // the parent kills us at its 200th ack, and on a loaded CI machine an
    // fsync'd commit may take far longer than the few ms it takes here.
    for n in 0.. {
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
        let id = format!("t{n}");
        let records = [
            Record::Task(task(&id)),
            Record::Activity {
                task_id: id.clone(),
                activity: activity(),
            },
        ];
        journal.write(&records, &[]).unwrap();
        // Straight to fd 1: the test harness captures `println!`.
        writeln!(out, "ack {id}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let path = store_path(&dir);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", CHILD_TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked = Vec::new();
    let mut killed = false;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("ack ") {
            acked.push(id.to_string());
        }
        if acked.len() >= 200 && !killed {
            child.kill().unwrap(); // SIGKILL on unix: no destructors, no flush.
            killed = true;
        }
        // Keep reading: acks already in the pipe were acknowledged too.
    }
    child.wait().unwrap();
    assert!(killed, "the writer stopped after {} acks", acked.len());

    let image = RedbJournal::open(&path).unwrap().load().unwrap();
    let tasks: std::collections::HashSet<_> = image.tasks.iter().map(|t| &t.id).collect();
    let lost: Vec<_> = acked.iter().filter(|id| !tasks.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    assert_eq!(image.tasks.len(), image.activity.len(), "a torn batch");
}
