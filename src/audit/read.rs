//! Record stage, read back: [`Records`] iterates a decision log as typed,
//! verified records — every line's own hash, the chain of `prev` hashes,
//! contiguous `seq`, every file (the oldest read too) starting with its
//! `opened` line, each file continuing the one before it, and the newest
//! file against `HEAD`. The first problem ends the iteration with an
//! [`Error::Bad`] naming the file and line. Reports and `toolgate audit
//! verify` are built on it.
//!
//! ```no_run
//! # fn main() -> Result<(), toolgate::audit::Error> {
//! use toolgate::audit::line::Body;
//! use toolgate::audit::read::Records;
//! for record in Records::open(&["/var/log/toolgate/audit".into()])? {
//!     let record = record?;
//!     if let Body::Decision(d) = &record.body {
//!         println!("{} {} {} {}", record.ts, d.tool, d.decision, d.reason);
//!     }
//! }
//! # Ok(()) }
//! ```

use std::fs::File;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod seams;

use super::Error;
use super::chain;
use super::line::{Body, HeadLine, Line, PreviousLine, VERSION};
use super::segment::{self, file_number};

/// One verified line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The file it was read from, and its 1-based line number there.
    pub file: Arc<str>,
    pub line: usize,
    pub seq: u64,
    /// UUIDv7.
    pub id: String,
    /// RFC 3339 as written, and as Unix milliseconds.
    pub ts: String,
    pub at_ms: i64,
    pub hash: String,
    pub body: Body<'static>,
}

/// What a whole read covered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub lines: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Whether the newest file was checked against `HEAD`.
    pub head_checked: bool,
    /// Bytes of a line without its newline at the end of the newest file,
    /// past the last line `HEAD` records: being written by a running
    /// gateway, or left half-written by a crash (the next start records
    /// them). Not verified, and not a record.
    pub unfinished_bytes: u64,
}

/// The verified records of a log's files, oldest first.
#[derive(Debug)]
pub struct Records {
    files: Vec<PathBuf>,
    index: usize,
    reader: Option<BufReader<File>>,
    name: Arc<str>,
    line_no: usize,
    offset: u64,
    last: Option<(u64, String)>,
    next_opening: Option<PreviousLine<'static>>,
    head: Option<HeadLine<'static>>,
    /// `HEAD` of a directory read, where it names a newer file than the
    /// newest one there: that file was deleted.
    head_beyond: Option<HeadLine<'static>>,
    /// Whether the file being read had its `sealed` line: nothing follows it.
    sealed: bool,
    /// Read as a running gateway writes it ([`Records::open_live`]).
    live: bool,
    buf: Vec<u8>,
    summary: Summary,
    done: bool,
}

impl Records {
    /// Reads `paths`: log files, or directories (all their log files). Log
    /// files are read in the order of their numbers. The log may be one a
    /// running gateway writes: a newest file without a whole line yet is
    /// not read (unless `HEAD` names it), the oldest files `retain` deletes
    /// meanwhile are passed over, and a line past `HEAD` at the newest
    /// file's end is counted in [`Summary::unfinished_bytes`].
    pub fn open(paths: &[PathBuf]) -> Result<Self, Error> {
        Self::open_as(paths, false)
    }

    /// [`Records::open`], for a log a running gateway may be writing while
    /// it is read (reports, `tail`): the newest file ends at its last whole
    /// line, whether or not `HEAD` is there to tell a line being written
    /// from a cut one. Every line read is checked as by `open`. Both pass
    /// over the oldest files `retain` deletes while they read.
    pub fn open_live(paths: &[PathBuf]) -> Result<Self, Error> {
        Self::open_as(paths, true)
    }

    fn open_as(paths: &[PathBuf], live: bool) -> Result<Self, Error> {
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for path in paths {
            if path.is_dir() {
                files.extend(segment::list(path)?.into_iter().map(|(_, p)| p));
                dirs.push(path);
            } else {
                files.push(path.clone());
            }
        }
        files.sort_by_key(|p| (number(p), p.clone()));
        files.dedup();
        let unfinished = files.last().and_then(|p| not_begun(p));
        if unfinished.is_some() {
            files.pop();
        }
        let last_dir = files
            .last()
            .map(|last| last.parent().unwrap_or(Path::new(".")));
        let last_head = last_dir.and_then(segment::read_head);
        let newest = files.last().and_then(|l| number(l));
        let (head, head_beyond) = match (last_head, newest) {
            (Some(h), Some(n)) if file_number(&h.file).is_some_and(|f| f > n) => {
                // Only a whole directory read says the newer file should be
                // here; files named one by one may leave it out. A live log
                // may have begun it since the listing: then it is there.
                let listed = last_dir.is_some_and(|d| {
                    dirs.iter().any(|x| same_dir(x, d)) && !d.join(h.file.as_ref()).exists()
                });
                (None, listed.then_some(h))
            }
            (Some(h), _)
                if Some(h.file.as_ref())
                    == files
                        .last()
                        .and_then(|l| l.file_name())
                        .and_then(|n| n.to_str()) =>
            {
                (Some(h), None)
            }
            _ => (None, None),
        };
        Ok(Self {
            files,
            index: 0,
            reader: None,
            name: Arc::from(""),
            line_no: 0,
            offset: 0,
            last: None,
            next_opening: None,
            head,
            head_beyond,
            sealed: false,
            live,
            buf: Vec::new(),
            summary: Summary {
                unfinished_bytes: unfinished.unwrap_or(0),
                ..Summary::default()
            },
            done: false,
        })
    }

    /// What has been read so far (all of it, once the iterator ended).
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Whether file `index` and every file listed before it are gone:
    /// what `retain` does to the oldest files of a running log.
    fn retained_away(&self, index: usize) -> bool {
        self.files[..=index].iter().all(|p| !p.exists())
    }

    fn bad(&self, line: usize, what: impl Into<String>) -> Error {
        Error::Bad {
            file: self.name.to_string(),
            line,
            what: what.into(),
        }
    }

    /// Opens the next file; `false` if it was passed over (see
    /// [`Records::open_live`]).
    fn open_file(&mut self) -> Result<bool, Error> {
        let path = &self.files[self.index];
        let file = match File::open(path) {
            Ok(file) => file,
            // Deleted since the listing, as every file before it: that is
            // what `retain` does to the oldest files of a running log. The
            // chain starts again at the next file's `opened` line, as if
            // they had been deleted before. A file gone while an older one
            // is still there was not deleted by `retain`.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && self.index + 1 < self.files.len()
                    && self.retained_away(self.index) =>
            {
                self.index += 1;
                self.last = None;
                return Ok(false);
            }
            Err(e) => return Err(Error::io(path, e)),
        };
        self.name = Arc::from(path.display().to_string());
        self.reader = Some(BufReader::with_capacity(256 * 1024, file));
        self.line_no = 0;
        self.offset = 0;
        self.sealed = false;
        self.summary.files += 1;
        self.next_opening = self.files.get(self.index + 1).and_then(|p| opening(p));
        Ok(true)
    }

    fn next_line(&mut self) -> Result<Option<Record>, Error> {
        loop {
            if self.reader.is_none() {
                if self.index >= self.files.len() {
                    return Ok(None);
                }
                if !self.open_file()? {
                    continue;
                }
            }
            self.buf.clear();
            let read = match self.reader.as_mut() {
                Some(r) => r.read_until(b'\n', &mut self.buf),
                None => Ok(0),
            };
            let n = read.map_err(|e| Error::io(&self.files[self.index], e))?;
            if n == 0 || self.buf.last() != Some(&b'\n') {
                // Live, the newest file's unfinished line is still being
                // written (unless the file was sealed): it ends before it.
                let writing = self.live && self.index + 1 == self.files.len() && !self.sealed;
                self.end_of_file(if writing { 0 } else { n as u64 })?;
                continue;
            }
            self.line_no += 1;
            self.offset += n as u64;
            let record = self.check(self.line_no)?;
            return Ok(Some(record));
        }
    }

    fn check(&mut self, at: usize) -> Result<Record, Error> {
        let text = &self.buf[..self.buf.len() - 1];
        let hash = chain::check_line(text).map_err(|what| self.bad(at, what))?;
        let line: Line<'static> = serde_json::from_slice(text)
            .map_err(|e| self.bad(at, format!("not a decision-log line ({e})")))?;
        if line.v != VERSION {
            return Err(self.bad(
                at,
                format!("line format version {} is not {VERSION}", line.v),
            ));
        }
        match &self.last {
            Some((seq, prev)) => {
                // A crafted `seq` of u64::MAX must not overflow.
                if Some(line.seq) != seq.checked_add(1) {
                    let what = if line.seq > *seq {
                        format!(
                            "seq {} follows seq {seq}: {} line(s) before it are missing",
                            line.seq,
                            line.seq - *seq - 1
                        )
                    } else {
                        format!("seq {} follows seq {seq}: lines are out of order", line.seq)
                    };
                    return Err(self.bad(at, what));
                }
                if line.prev != *prev {
                    return Err(self.bad(at, "its prev is not the hash of the line before it: a line was removed, inserted or moved here"));
                }
            }
            None => self.check_start(at, &line)?,
        }
        if at == 1 && !is_opened(&line.body) {
            return Err(self.bad(at, "a file must start with an \"opened\" line"));
        }
        if self.sealed {
            return Err(self.bad(
                at,
                "it follows its file's \"sealed\" line: lines were added after the file was closed",
            ));
        }
        self.sealed = matches!(&line.body, Body::Log(l) if l.event == "sealed");
        if let Some(head) = &self.head
            && self.index + 1 == self.files.len()
            && head.seq == line.seq
            && head.hash != hash
        {
            return Err(self.bad(
                at,
                "its hash is not the one HEAD records for it: the line was replaced",
            ));
        }
        self.last = Some((line.seq, hash.clone()));
        self.summary.lines += 1;
        self.summary.first_seq.get_or_insert(line.seq);
        self.summary.last_seq = Some(line.seq);
        let at_ms = line
            .ts
            .parse::<jiff::Timestamp>()
            .map_or(0, |t| t.as_millisecond());
        Ok(Record {
            file: Arc::clone(&self.name),
            line: at,
            seq: line.seq,
            id: line.id.into_owned(),
            ts: line.ts.into_owned(),
            at_ms,
            hash,
            body: line.body,
        })
    }
}

impl Iterator for Records {
    type Item = Result<Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_line() {
            Ok(Some(record)) => Some(Ok(record)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads `paths` to the end: the summary, or the first problem.
pub fn verify(paths: &[PathBuf]) -> Result<Summary, Error> {
    let mut records = Records::open(paths)?;
    for record in records.by_ref() {
        record?;
    }
    Ok(records.summary().clone())
}

/// The length of `path`, if it is a file the writer has made but not yet
/// given its first whole line, and `HEAD` beside it does not name it: a
/// rotation or a start in progress (or a crash's, which the next start
/// drops). Nothing of it to read yet. Where `HEAD` names it, its first
/// line was written and is cut: it is read, and fails.
fn not_begun(path: &Path) -> Option<u64> {
    /// More than any `opened` line: a file without a newline in its first
    /// this many bytes is not one being begun.
    const FIRST_LINE_MAX: u64 = 4096;
    let len = std::fs::metadata(path).ok()?.len();
    if len >= FIRST_LINE_MAX {
        return None;
    }
    let name = path.file_name()?.to_str()?;
    let dir = path.parent().unwrap_or(Path::new("."));
    if segment::read_head(dir).is_some_and(|h| h.file == name) {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    (!bytes.contains(&b'\n')).then_some(bytes.len() as u64)
}

/// Whether two paths name one directory (as given, or resolved).
fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

fn is_opened(body: &Body<'_>) -> bool {
    matches!(body, Body::Log(l) if l.event == "opened")
}

/// The `previous` of a file's first line, if it is an `opened` line.
fn opening(path: &Path) -> Option<PreviousLine<'static>> {
    let mut first = Vec::new();
    BufReader::new(File::open(path).ok()?)
        .read_until(b'\n', &mut first)
        .ok()?;
    let line: Line<'static> = serde_json::from_slice(first.strip_suffix(b"\n")?).ok()?;
    match line.body {
        Body::Log(l) if l.event == "opened" => l.previous,
        _ => None,
    }
}

fn number(path: &Path) -> Option<u64> {
    file_number(path.file_name()?.to_str()?)
}

fn file_name_of(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_owned()
}
