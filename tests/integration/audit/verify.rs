//! `toolgate audit verify DIR` (the real binary) on a rotated log: each
//! kind of tampering, inside a later file and at a file boundary, is named
//! by its first bad line's file and number, saying what happened, and
//! exits non-zero; an untouched log passes.

use serde_json::json;
use toolgate::audit::{AdminEntry, AuditLog, Entry, file_number};

use super::*;

/// Writes `n` admin records into `dir` in files of at most 4 KiB (a
/// rotation every dozen records or so), closes the log, and returns its
/// files (with those of earlier runs in `dir`), oldest first. Each four
/// records are written before the next are sent, so no batch holds more
/// than four and 80 records make at least four files; where files rotate
/// still depends on how the writer splits each four, so the newest may
/// hold no more than its `opened` and `sealed` lines.
async fn rotated_log(dir: &Path, n: usize) -> Vec<PathBuf> {
    let cfg: toolgate::config::Audit = toml::from_str(&format!(
        "dir = {:?}\nmax_file_size = 4096\nfsync = \"never\"\nbatch_interval = \"0s\"\n",
        dir.display().to_string()
    ))
    .unwrap();
    let registry = prometheus::Registry::new();
    let log = AuditLog::start(&cfg, None, &registry).unwrap();
    for i in 0..n {
        log.send(Entry::Admin(Box::new(AdminEntry {
            at_ms: 1_764_843_072_000 + i as u64,
            actor: format!("ops-{i}"),
            role: "operator",
            action: "issue_grant".into(),
            target: Some(format!("grant_{i:04}")),
            outcome: "ok".into(),
            remote: None,
        })));
        if i % 4 == 3 {
            // Small batches: files rotate between them.
            admin_written(&registry, i + 1).await;
        }
    }
    log.close().await;
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| Some((file_number(p.file_name()?.to_str()?)?, p)))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    files.into_iter().map(|(_, p)| p).collect()
}

/// Waits (10 s at most) until the log has written `n` admin records.
async fn admin_written(registry: &prometheus::Registry, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let written: f64 = registry
            .gather()
            .iter()
            .filter(|f| f.name() == "toolgate_audit_records_total")
            .flat_map(|f| f.get_metric())
            .filter(|m| m.get_label().iter().any(|l| l.value() == "admin"))
            .map(|m| m.get_counter().get_value())
            .sum();
        if written >= n as f64 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{written} admin records written in 10 s, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
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

fn seq(line: &str) -> u64 {
    serde_json::from_str::<Value>(line).unwrap()["seq"]
        .as_u64()
        .unwrap()
}

/// `toolgate audit verify dir` must fail naming line `line` of `file`:
/// what it says happened there.
async fn named(dir: &Path, file: &Path, line: usize) -> String {
    let (ok, out) = verify_cli(&[dir.to_path_buf()]).await;
    assert!(!ok, "a tampered log verified: {out}");
    let at = format!("audit verify: {}:{line}: ", file.display());
    match out.trim_end().strip_prefix(&at) {
        Some(what) if !what.contains('\n') => what.to_owned(),
        _ => panic!("expected one line starting {at:?}, got:\n{out}"),
    }
}

const ALTERED: &str = "its text does not match its hash: the line was altered";

/// What verify says of `line` read right after `after`, a line written
/// before it with lines between them.
fn missing_before(line: &str, after: &str) -> String {
    let (seq, after) = (seq(line), seq(after));
    format!(
        "seq {seq} follows seq {after}: {} line(s) before it are missing",
        seq - after - 1
    )
}

#[tokio::test]
async fn an_untouched_rotated_log_passes() {
    let tmp = tempfile::tempdir().unwrap();
    let all = rotated_log(tmp.path(), 80).await;
    let total: usize = all.iter().map(|f| lines(f).len()).sum();
    let (ok, out) = verify_cli(&[tmp.path().to_path_buf()]).await;
    assert!(ok, "{out}");
    assert_eq!(
        out,
        format!(
            "ok: {total} lines in {} files, seq 1..{total}, newest file matches HEAD\n",
            all.len()
        )
    );
}

#[tokio::test]
async fn an_edit_a_deletion_and_a_reorder_inside_a_later_file_are_named_at_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all = rotated_log(dir, 80).await;
    let file = &all[2];
    let good = lines(file);
    assert!(good[3].contains("\"ops-"), "{}", good[3]);

    let mut edited = good.clone();
    edited[3] = edited[3].replace("\"ops-", "\"mallory-");
    rewrite(file, &edited);
    assert_eq!(named(dir, file, 4).await, ALTERED);

    let mut deleted = good.clone();
    deleted.remove(3);
    rewrite(file, &deleted);
    assert_eq!(
        named(dir, file, 4).await,
        missing_before(&good[4], &good[2])
    );

    // Line 7 moved up to be line 4.
    let mut reordered = good.clone();
    let moved = reordered.remove(6);
    reordered.insert(3, moved);
    rewrite(file, &reordered);
    assert_eq!(
        named(dir, file, 4).await,
        missing_before(&good[6], &good[2])
    );

    rewrite(file, &good);
    let (ok, out) = verify_cli(&[dir.to_path_buf()]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn an_edit_a_deletion_and_a_reorder_at_a_file_boundary_are_named_at_their_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all = rotated_log(dir, 80).await;
    let (one, two) = (&all[1], &all[2]);
    let (first, second) = (lines(one), lines(two));
    let last = first.len() - 1;
    assert!(first[last].contains("\"sealed\""), "{}", first[last]);
    assert!(second[0].contains("\"opened\""), "{}", second[0]);
    let restore = || {
        rewrite(one, &first);
        rewrite(two, &second);
    };

    // Edited: the last line of one file, the first line of the next.
    let mut edited = first.clone();
    edited[last] = edited[last].replace("\"rotation\"", "\"shutdown\"");
    rewrite(one, &edited);
    assert_eq!(named(dir, one, last + 1).await, ALTERED);
    restore();
    let mut edited = second.clone();
    edited[0] = edited[0].replace("\"rotation\"", "\"start\"");
    rewrite(two, &edited);
    assert_eq!(named(dir, two, 1).await, ALTERED);
    restore();

    // Deleted: the last line of one file (named where it now ends), the
    // first line of the next.
    rewrite(one, &first[..last]);
    assert_eq!(
        named(dir, one, last).await,
        format!(
            "the file ends at seq {}, but the next file continues from seq {}: lines were cut from its end",
            seq(&first[last - 1]),
            seq(&first[last])
        )
    );
    restore();
    rewrite(two, &second[1..]);
    assert_eq!(
        named(dir, two, 1).await,
        format!(
            "it does not start with an \"opened\" line continuing {}",
            one.file_name().unwrap().to_str().unwrap()
        )
    );
    restore();

    // Reordered across the boundary: one file's last line and the next
    // one's first swap places.
    let mut one_swapped = first.clone();
    one_swapped[last] = second[0].clone();
    let mut two_swapped = second.clone();
    two_swapped[0] = first[last].clone();
    rewrite(one, &one_swapped);
    rewrite(two, &two_swapped);
    assert_eq!(
        named(dir, one, last + 1).await,
        missing_before(&second[0], &first[last - 1])
    );
    restore();

    let (ok, out) = verify_cli(&[dir.to_path_buf()]).await;
    assert!(ok, "{out}");
}

/// `line` by another actor, its hash recomputed: a line that checks on
/// its own.
fn forged(line: &str) -> String {
    let text = line.replacen("\"ops-", "\"mallory-", 1);
    let at = text
        .rfind(",\"hash\":\"")
        .expect("the hash is the last field");
    let body = &text[..at];
    let hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        body.as_bytes(),
    ));
    format!("{body},\"hash\":\"{hash}\"}}")
}

#[tokio::test]
async fn a_line_inserted_or_replaced_with_a_recomputed_hash_is_named_at_the_line_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all = rotated_log(dir, 80).await;
    let file = &all[2];
    let good = lines(file);
    // A copy of line 4 (its seq, and prev the hash of line 3) by another
    // actor, put before it: it checks, the original after it does not.
    let fake = forged(&good[3]);
    assert_ne!(fake, good[3]);
    let mut inserted = good.clone();
    inserted.insert(3, fake);
    rewrite(file, &inserted);
    assert_eq!(
        named(dir, file, 5).await,
        format!(
            "seq {0} follows seq {0}: lines are out of order",
            seq(&good[3])
        )
    );
    // The same line put in place of line 4: the line after it no longer
    // chains to it.
    let mut replaced = good.clone();
    replaced[3] = forged(&good[3]);
    rewrite(file, &replaced);
    assert_eq!(
        named(dir, file, 5).await,
        "its prev is not the hash of the line before it: a line was removed, inserted or moved here"
    );

    rewrite(file, &good);
    let (ok, out) = verify_cli(&[dir.to_path_buf()]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn lines_cut_from_the_end_of_the_newest_file_are_named_at_its_last_line_left() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all = rotated_log(dir, 80).await;
    let newest = all.last().unwrap();
    let good = lines(newest);
    // At least its `opened` and `sealed` lines; about half of it is cut.
    let kept = good.len().div_ceil(2);
    assert!(kept < good.len(), "{good:?}");
    rewrite(newest, &good[..kept]);
    let what = named(dir, newest, kept).await;
    let expected = format!(
        "the file ends at seq {}, but HEAD records seq {} (",
        seq(&good[kept - 1]),
        seq(&good[good.len() - 1])
    );
    assert!(what.starts_with(&expected), "{what}");
    assert!(
        what.ends_with("written: lines were cut from its end"),
        "{what}"
    );
}

#[tokio::test]
async fn the_newest_file_deleted_is_named_by_head() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all = rotated_log(dir, 80).await;
    let newest = all.last().unwrap();
    let gone = lines(newest);
    std::fs::remove_file(newest).unwrap();
    let before = &all[all.len() - 2];
    let what = named(dir, before, lines(before).len()).await;
    assert_eq!(
        what,
        format!(
            "HEAD records seq {} written in {}, a newer file that is not there: the newest file(s) were deleted",
            seq(gone.last().unwrap()),
            newest.file_name().unwrap().to_str().unwrap()
        )
    );
    // Files named one by one may leave the newest out: no complaint.
    let (ok, out) = verify_cli(&all[..all.len() - 1]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_line_added_after_a_sealed_line_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all = rotated_log(dir, 80).await;
    // The newest file ends with its `sealed` line (the log was closed); a
    // line chained to it, its hash recomputed, is appended.
    let newest = all.last().unwrap();
    let good = lines(newest);
    let last: Value = serde_json::from_str(good.last().unwrap()).unwrap();
    assert_eq!(last["event"], "sealed", "{last}");
    let mut extra: Value = serde_json::from_str(&good[good.len() - 2]).unwrap();
    extra["seq"] = json!(last["seq"].as_u64().unwrap() + 1);
    extra["prev"] = last["hash"].clone();
    extra.as_object_mut().unwrap().remove("hash");
    let text = serde_json::to_string(&extra).unwrap();
    // The hash covers the line up to where it goes, the last field.
    let body = text.strip_suffix('}').unwrap();
    let hash = hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        body.as_bytes(),
    ));
    let mut added = good.clone();
    added.push(format!("{body},\"hash\":\"{hash}\"}}"));
    rewrite(newest, &added);
    assert_eq!(
        named(dir, newest, added.len()).await,
        "it follows its file's \"sealed\" line: lines were added after the file was closed"
    );
}

#[tokio::test]
async fn lines_cut_while_the_gateway_was_down_are_named_even_after_retention() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let before = rotated_log(dir, 80).await;
    // While it is down, the newest file loses its last lines, three at
    // most (its `sealed` line among them; its `opened` line stays); `HEAD`
    // still names the last.
    let newest = before.last().unwrap().clone();
    let good = lines(&newest);
    let kept = good.len().saturating_sub(3).max(1);
    assert!(kept < good.len(), "{good:?}");
    rewrite(&newest, &good[..kept]);
    // The restart notices, and its first file's `opened` line says so.
    let after = rotated_log(dir, 8).await;
    let reopened = &after[before.len()];
    let what = named(dir, &newest, kept).await;
    assert_eq!(
        what,
        format!(
            "when the gateway restarted, HEAD recorded seq {} in {}, but the log ended at seq {}: lines were cut while it was down",
            seq(good.last().unwrap()),
            newest.file_name().unwrap().to_str().unwrap(),
            seq(&good[kept - 1])
        )
    );
    // Retention deletes every file before the restart's: its `opened` line
    // still tells.
    for old in &before {
        std::fs::remove_file(old).unwrap();
    }
    let what = named(dir, reopened, 1).await;
    assert!(
        what.starts_with("when the gateway restarted, HEAD recorded seq ")
            && what.ends_with("lines were cut while it was down"),
        "{what}"
    );
}

#[tokio::test]
async fn a_head_behind_its_file_after_a_crash_is_not_a_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let before = rotated_log(dir, 80).await;
    // A crash between a write and its HEAD update: HEAD names the line
    // before the newest file's last one.
    let newest = before.last().unwrap();
    let good = lines(newest);
    let line: Value = serde_json::from_str(&good[good.len() - 2]).unwrap();
    let bytes: usize = good[..good.len() - 1].iter().map(|l| l.len() + 1).sum();
    let head = json!({"file": newest.file_name().unwrap().to_str().unwrap(),
                      "seq": line["seq"], "hash": line["hash"], "bytes": bytes});
    std::fs::write(
        dir.join(toolgate::audit::HEAD_FILE),
        serde_json::to_vec(&head).unwrap(),
    )
    .unwrap();
    // The restart goes on from the file's end, and the log verifies.
    rotated_log(dir, 8).await;
    let (ok, out) = verify_cli(&[dir.to_path_buf()]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_new_file_cut_in_its_first_line_is_dropped_at_the_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let before = rotated_log(dir, 80).await;
    // The process died (or the disk filled) while the next file's first
    // line was written: part of a line, no newline.
    let n = file_number(
        before
            .last()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap(),
    )
    .unwrap();
    let cut = dir.join(toolgate::audit::file_name(n + 1));
    std::fs::write(&cut, "{\"v\":1,\"seq\":").unwrap();
    // The restart takes its place and goes on from the file before it.
    let after = rotated_log(dir, 8).await;
    assert_eq!(after[before.len()], cut);
    let first: Value = serde_json::from_str(&lines(&cut)[0]).unwrap();
    assert_eq!(first["event"], "opened", "{first}");
    let (ok, out) = verify_cli(&[dir.to_path_buf()]).await;
    assert!(ok, "{out}");
}

#[tokio::test]
async fn a_line_past_head_is_declared_and_bytes_after_a_sealed_line_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let all = rotated_log(dir, 80).await;
    let newest = all.last().unwrap();
    let good = lines(newest);

    // Closed: the newest file ends with its `sealed` line; bytes after it
    // were added after the file was closed.
    let mut text = std::fs::read(newest).unwrap();
    let sealed = text.len();
    text.extend_from_slice(b"{\"v\":1,");
    std::fs::write(newest, &text).unwrap();
    assert_eq!(
        named(dir, newest, good.len() + 1).await,
        "7 bytes follow its file's \"sealed\" line: they were added after the file was closed"
    );

    // Running (or crashed mid-write): no `sealed` line yet, HEAD at the
    // last whole line, and half of the next line written.
    let open = &good[..good.len() - 1];
    rewrite(newest, open);
    let last: Value = serde_json::from_str(open.last().unwrap()).unwrap();
    let bytes: usize = open.iter().map(|l| l.len() + 1).sum();
    let head = json!({"file": newest.file_name().unwrap().to_str().unwrap(),
                      "seq": last["seq"], "hash": last["hash"], "bytes": bytes});
    std::fs::write(
        dir.join(toolgate::audit::HEAD_FILE),
        serde_json::to_vec(&head).unwrap(),
    )
    .unwrap();
    let mut text = std::fs::read(newest).unwrap();
    assert!(text.len() < sealed);
    text.extend_from_slice(b"{\"v\":1,\"seq\":");
    std::fs::write(newest, &text).unwrap();
    let total: usize = all[..all.len() - 1]
        .iter()
        .map(|f| lines(f).len())
        .sum::<usize>()
        + open.len();
    let (ok, out) = verify_cli(&[dir.to_path_buf()]).await;
    assert!(ok, "{out}");
    assert_eq!(
        out,
        format!(
            "ok: {total} lines in {} files, seq 1..{total}, newest file matches HEAD; \
             then 13 bytes of a line HEAD does not record yet (being written, or cut \
             short by a crash), not verified\n",
            all.len()
        )
    );

    // HEAD records that line whole: it was cut, not unfinished.
    let mut ahead = head.clone();
    ahead["seq"] = json!(last["seq"].as_u64().unwrap() + 1);
    std::fs::write(
        dir.join(toolgate::audit::HEAD_FILE),
        serde_json::to_vec(&ahead).unwrap(),
    )
    .unwrap();
    let what = named(dir, newest, open.len()).await;
    assert!(
        what.ends_with("written: lines were cut from its end"),
        "{what}"
    );
}
