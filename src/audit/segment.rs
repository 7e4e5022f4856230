//! Record stage: the log's files. A directory holds numbered files
//! (`decisions-00000001.jsonl`, …; the highest is being written, none is
//! ever renamed) and `HEAD`, the anchor the writer rewrites in place after
//! every batch: the file, `seq`, `hash` and length of the newest line. A
//! cut-off tail of the newest file shows against it.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use super::Error;
use super::chain;
use super::line::{HeadLine, Line};

/// The anchor file in the log's directory.
pub const HEAD_FILE: &str = "HEAD";

/// `HEAD` is rewritten in place at this fixed size (padded with spaces).
const HEAD_SIZE: usize = 512;

/// The name of file number `n`.
pub fn file_name(n: u64) -> String {
    format!("decisions-{n:08}.jsonl")
}

/// The number of a log file's name, if it is one.
pub fn file_number(name: &str) -> Option<u64> {
    name.strip_prefix("decisions-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// The log files in `dir`, oldest first.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, Error> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(n) = entry.file_name().to_str().and_then(file_number) {
            files.push((n, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Where an existing file's chain ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tail {
    pub(crate) seq: u64,
    pub(crate) hash: String,
    /// Length up to and including the last complete line.
    pub(crate) bytes: u64,
    /// Bytes after it (an incomplete last line).
    pub(crate) torn: u64,
}

/// Reads where the chain of `path` ends (its last complete line), or
/// `None` for a file without one.
pub(crate) fn tail(path: &Path) -> Result<Option<Tail>, Error> {
    let data = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let end = match data.iter().rposition(|b| *b == b'\n') {
        Some(i) => i + 1,
        None => return Ok(None),
    };
    let start = data[..end - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let text = &data[start..end - 1];
    let bad = |what: &str| Error::Bad {
        file: path.display().to_string(),
        line: 0,
        what: format!("its last line {what}; the log cannot continue from it"),
    };
    let hash = chain::check_line(text).map_err(bad)?;
    let line: Line<'static> =
        serde_json::from_slice(text).map_err(|e| bad(&format!("is not a log line ({e})")))?;
    Ok(Some(Tail {
        seq: line.seq,
        hash,
        bytes: end as u64,
        torn: (data.len() - end) as u64,
    }))
}

/// `HEAD`, opened for rewriting in place.
#[derive(Debug)]
pub(crate) struct Head {
    file: File,
    buf: Vec<u8>,
}

impl Head {
    pub(crate) fn open(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(HEAD_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        Ok(Self {
            file,
            buf: Vec::with_capacity(HEAD_SIZE),
        })
    }

    pub(crate) fn write(&mut self, head: &HeadLine<'_>) -> std::io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, head)?;
        if self.buf.len() < HEAD_SIZE {
            self.buf.resize(HEAD_SIZE - 1, b' ');
            self.buf.push(b'\n');
        }
        self.file.write_all_at(&self.buf, 0)
    }

    pub(crate) fn sync(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        self.file.sync_data()
    }
}

/// What `HEAD` in `dir` says, if it exists and reads.
pub(crate) fn read_head(dir: &Path) -> Option<HeadLine<'static>> {
    let text = std::fs::read(dir.join(HEAD_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Whether `head` records more than the log holds, whose newest file is
/// number `newest` and ends at `seq` with hash `hash`: a newer file, a
/// later line, or another line at that `seq`.
pub(crate) fn head_claims_more(head: &HeadLine<'_>, newest: u64, seq: u64, hash: &str) -> bool {
    match file_number(&head.file) {
        Some(n) if n > newest => true,
        Some(_) | None => head.seq > seq || (head.seq == seq && head.hash != hash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(file_name(7), "decisions-00000007.jsonl");
        assert_eq!(file_number("decisions-00000007.jsonl"), Some(7));
        assert_eq!(file_number("HEAD"), None);
        assert_eq!(file_number("decisions-x.jsonl"), None);
    }
}
