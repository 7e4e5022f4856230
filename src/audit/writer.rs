//! Record stage: the decision log's writer — a bounded outbox the request
//! path reserves a place in (never waiting), and one thread of its own
//! that takes what it holds once a batch interval and writes it in
//! batches: render, hash-chain, write, rewrite `HEAD`, sync per
//! `audit.fsync`, rotate past `audit.max_file_size`, delete files past
//! `audit.retain`. A failed write marks the log unhealthy (calls are then
//! refused, or their records counted as dropped, per `audit.on_failure`)
//! and is retried, into a new file, until the disk takes it again.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::Error;
use super::chain::{self, GENESIS};
use super::entry::Entry;
use super::line::{HeadLine, LogLine, PreviousLine};
use super::mask::Masks;
use super::metrics::AuditMetrics;
pub use super::outbox::Permit;
use super::outbox::{Cursor, Decoder, Item, Mail, Outbox};
use super::render::Renderer;
use super::segment::{self, Head, file_name, head_claims_more};
use crate::config::{self, Fsync, OnFailure};
use crate::store::Store;

/// Most entries written in one batch.
pub(super) const MAX_BATCH: usize = 1024;
/// A batch goes to the file in writes of about this many bytes, so that
/// the buffer it is rendered into stays in the CPU's cache: one buffer the
/// size of a whole batch (≈ 750 KB at 15k decisions a second and 50 ms)
/// is cold again each time it is filled, and is read back cold by `write`.
const WRITE_CHUNK: usize = 64 * 1024;
/// How long a failed write waits before it is tried again.
const RETRY: Duration = Duration::from_millis(250);
/// How long shutdown waits for the writer to seal the log.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// What the writer thread holds: the outbox, the mail it took and where
/// it stands in it. However the thread ends — a panic too — dropping this
/// counts what it had not written and shuts the outbox, so that nothing
/// waits on, or silently posts to, a writer gone.
struct Hold {
    outbox: Arc<Outbox>,
    shared: Arc<Shared>,
    mail: Mail,
    at: Cursor,
}

impl Drop for Hold {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.shared.set_healthy(false);
            tracing::error!(target: "toolgate::audit", "the decision-log writer stopped on a fault: records are refused or counted as dropped from now on");
        }
        let left = self.mail.records_left(&self.at);
        self.shared.dropped("shutdown", left as u64);
        self.outbox.shut();
    }
}

/// The handle the gateway records through. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditLog {
    outbox: Arc<Outbox>,
    shared: Arc<Shared>,
    masks: Arc<Masks>,
    fail_closed: bool,
    dir: std::path::PathBuf,
}

#[derive(Debug)]
struct Shared {
    healthy: AtomicBool,
    stop: AtomicBool,
    /// Drops not yet reported in the log itself.
    unreported: AtomicU64,
    dropped: AtomicU64,
    metrics: AuditMetrics,
}

impl AuditLog {
    /// Opens (or continues) the log in `cfg.dir` and starts its writer
    /// thread. The first line is written before this returns: a directory
    /// that cannot be written fails here, at start-up.
    pub fn start(
        cfg: &config::Audit,
        store: Option<Arc<dyn Store>>,
        registry: &prometheus::Registry,
    ) -> Result<Self, Error> {
        let key = match &cfg.hash_key {
            Some(k) => Some(k.resolve().map_err(|message| Error::Config {
                field: "hash_key",
                message,
            })?),
            None => None,
        };
        let masks = Arc::new(Masks::new(&cfg.mask, key.as_ref()));
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            unreported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            metrics: AuditMetrics::new(registry),
        });
        let writer = Writer::open(
            cfg,
            Renderer::new(Arc::clone(&masks), store),
            Arc::clone(&shared),
        )?;
        shared.metrics.healthy.set(1);
        let lost = Arc::clone(&shared);
        let outbox = Arc::new(Outbox::new(cfg.queue, move |n| {
            lost.dropped("shutdown", n);
        }));
        let theirs = Arc::clone(&outbox);
        std::thread::Builder::new()
            .name("toolgate-audit".into())
            .spawn(move || writer.run(theirs))
            .map_err(Error::Thread)?;
        tracing::info!(dir = %cfg.dir.display(), "decision log open");
        Ok(Self {
            outbox,
            shared,
            masks,
            fail_closed: cfg.on_failure == OnFailure::FailClosed,
            dir: cfg.dir.clone(),
        })
    }

    /// True when a call must be refused if its record cannot be taken.
    pub fn fail_closed(&self) -> bool {
        self.fail_closed
    }

    /// Where the log is written: what reports read.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The `audit.mask` rules, for everything else that shows arguments.
    pub fn masks(&self) -> &Masks {
        &self.masks
    }

    /// A place for one record, or `None`: the outbox is full, or (failing
    /// closed) the log is not being written.
    pub fn reserve(&self) -> Option<Permit> {
        if self.fail_closed && !self.shared.healthy.load(Ordering::Relaxed) {
            return None;
        }
        self.outbox.reserve()
    }

    /// False while writing fails (and is being retried).
    pub fn healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }

    /// Whether a record would be taken now.
    pub fn ready(&self) -> bool {
        (!self.fail_closed || self.shared.healthy.load(Ordering::Relaxed)) && self.outbox.has_room()
    }

    /// Queues a record that needed no reservation; counts it if it cannot be.
    pub fn send(&self, entry: Entry) {
        match self.outbox.reserve() {
            Some(permit) => permit.send(entry),
            None => self.dropped(self.refused_because()),
        }
    }

    /// Why [`AuditLog::reserve`] gave no place: the `cause` a record
    /// dropped for it is counted under.
    pub fn refused_because(&self) -> &'static str {
        if self.outbox.is_shut() {
            "shutdown"
        } else if !self.healthy() {
            "log_failing"
        } else {
            "queue_full"
        }
    }

    /// Counts (and logs, sparingly) a record that will not be written.
    pub fn dropped(&self, cause: &'static str) {
        self.shared.dropped(cause, 1);
    }

    /// Seals the log and stops the writer (shutdown). Records still queued
    /// are written first; if the disk is failing they are counted as dropped.
    pub async fn close(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let (ack, wait) = std::sync::mpsc::channel();
        self.outbox.post_stop(ack);
        let done = tokio::task::spawn_blocking(move || {
            let _ = wait.recv_timeout(CLOSE_WAIT);
        });
        let _ = done.await;
    }
}

impl Shared {
    fn dropped(&self, cause: &'static str, n: u64) {
        if n == 0 {
            return;
        }
        self.metrics.dropped.with_label_values(&[cause]).inc_by(n);
        self.unreported.fetch_add(n, Ordering::Relaxed);
        let total = self.dropped.fetch_add(n, Ordering::Relaxed) + n;
        // Logged at the first drop and at every power of two after it.
        if (total - n).leading_zeros() != total.leading_zeros() || total == n {
            tracing::error!(target: "toolgate::audit", cause, total, "decision-log records dropped");
        }
    }

    fn set_healthy(&self, healthy: bool) {
        let was = self.healthy.swap(healthy, Ordering::Relaxed);
        self.metrics.healthy.set(i64::from(healthy));
        if was && !healthy {
            tracing::error!(target: "toolgate::audit", "the decision log cannot be written; retrying");
        } else if !was && healthy {
            tracing::warn!(target: "toolgate::audit", "the decision log is being written again");
        }
    }
}

/// The writer thread's state: where the chain stands and what file it is in.
struct Writer {
    dir: PathBuf,
    max_file_size: u64,
    retain: usize,
    fsync: Fsync,
    fsync_interval: Duration,
    batch_interval: Duration,
    file: Option<File>,
    number: u64,
    /// Committed bytes of the current file, and bytes after them a failed
    /// write left behind.
    len: u64,
    torn: u64,
    seq: u64,
    prev: String,
    /// What `HEAD` said at start-up when it disagreed with the files.
    stale_head: Option<HeadLine<'static>>,
    head: Head,
    /// The next write opens a new file first, for this cause.
    reopen: Option<&'static str>,
    unsynced: bool,
    last_sync: Instant,
    buf: Vec<u8>,
    renderer: Renderer,
    /// What each decision record is read into from the mail.
    decoder: Decoder,
    shared: Arc<Shared>,
    /// Tests: appends left before one fails.
    #[cfg(test)]
    fail_after: Option<u32>,
}

impl Writer {
    fn open(cfg: &config::Audit, renderer: Renderer, shared: Arc<Shared>) -> Result<Self, Error> {
        let dir = cfg.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut files = segment::list(&dir)?;
        // A newest file without one whole line (the process died, or the
        // disk filled, while its first line was written) holds nothing of
        // the chain: it goes, and the chain stands where the file before
        // it ends. (`HEAD` is written only after a file's first line.)
        let mut newest = None;
        while let Some((n, path)) = files.pop() {
            match segment::tail(&path)? {
                Some(tail) => {
                    newest = Some((n, tail));
                    break;
                }
                None => std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?,
            }
        }
        let old_head = segment::read_head(&dir);
        let mut w = Self {
            head: Head::open(&dir)?,
            dir,
            max_file_size: cfg.max_file_size,
            retain: cfg.retain,
            fsync: cfg.fsync,
            fsync_interval: cfg.fsync_interval,
            batch_interval: cfg.batch_interval,
            file: None,
            number: 0,
            len: 0,
            torn: 0,
            seq: 0,
            prev: GENESIS.to_owned(),
            stale_head: None,
            reopen: None,
            unsynced: false,
            last_sync: Instant::now(),
            buf: Vec::with_capacity(64 * 1024),
            renderer,
            decoder: Decoder::default(),
            shared,
            #[cfg(test)]
            fail_after: None,
        };
        if let Some((n, tail)) = newest {
            w.number = n;
            w.seq = tail.seq;
            w.prev = tail.hash;
            w.len = tail.bytes;
            w.torn = tail.torn;
            // Only a `HEAD` that claims more than the files hold says lines
            // were lost: one behind them is a crash between a write and
            // its `HEAD` update.
            w.stale_head = old_head.filter(|h| head_claims_more(h, w.number, w.seq, &w.prev));
        }
        w.open_next("start")
            .map_err(|e| Error::io(&w.dir.join(file_name(w.number + 1)), e))?;
        Ok(w)
    }

    /// The writer thread: takes the outbox's mail, writes it, and waits
    /// for more.
    fn run(mut self, outbox: Arc<Outbox>) {
        let mut hold = Hold {
            outbox,
            shared: Arc::clone(&self.shared),
            mail: Mail::default(),
            at: Cursor::default(),
        };
        let Hold {
            outbox, mail, at, ..
        } = &mut hold;
        let tick = self.fsync_interval.min(Duration::from_secs(1));
        let mut failed = false;
        // When the next mail may be taken (`audit.batch_interval` after the
        // last one was written): until then records gather in the outbox
        // without waking this thread, so under load one wake-up, one write
        // and one sync serve many records.
        let mut next_batch = Instant::now();
        loop {
            if at.done(mail) {
                mail.clear();
                *at = Cursor::default();
                let wait = next_batch.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                if !outbox.take(mail, Duration::ZERO) {
                    // Idle: wait for a record, which is then written at once.
                    let wait = if self.reopen.is_some() { RETRY } else { tick };
                    if !outbox.take(mail, wait) {
                        if Arc::strong_count(outbox) == 1 {
                            // Every handle and permit is gone: nothing can come.
                            self.finish();
                            return;
                        }
                        self.idle();
                        continue;
                    }
                }
            } else if failed {
                // The last write failed: wait, then try the same records again.
                if self.shared.stop.load(Ordering::Relaxed) {
                    // What is left, here and in the outbox, is counted as
                    // dropped on the way out (`Hold`).
                    tracing::error!(target: "toolgate::audit", "shutting down while the decision log cannot be written: the records not written are counted as dropped");
                    return;
                }
                std::thread::sleep(RETRY);
            }
            let start = *at;
            match self.write(mail, at) {
                Ok(stop) => {
                    failed = false;
                    outbox.written(at.read() - start.read());
                    // A mail bigger than a batch is written batch after
                    // batch without waiting, and one that big means the
                    // records arrive faster than one interval's worth: the
                    // next is taken at once. The interval never caps the
                    // log's rate; it only gathers records when the writer
                    // keeps up.
                    if at.done(mail) {
                        next_batch = Instant::now();
                        if at.read() < MAX_BATCH {
                            next_batch += self.batch_interval;
                        }
                    }
                    self.shared.set_healthy(self.reopen.is_none());
                    if let Some(ack) = stop {
                        self.finish();
                        // Shut before answering, so that once `close`
                        // returns on this answer nothing is taken (a close
                        // that gave up waiting, after `CLOSE_WAIT`, has no
                        // such promise). Anything posted after
                        // the stop is past the sealed log: counted, by the
                        // outbox from now on, and what this mail holds
                        // after the stop on the way out (`Hold`).
                        outbox.shut();
                        let _ = ack.send(());
                        return;
                    }
                }
                Err(e) => {
                    *at = start;
                    failed = true;
                    self.shared.metrics.write_errors.inc();
                    tracing::debug!(target: "toolgate::audit", error = %e, "decision-log write failed");
                    self.shared.set_healthy(false);
                }
            }
            self.shared
                .metrics
                .queue_depth
                .set(i64::try_from(outbox.held()).unwrap_or(i64::MAX));
        }
    }

    /// Writes the next batch of `mail` (up to [`MAX_BATCH`] records, from
    /// `at`, which it moves past them); on failure nothing of it counts and
    /// the next try starts a new file. A stop ends the batch: its sender is
    /// returned, to be told once the log is sealed.
    fn write(
        &mut self,
        mail: &Mail,
        at: &mut Cursor,
    ) -> std::io::Result<Option<std::sync::mpsc::Sender<()>>> {
        if let Some(cause) = self.reopen {
            self.open_next(cause)?;
        }
        self.buf.clear();
        let committed_len = self.len;
        let (mut seq, mut prev) = (self.seq, std::mem::take(&mut self.prev));
        let committed_prev = prev.clone();
        let dropped = self.shared.unreported.swap(0, Ordering::Relaxed);
        let mut kinds: Vec<&'static str> = Vec::with_capacity(MAX_BATCH.min(at.left(mail)) + 1);
        if dropped > 0 {
            let start = self.buf.len();
            let line = LogLine {
                event: "dropped".into(),
                cause: None,
                previous: None,
                count: Some(dropped),
            };
            self.renderer.log(line, seq + 1, &prev, &mut self.buf);
            prev = chain::seal_line(&mut self.buf, start);
            seq += 1;
            kinds.push("log");
        }
        let mut written = Ok(());
        let mut stop = None;
        for _ in 0..MAX_BATCH {
            let start = self.buf.len();
            let kind = match mail.next(at, &mut self.decoder) {
                None => break,
                Some(Item::Other(Entry::Stop(ack))) => {
                    stop = Some(ack.clone());
                    break;
                }
                Some(Item::Other(entry)) => {
                    self.renderer.entry(entry, seq + 1, &prev, &mut self.buf)
                }
                Some(Item::Decision) => {
                    let d = &self.decoder.record;
                    self.renderer
                        .write_decision(d, seq + 1, &prev, &mut self.buf);
                    "decision"
                }
            };
            kinds.push(kind);
            prev = chain::seal_line(&mut self.buf, start);
            seq += 1;
            if self.buf.len() >= WRITE_CHUNK {
                written = self.append();
                self.buf.clear();
                if written.is_err() {
                    break;
                }
            }
        }
        if written.is_ok() && !self.buf.is_empty() {
            written = self.append();
        }
        if let Err(e) = written {
            // None of the batch counts: the file goes back to where it
            // stood before it (its earlier writes too).
            self.take_back(committed_len);
            self.prev = committed_prev;
            self.shared.unreported.fetch_add(dropped, Ordering::Relaxed);
            return Err(e);
        }
        self.shared.metrics.bytes.inc_by(self.len - committed_len);
        (self.seq, self.prev) = (seq, prev);
        self.shared.metrics.batches.inc();
        // One counter update per kind and batch, not per line.
        kinds.sort_unstable();
        for run in kinds.chunk_by(|a, b| a == b) {
            self.shared
                .metrics
                .written
                .with_label_values(&[run[0]])
                .inc_by(run.len() as u64);
        }
        self.after_write();
        if self.len >= self.max_file_size {
            self.rotate();
        }
        Ok(stop)
    }

    /// Appends `buf` to the current file; on failure takes back what it
    /// can and arranges for the next write to open a new file.
    fn append(&mut self) -> std::io::Result<()> {
        #[cfg(test)]
        if let Some(left) = self.fail_after.as_mut() {
            if *left == 0 {
                self.take_back(self.len);
                return Err(std::io::Error::other("injected"));
            }
            *left -= 1;
        }
        let Some(file) = self.file.as_mut() else {
            self.reopen = Some("recovery");
            return Err(std::io::Error::other("no open log file"));
        };
        match file.write_all(&self.buf) {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                self.unsynced = true;
                Ok(())
            }
            Err(e) => {
                self.take_back(self.len);
                Err(e)
            }
        }
    }

    /// After a failed write: cuts the file back to `len` bytes (what does
    /// not go is counted as torn) and has the next write open a new file.
    fn take_back(&mut self, len: u64) {
        self.len = len;
        if let Some(file) = self.file.as_mut()
            && file.set_len(len).is_err()
        {
            self.torn = file.metadata().map_or(0, |m| m.len().saturating_sub(len));
        }
        self.reopen = Some("recovery");
    }

    /// `HEAD` and the sync policy, after a batch is in the file.
    fn after_write(&mut self) {
        let head = HeadLine {
            file: file_name(self.number).into(),
            seq: self.seq,
            hash: self.prev.as_str().into(),
            bytes: self.len,
        };
        if let Err(e) = self.head.write(&head) {
            tracing::warn!(target: "toolgate::audit", error = %e, "cannot update the decision log's HEAD");
        }
        let due = match self.fsync {
            Fsync::Batch => true,
            Fsync::Interval => self.last_sync.elapsed() >= self.fsync_interval,
            Fsync::Never => false,
        };
        if due {
            self.sync();
        }
    }

    fn idle(&mut self) {
        if let Some(cause) = self.reopen {
            // A rotation could not open the next file: try again.
            let opened = self.open_next(cause);
            if let Err(e) = &opened {
                self.shared.metrics.write_errors.inc();
                tracing::debug!(target: "toolgate::audit", error = %e, "decision-log file still cannot be opened");
            }
            self.shared.set_healthy(opened.is_ok());
        }
        if self.unsynced && self.fsync == Fsync::Interval {
            self.sync();
        }
    }

    fn sync(&mut self) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if let Err(e) = file.sync_data().and_then(|()| self.head.sync()) {
            self.shared.metrics.write_errors.inc();
            tracing::error!(target: "toolgate::audit", error = %e, "cannot sync the decision log");
            return;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
    }

    /// Seals the current file with a last line and starts the next one.
    /// The batch before is committed either way; a failure here leaves
    /// `reopen` set, so the log reads unhealthy until a file opens.
    fn rotate(&mut self) {
        if let Err(e) = self.seal("rotation") {
            self.shared.metrics.write_errors.inc();
            tracing::debug!(target: "toolgate::audit", error = %e, "cannot seal a decision-log file");
            return;
        }
        self.shared.metrics.rotations.inc();
        self.reopen = Some("rotation");
        match self.open_next("rotation") {
            Ok(()) => self.retain(),
            Err(e) => {
                self.shared.metrics.write_errors.inc();
                tracing::debug!(target: "toolgate::audit", error = %e, "cannot open the next decision-log file");
            }
        }
    }

    fn seal(&mut self, cause: &'static str) -> std::io::Result<()> {
        self.buf.clear();
        let line = LogLine {
            event: "sealed".into(),
            cause: Some(cause.into()),
            previous: None,
            count: None,
        };
        self.renderer
            .log(line, self.seq + 1, &self.prev, &mut self.buf);
        let hash = chain::seal_line(&mut self.buf, 0);
        self.append()?;
        self.shared.metrics.bytes.inc_by(self.buf.len() as u64);
        self.seq += 1;
        self.prev = hash;
        self.shared
            .metrics
            .written
            .with_label_values(&["log"])
            .inc();
        self.after_write();
        self.sync();
        Ok(())
    }

    /// Creates the next file; its first line names where the chain stands.
    fn open_next(&mut self, cause: &'static str) -> std::io::Result<()> {
        let number = self.number + 1;
        let path = self.dir.join(file_name(number));
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)?;
        let previous = (self.number > 0).then(|| PreviousLine {
            file: file_name(self.number).into(),
            seq: self.seq,
            hash: self.prev.clone().into(),
            bytes: self.len,
            torn_bytes: self.torn,
            head: self.stale_head.clone(),
        });
        self.buf.clear();
        let line = LogLine {
            event: "opened".into(),
            cause: Some(cause.into()),
            previous,
            count: None,
        };
        self.renderer
            .log(line, self.seq + 1, &self.prev, &mut self.buf);
        let hash = chain::seal_line(&mut self.buf, 0);
        let mut file = file;
        if let Err(e) = file.write_all(&self.buf).and_then(|()| file.sync_data()) {
            // A full disk can take part of the line: the file goes, or the
            // next try could not create it again, and the log would stay
            // shut after space came back.
            drop(file);
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        sync_dir(&self.dir);
        (self.file, self.number, self.len, self.torn) =
            (Some(file), number, self.buf.len() as u64, 0);
        self.seq += 1;
        self.prev = hash;
        self.stale_head = None;
        self.reopen = None;
        self.shared
            .metrics
            .written
            .with_label_values(&["log"])
            .inc();
        self.shared.metrics.bytes.inc_by(self.len);
        self.after_write();
        Ok(())
    }

    /// Deletes the oldest files past `retain` (never the current one).
    fn retain(&self) {
        let Ok(files) = segment::list(&self.dir) else {
            return;
        };
        let excess = files.len().saturating_sub(self.retain);
        for (n, path) in files.into_iter().take(excess) {
            if n == self.number {
                continue;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(target: "toolgate::audit", file = %path.display(), "old decision-log file deleted (audit.retain)")
                }
                Err(e) => {
                    tracing::warn!(target: "toolgate::audit", file = %path.display(), error = %e, "cannot delete an old decision-log file")
                }
            }
        }
    }

    /// Shutdown: seal the file.
    fn finish(&mut self) {
        if self.reopen.is_none()
            && let Err(e) = self.seal("shutdown")
        {
            tracing::error!(target: "toolgate::audit", error = %e, "cannot seal the decision log at shutdown");
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::admin;
    use super::*;

    #[test]
    fn a_batch_written_in_chunks_counts_whole_or_not_at_all() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg: config::Audit = toml::from_str(&format!(
            "dir = {:?}\nfsync = \"never\"\n",
            tmp.path().display().to_string()
        ))
        .unwrap();
        let shared = Arc::new(Shared {
            healthy: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            unreported: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            metrics: AuditMetrics::new(&prometheus::Registry::new()),
        });
        let renderer = Renderer::new(Arc::new(Masks::new(&[], None)), None);
        let mut w = Writer::open(&cfg, renderer, shared).unwrap();
        // ≈ 250-byte lines: 1,000 of them are three chunks or more.
        let mut batch = Mail::default();
        for i in 0..1000 {
            batch.push_entry(admin(i));
        }
        let (len, seq) = (w.len, w.seq);
        let first = w.dir.join(file_name(w.number));
        w.fail_after = Some(1);
        assert!(
            w.write(&batch, &mut Cursor::default()).is_err(),
            "the second chunk fails"
        );
        assert_eq!((w.len, w.seq), (len, seq), "nothing of the batch counts");
        assert_eq!(
            std::fs::metadata(&first).unwrap().len(),
            len,
            "the first chunk was cut back out of the file"
        );
        w.fail_after = None;
        w.write(&batch, &mut Cursor::default()).unwrap();
        assert_eq!(
            w.seq,
            seq + 1 + 1000,
            "a new file's first line, then the batch"
        );
        w.finish();
        let summary = super::super::read::verify(&[tmp.path().to_path_buf()]).unwrap();
        let records = super::super::read::Records::open(&[tmp.path().to_path_buf()])
            .unwrap()
            .filter(|r| {
                r.as_ref()
                    .is_ok_and(|r| matches!(r.body, super::super::line::Body::Admin(_)))
            })
            .count();
        assert_eq!(records, 1000, "each record once: {summary:?}");
    }
}
