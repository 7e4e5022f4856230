//! Reading a log a running gateway is writing and pruning: reports
//! (`Records::open_live`) read what is whole; `verify` stays strict.

use std::io::Write as _;

use super::*;
use crate::audit::report::scan;

/// Every `seq` a live scan of `dir` reads.
fn scanned(dir: &Path) -> Vec<u64> {
    let mut seqs = Vec::new();
    scan(&[dir.to_path_buf()], |r| {
        seqs.push(r.seq);
        Ok(())
    })
    .unwrap();
    seqs
}

#[tokio::test]
async fn a_line_being_written_ends_a_live_read_and_is_declared_by_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let registry = prometheus::Registry::new();
    let log = AuditLog::start(&config(tmp.path(), 1 << 20), None, &registry).unwrap();
    send_in_fours(&log, &registry, 0, 4).await;
    let whole = scanned(tmp.path());
    assert_eq!(whole.len(), 5, "the opened line and four records");
    // The writer's next line, half of it in the file so far.
    let newest = files(tmp.path()).pop().unwrap();
    let next = whole.last().unwrap() + 1;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap()
        .write_all(format!("{{\"v\":1,\"seq\":{next},\"id\":\"01").as_bytes())
        .unwrap();

    assert_eq!(scanned(tmp.path()), whole, "read up to the last whole line");
    // `verify`: HEAD records the last whole line, so this one is past it,
    // not cut; it is counted, not verified.
    let summary = verify(&[tmp.path().to_path_buf()]).unwrap();
    assert_eq!(summary.lines, 5);
    assert!(summary.head_checked);
    assert_eq!(summary.unfinished_bytes, 22 + next.to_string().len() as u64);
    // Files named without their HEAD: a file that ends mid-line.
    let head = tmp.path().join(crate::audit::segment::HEAD_FILE);
    std::fs::remove_file(&head).unwrap();
    let (_, line, what) = bad_line(tmp.path());
    assert!(what.contains("incomplete"), "{what}");
    assert_eq!(line, whole.len() + 1);
    log.close().await;
}

#[tokio::test]
async fn a_read_passes_over_the_oldest_files_retain_deletes_while_it_reads() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 4096, 80).await;
    let all = files(tmp.path());
    assert!(all.len() >= 3, "{all:?}");
    let kept: Vec<u64> = lines(&all[2]).iter().map(|l| seq_of(l)).collect();
    let whole = scanned(tmp.path());

    // Listed, then the two oldest files deleted, as `retain` does.
    let live = Records::open_live(&[tmp.path().to_path_buf()]).unwrap();
    let strict = Records::open(&[tmp.path().to_path_buf()]).unwrap();
    std::fs::remove_file(&all[0]).unwrap();
    std::fs::remove_file(&all[1]).unwrap();
    let read: Vec<u64> = live.map(|r| r.unwrap().seq).collect();
    assert_eq!(read[0], kept[0], "from the oldest file left");
    assert_eq!(read[..], whole[whole.len() - read.len()..]);
    let read: Vec<u64> = strict.map(|r| r.unwrap().seq).collect();
    assert_eq!(read[0], kept[0], "verify too");

    // A file deleted while an older one is still there is not retention's
    // doing: a gap.
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 4096, 80).await;
    let all = files(tmp.path());
    let mut live = Records::open_live(&[tmp.path().to_path_buf()]).unwrap();
    live.next().unwrap().unwrap();
    std::fs::remove_file(&all[1]).unwrap();
    let e = live.find_map(Result::err);
    assert!(matches!(e, Some(Error::Io { .. })), "{e:?}");
}

#[tokio::test]
async fn a_file_begun_but_without_its_first_line_yet_is_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), 4096, 16).await;
    let all = files(tmp.path());
    let whole = verify(&[tmp.path().to_path_buf()]).unwrap();
    let next = tmp.path().join(crate::audit::segment::file_name(
        crate::audit::segment::file_number(
            all.last().unwrap().file_name().unwrap().to_str().unwrap(),
        )
        .unwrap()
            + 1,
    ));

    // Created by a rotation, its `opened` line not written yet: empty, then half.
    std::fs::write(&next, b"").unwrap();
    assert_eq!(verify(&[tmp.path().to_path_buf()]).unwrap(), whole);
    std::fs::write(&next, b"{\"v\":1,\"seq\":").unwrap();
    let summary = verify(&[tmp.path().to_path_buf()]).unwrap();
    assert_eq!(summary.unfinished_bytes, 13);
    assert_eq!((summary.lines, summary.files), (whole.lines, whole.files));
    assert_eq!(scanned(tmp.path()).len() as u64, whole.lines);

    // HEAD names it: its first line was written, and is cut.
    let head = tmp.path().join(crate::audit::segment::HEAD_FILE);
    let mut named: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    named["file"] = next.file_name().unwrap().to_str().unwrap().into();
    named["seq"] = (whole.last_seq.unwrap() + 1).into();
    std::fs::write(&head, serde_json::to_vec(&named).unwrap()).unwrap();
    assert!(verify(&[tmp.path().to_path_buf()]).is_err());
}
