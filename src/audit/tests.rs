//! The writer and the reader together: a log written, continued after a
//! restart, rotated, and each kind of tampering found at the right line.

use std::path::{Path, PathBuf};

use super::entry::{AdminEntry, Entry};
use super::read::{Records, verify};
use super::{AuditLog, Error};
use crate::config::Audit;

fn config(dir: &Path, max_file_size: u64) -> Audit {
    let text = format!(
        "dir = {:?}\nmax_file_size = {max_file_size}\nfsync = \"never\"\nbatch_interval = \"0s\"\n",
        dir.display().to_string()
    );
    toml::from_str(&text).unwrap()
}

/// The sum of a counter's series whose labels include `label` (any, if
/// `None`).
fn counted(registry: &prometheus::Registry, name: &str, label: Option<&str>) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
        .filter(|m| label.is_none_or(|v| m.get_label().iter().any(|l| l.value() == v)))
        .map(|m| m.get_counter().get_value())
        .sum()
}

pub(super) fn admin(n: usize) -> Entry {
    Entry::Admin(Box::new(AdminEntry {
        at_ms: 1_764_843_072_000 + n as u64,
        actor: format!("ops-{n}"),
        role: "operator",
        action: "issue_grant".into(),
        target: Some(format!("grant_{n:04}")),
        outcome: "ok".into(),
        remote: None,
    }))
}

/// Waits until the writer has written `n` admin records in all; fails
/// after 10 s (it takes a few ms).
async fn admin_written(registry: &prometheus::Registry, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let written = counted(registry, "toolgate_audit_records_total", Some("admin"));
        if written >= n as f64 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{written} admin records written in 10 s, not {n}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Sends `n` admin records, numbered from `first`, four at a time, each
/// four written before the next are sent: the writer takes batches of four
/// at most, however busy the machine, and files rotate between batches —
/// so small files make several.
async fn send_in_fours(log: &AuditLog, registry: &prometheus::Registry, first: usize, n: usize) {
    for i in 0..n {
        log.send(admin(first + i));
        if i % 4 == 3 {
            admin_written(registry, i + 1).await;
        }
    }
}

/// Writes `n` admin records into `dir`, four to a batch at most, and
/// closes the log.
async fn write(dir: &Path, max_file_size: u64, n: usize) {
    let registry = prometheus::Registry::new();
    let log = AuditLog::start(&config(dir, max_file_size), None, &registry).unwrap();
    send_in_fours(&log, &registry, 0, n).await;
    log.close().await;
}

fn files(dir: &Path) -> Vec<PathBuf> {
    super::segment::list(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rewrite(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

fn bad_line(dir: &Path) -> (String, usize, String) {
    match verify(&[dir.to_path_buf()]) {
        Err(Error::Bad { file, line, what }) => (file, line, what),
        other => panic!("expected a bad line, got {other:?}"),
    }
}

#[tokio::test]
async fn an_untouched_log_verifies_and_continues_across_restarts() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 1 << 20, 5).await;
    write(tmp.path(), 1 << 20, 3).await;
    let summary = verify(&[tmp.path().to_path_buf()]).unwrap();
    // Per run: opened + records + sealed.
    assert_eq!((summary.files, summary.lines), (2, 12));
    assert_eq!((summary.first_seq, summary.last_seq), (Some(1), Some(12)));
    assert!(summary.head_checked);
    let records: Vec<_> = Records::open(&[tmp.path().to_path_buf()])
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let super::line::Body::Admin(a) = &records[1].body else {
        panic!("{:?}", records[1]);
    };
    assert_eq!(
        (a.actor.as_ref(), records[1].ts.as_str()),
        ("ops-0", "2025-12-04T10:11:12.000Z")
    );
    assert_eq!(records[1].at_ms, 1_764_843_072_000);
    let super::line::Body::Log(opened) = &records[7].body else {
        panic!("{:?}", records[7]);
    };
    let previous = opened.previous.as_ref().unwrap();
    assert_eq!(
        (previous.seq, previous.file.as_ref()),
        (7, "decisions-00000001.jsonl")
    );
}

#[tokio::test]
async fn an_edit_a_deletion_and_a_reorder_are_named_at_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 1 << 20, 6).await;
    let file = &files(tmp.path())[0];
    let good = lines(file);

    let mut edited = good.clone();
    edited[3] = edited[3].replace("ops-2", "ops-9");
    rewrite(file, &edited);
    let (_, line, what) = bad_line(tmp.path());
    assert_eq!(line, 4, "{what}");
    assert!(what.contains("altered"), "{what}");

    let mut deleted = good.clone();
    deleted.remove(3);
    rewrite(file, &deleted);
    let (_, line, what) = bad_line(tmp.path());
    assert_eq!(line, 4, "{what}");
    assert!(what.contains("missing"), "{what}");

    let mut reordered = good.clone();
    reordered.swap(2, 3);
    rewrite(file, &reordered);
    let (_, line, what) = bad_line(tmp.path());
    assert_eq!(line, 3, "{what}");

    rewrite(file, &good);
    verify(&[tmp.path().to_path_buf()]).unwrap();
}

#[tokio::test]
async fn a_cut_tail_shows_against_head_and_against_the_next_file() {
    let tmp = tempfile::tempdir().unwrap();
    // Small files: several rotations.
    write(tmp.path(), 4096, 80).await;
    let all = files(tmp.path());
    assert!(all.len() >= 3, "{all:?}");

    // The newest file loses its last line: HEAD still names it.
    let newest = all.last().unwrap();
    let good = lines(newest);
    rewrite(newest, &good[..good.len() - 1]);
    let (file, _, what) = bad_line(tmp.path());
    assert!(file.ends_with(newest.file_name().unwrap().to_str().unwrap()));
    assert!(what.contains("HEAD") && what.contains("cut"), "{what}");
    rewrite(newest, &good);

    // A sealed file loses its last lines: the next file's first line
    // still names where it ended.
    let middle = &all[1];
    let good = lines(middle);
    rewrite(middle, &good[..good.len() - 2]);
    let (file, _, what) = bad_line(tmp.path());
    assert!(
        file.ends_with(middle.file_name().unwrap().to_str().unwrap()),
        "{file}"
    );
    assert!(what.contains("cut"), "{what}");
    rewrite(middle, &good);

    // A line cut in half: HEAD records it whole, so it was cut. Without
    // HEAD beside it, the file just ends mid-line.
    let text = std::fs::read_to_string(newest).unwrap();
    std::fs::write(newest, &text[..text.len() - 10]).unwrap();
    let (_, _, what) = bad_line(tmp.path());
    assert!(what.contains("HEAD") && what.contains("cut"), "{what}");
    let head = tmp.path().join(super::segment::HEAD_FILE);
    let kept_head = std::fs::read(&head).unwrap();
    std::fs::remove_file(&head).unwrap();
    let (_, _, what) = bad_line(tmp.path());
    assert!(what.contains("incomplete"), "{what}");
    std::fs::write(&head, kept_head).unwrap();
    std::fs::write(newest, text).unwrap();

    // A whole file removed from the middle.
    let removed = std::fs::read(middle).unwrap();
    std::fs::remove_file(middle).unwrap();
    let (_, line, what) = bad_line(tmp.path());
    assert_eq!(line, 1, "{what}");
    assert!(what.contains("missing"), "{what}");
    std::fs::write(middle, removed).unwrap();

    verify(&[tmp.path().to_path_buf()]).unwrap();
}

#[tokio::test]
async fn a_torn_tail_left_by_a_crash_is_declared_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 1 << 20, 3).await;
    let file = files(tmp.path())[0].clone();
    let mut text = std::fs::read(&file).unwrap();
    text.extend_from_slice(b"{\"v\":1,\"seq\":6,\"id\":\"half");
    std::fs::write(&file, &text).unwrap();
    // The next start says so in its first line, and the log verifies.
    write(tmp.path(), 1 << 20, 1).await;
    verify(&[tmp.path().to_path_buf()]).unwrap();
    let second = lines(&files(tmp.path())[1]);
    assert!(second[0].contains("\"torn_bytes\":25"), "{}", second[0]);
}

#[tokio::test]
async fn an_unwritable_directory_fails_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let blocker = tmp.path().join("file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let err = AuditLog::start(
        &config(&blocker.join("audit"), 1 << 20),
        None,
        &prometheus::Registry::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("audit"), "{err}");
}

#[tokio::test]
async fn records_arriving_while_the_writer_waits_out_its_interval_share_one_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 1 << 20);
    let interval = std::time::Duration::from_secs(2);
    cfg.batch_interval = interval;
    let registry = prometheus::Registry::new();
    let started = std::time::Instant::now();
    let log = AuditLog::start(&cfg, None, &registry).unwrap();
    let batches = || counted(&registry, "toolgate_audit_batches_total", None);
    // The writer is idle: the first record is written at once, alone — not
    // an interval after the writer started.
    log.send(admin(0));
    admin_written(&registry, 1).await;
    let first = started.elapsed();
    assert!(
        first < interval,
        "the first record is written at once, not after {first:?}"
    );
    assert_eq!(batches(), 1.0, "the first record is written alone");
    // 100 more within its interval (it waits it out until at least 2 s
    // after it started): no wake-up each, one batch for all.
    for i in 1..=100 {
        log.send(admin(i));
    }
    let sent = started.elapsed();
    admin_written(&registry, 101).await;
    assert_eq!(
        batches(),
        2.0,
        "the next 100 records are one batch (all sent {sent:?} after the writer started)"
    );
    log.close().await;
    // Opened + 101 records + sealed, each still chained.
    let summary = verify(&[tmp.path().to_path_buf()]).unwrap();
    assert_eq!(summary.lines, 103);
}

#[tokio::test]
async fn a_queue_ahead_of_the_writer_is_drained_without_waiting_out_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 64 << 20);
    let interval = std::time::Duration::from_secs(2);
    cfg.batch_interval = interval;
    let registry = prometheus::Registry::new();
    let log = AuditLog::start(&cfg, None, &registry).unwrap();
    let counter = |name: &str| counted(&registry, name, None);
    let first = std::time::Instant::now();
    log.send(admin(0));
    admin_written(&registry, 1).await;
    assert_eq!(counter("toolgate_audit_batches_total"), 1.0);
    // Three full batches and one more record gather while the writer waits
    // out its interval; at its next wake-up (2 s after it wrote the first
    // record, so at least 2 s after `first`) it takes them all, batch after
    // batch, instead of one batch per interval (which would leave the
    // second batch queued until 4 s at least, the last until 8 s).
    let n = 3 * super::writer::MAX_BATCH + 1;
    for i in 1..=n {
        log.send(admin(i));
    }
    let sent = first.elapsed();
    // Opened + first + n records, polled for until just before 6 s, which
    // a writer waiting an interval between batches could not make; one that
    // does not has nearly 4 s after its wake-up to write them.
    let records = || counter("toolgate_audit_records_total");
    let deadline = first + 3 * interval - std::time::Duration::from_millis(100);
    while records() < (n + 2) as f64 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        records(),
        (n + 2) as f64,
        "opened + first + {n} records by 5.9 s (all sent by {sent:?})"
    );
    assert_eq!(counter("toolgate_audit_batches_total"), 5.0);
    log.close().await;
}

fn decision(n: usize, text: &str) -> super::entry::DecisionEntry {
    use super::entry::{DecisionEntry, TEXTS, Texts};
    let mut strings: [Option<&str>; TEXTS] = [None; TEXTS];
    strings[0] = Some("tools");
    strings[1] = Some("tools/call");
    strings[2] = Some(text);
    DecisionEntry {
        at_ms: 1_764_843_072_000 + n as u64,
        phase: crate::decide::Phase::Call,
        text: Texts::new(strings),
        arguments: None,
        identity: crate::identify::Identity::Anonymous,
        verdict: crate::decide::Verdict::Deny,
        reason: crate::decide::Reason::NoPolicy,
        evidence: std::sync::Arc::from(Vec::new()),
        identify: std::time::Duration::ZERO,
        decide: std::time::Duration::ZERO,
        total: std::time::Duration::ZERO,
        upstream: None,
    }
}

fn send_decision(log: &AuditLog, mut record: super::entry::DecisionEntry) {
    log.reserve()
        .expect("room for a decision")
        .send_decision(&mut record);
}

#[tokio::test]
async fn decisions_and_events_are_written_in_the_order_sent_whatever_their_size() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let log = AuditLog::start(&config(tmp.path(), 1 << 20), None, &registry).unwrap();
    let big = "x".repeat(64 * 1024);
    send_decision(&log, decision(0, "echo"));
    log.send(admin(1));
    send_decision(&log, decision(2, &big));
    send_decision(&log, decision(3, "search"));
    log.close().await;
    let summary = verify(&[tmp.path().to_path_buf()]).unwrap();
    assert_eq!(summary.lines, 6, "opened, 4 records, sealed");
    let bodies: Vec<String> = Records::open(&[tmp.path().to_path_buf()])
        .unwrap()
        .map(|r| match r.unwrap().body {
            super::line::Body::Decision(d) => format!("decision {}", d.tool),
            super::line::Body::Admin(a) => format!("admin {}", a.actor),
            other => super::render::kind_of(&other).to_owned(),
        })
        .collect();
    assert_eq!(
        bodies,
        [
            "log".to_owned(),
            "decision echo".to_owned(),
            "admin ops-1".to_owned(),
            format!("decision {big}"),
            "decision search".to_owned(),
            "log".to_owned(),
        ]
    );
}

#[tokio::test]
async fn after_close_nothing_is_taken_every_record_refused_is_counted_and_closing_again_returns_at_once()
 {
    let tmp = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let log = AuditLog::start(&config(tmp.path(), 1 << 20), None, &registry).unwrap();
    let dropped = |cause: &str| counted(&registry, "toolgate_audit_dropped_total", Some(cause));
    let held = log.reserve().expect("room before the close");
    log.close().await;
    assert!(
        log.reserve().is_none() && !log.ready(),
        "the writer has gone"
    );
    assert_eq!(log.refused_because(), "shutdown");
    log.send(admin(1));
    assert_eq!(dropped("shutdown"), 1.0, "refused after the close");
    held.send(admin(2));
    assert_eq!(dropped("shutdown"), 2.0, "posted on a place held across it");
    let again = std::time::Instant::now();
    log.close().await;
    // Far below the 10 s a close waits for a writer that might still seal.
    assert!(again.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(dropped("shutdown"), 2.0, "a stop is not a record");
    assert_eq!(dropped("queue_full") + dropped("log_failing"), 0.0);
    let summary = verify(&[tmp.path().to_path_buf()]).unwrap();
    assert_eq!(
        summary.lines, 2,
        "opened and sealed: nothing after the seal"
    );
}

#[tokio::test]
async fn after_a_mail_bigger_than_a_batch_the_writer_does_not_wait_out_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 64 << 20);
    cfg.batch_interval = std::time::Duration::from_secs(8);
    let registry = prometheus::Registry::new();
    let log = AuditLog::start(&cfg, None, &registry).unwrap();
    let records = || counted(&registry, "toolgate_audit_records_total", None);
    let until = |n: usize| async move {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while records() < n as f64 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        std::time::Instant::now()
    };
    log.send(admin(0));
    until(2).await;
    // Written at once (the writer was idle); the next mail waits out the
    // interval, and is bigger than a batch: the writer is behind.
    let n = super::writer::MAX_BATCH + 1;
    for i in 1..=n {
        log.send(admin(i));
    }
    until(n + 2).await;
    let sent = std::time::Instant::now();
    log.send(admin(n + 1));
    let written = until(n + 3).await;
    assert_eq!(records(), (n + 3) as f64);
    // Well inside the 8 s interval it would otherwise have waited (half
    // of it: a loaded machine may stall this test's thread for a while).
    assert!(
        written - sent < std::time::Duration::from_secs(4),
        "written {:?} after it was sent",
        written - sent
    );
    log.close().await;
}

/// The `seq` of a line as written.
fn seq_of(line: &str) -> u64 {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["seq"].as_u64().unwrap()
}

#[tokio::test]
async fn lines_cut_from_the_start_of_the_oldest_file_are_named_at_its_first_line() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 4096, 80).await;
    let all = files(tmp.path());
    assert!(all.len() >= 4, "{all:?}");
    let cut = |file: &Path, n: usize| {
        let good = lines(file);
        rewrite(file, &good[n..]);
        let bad = bad_line(tmp.path());
        rewrite(file, &good);
        (bad, seq_of(&good[n]))
    };
    let named = |file: &Path, seq: u64| {
        (
            file.display().to_string(),
            1,
            format!(
                "the log's first line (seq {seq}) is not the \"opened\" line every file starts with: lines were removed from the start of its oldest file"
            ),
        )
    };

    // The very start of the log: its `opened` line, or it and more.
    for n in [1, 3] {
        let (bad, seq) = cut(&all[0], n);
        assert_eq!(seq, n as u64 + 1);
        assert_eq!(bad, named(&all[0], seq));
    }
    verify(&[tmp.path().to_path_buf()]).unwrap();

    // `retain` deleted the oldest files: the oldest kept one starts with
    // the `opened` line naming the file before it, and the log verifies —
    // until that file loses its first lines too.
    std::fs::remove_file(&all[0]).unwrap();
    std::fs::remove_file(&all[1]).unwrap();
    let summary = verify(&[tmp.path().to_path_buf()]).unwrap();
    assert_eq!(summary.first_seq, Some(seq_of(&lines(&all[2])[0])));
    for n in [1, 2] {
        let (bad, seq) = cut(&all[2], n);
        assert_eq!(bad, named(&all[2], seq));
    }

    // Given as files, the oldest given is held to the same.
    let good = lines(&all[3]);
    rewrite(&all[3], &good[1..]);
    match verify(&all[3..]) {
        Err(Error::Bad { file, line, what }) => {
            assert_eq!((file, line), (all[3].display().to_string(), 1), "{what}");
            assert!(what.contains("removed from the start"), "{what}");
        }
        other => panic!("expected a bad line, got {other:?}"),
    }
}

#[tokio::test]
async fn after_retain_deleted_the_oldest_files_the_log_still_verifies() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), 4096);
    cfg.retain = 3;
    for run in 0..2 {
        let registry = prometheus::Registry::new();
        let log = AuditLog::start(&cfg, None, &registry).unwrap();
        send_in_fours(&log, &registry, run * 100, 60).await;
        log.close().await;
    }
    let kept = files(tmp.path());
    assert_eq!(kept.len(), 3, "{kept:?}");
    let oldest =
        super::segment::file_number(kept[0].file_name().unwrap().to_str().unwrap()).unwrap();
    assert!(oldest > 1, "nothing was deleted: {kept:?}");

    let summary = verify(&[tmp.path().to_path_buf()]).unwrap();
    assert_eq!(summary.files, 3);
    assert!(summary.head_checked);
    let first = lines(&kept[0]);
    let last = lines(kept.last().unwrap());
    assert_eq!(
        (summary.first_seq, summary.last_seq),
        (Some(seq_of(&first[0])), Some(seq_of(last.last().unwrap())))
    );
    assert!(summary.first_seq > Some(1));
    // The chain starts at the `opened` line naming the deleted file.
    let record = Records::open(&[tmp.path().to_path_buf()])
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let super::line::Body::Log(opened) = &record.body else {
        panic!("{record:?}");
    };
    let previous = opened.previous.as_ref().unwrap();
    assert_eq!(
        (
            opened.event.as_ref(),
            previous.file.as_ref(),
            previous.seq + 1
        ),
        (
            "opened",
            super::segment::file_name(oldest - 1).as_str(),
            record.seq
        )
    );
    assert!(!tmp.path().join(previous.file.as_ref()).exists());
}

mod live;
