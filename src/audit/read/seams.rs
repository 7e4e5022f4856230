//! Record stage, read back: where one file meets the next, the log's first
//! line, and the newest file against `HEAD` — the checks [`Records`] makes
//! at the seams of a log.

use super::{PreviousLine, Records, file_name_of, number};
use crate::audit::Error;
use crate::audit::chain::GENESIS;
use crate::audit::line::{Body, Line};
use crate::audit::segment::{file_number, head_claims_more};

impl Records {
    /// The end of a file: the next one must continue exactly from here.
    pub(super) fn end_of_file(&mut self, torn: u64) -> Result<(), Error> {
        self.reader = None;
        self.index += 1;
        let Some(next) = self.files.get(self.index) else {
            if torn > 0 {
                if self.sealed {
                    return Err(self.bad(
                        self.line_no + 1,
                        format!("{torn} bytes follow its file's \"sealed\" line: they were added after the file was closed"),
                    ));
                }
                if self.head.is_none() {
                    return Err(self.bad(
                        self.line_no + 1,
                        "incomplete line (no newline): the file was cut mid-line",
                    ));
                }
                // With `HEAD` beside the file, a line it does not record
                // is one still being written (or a crash's, which the next
                // start records); `check_head` tells a cut from that.
                self.summary.unfinished_bytes = torn;
            }
            return self.check_head();
        };
        let name = file_name_of(&self.files[self.index - 1]);
        if self.next_opening.is_none() && self.retained_away(self.index) {
            // `retain` deleted it, and this one, while they were read:
            // opening it passes over it.
            return Ok(());
        }
        let Some(prev) = self.next_opening.take() else {
            return Err(Error::Bad {
                file: next.display().to_string(),
                line: 1,
                what: format!("it does not start with an \"opened\" line continuing {name}"),
            });
        };
        let (seq, hash) = self.last.clone().unwrap_or((0, GENESIS.to_owned()));
        let at = self.line_no.max(1);
        if prev.file != name {
            return Err(Error::Bad {
                file: next.display().to_string(),
                line: 1,
                what: format!(
                    "it continues {} but follows {name}: a file is missing",
                    prev.file
                ),
            });
        }
        if prev.seq > seq {
            return Err(self.bad(at, format!(
                "the file ends at seq {seq}, but the next file continues from seq {}: lines were cut from its end",
                prev.seq
            )));
        }
        if prev.seq != seq || prev.hash != hash || prev.bytes != self.offset {
            return Err(self.bad(at, format!(
                "the next file continues from seq {} ({} bytes), not from this file's end (seq {seq}, {} bytes): its last lines were changed",
                prev.seq, prev.bytes, self.offset
            )));
        }
        if prev.torn_bytes != torn {
            return Err(self.bad(self.line_no + 1, format!(
                "{torn} bytes after the last line, where the writer left {}: the file was changed after it",
                prev.torn_bytes
            )));
        }
        if let Some(head) = &prev.head
            && head_claims_more(
                head,
                number(&self.files[self.index - 1]).unwrap_or(0),
                seq,
                &hash,
            )
        {
            return Err(self.bad(at, format!(
                "when the gateway restarted, HEAD recorded seq {} in {}, but the log ended at seq {seq}: lines were cut while it was down",
                head.seq, head.file
            )));
        }
        Ok(())
    }

    fn check_head(&mut self) -> Result<(), Error> {
        if let Some(head) = &self.head_beyond {
            return Err(self.bad(self.line_no.max(1), format!(
                "HEAD records seq {} written in {}, a newer file that is not there: the newest file(s) were deleted",
                head.seq, head.file
            )));
        }
        let Some(head) = &self.head else {
            return Ok(());
        };
        self.summary.head_checked = true;
        let seq = self.last.as_ref().map_or(0, |l| l.0);
        if head.seq > seq {
            return Err(self.bad(self.line_no.max(1), format!(
                "the file ends at seq {seq}, but HEAD records seq {} ({} bytes) written: lines were cut from its end",
                head.seq, head.bytes
            )));
        }
        Ok(())
    }

    /// The first line read must be the `opened` line the writer puts first
    /// in every file: where the chain starts, or (once `retain` deleted the
    /// files before it) the line continuing the file it names. Anything
    /// else means the oldest file lost its first lines.
    pub(super) fn check_start(&self, at: usize, line: &Line<'_>) -> Result<(), Error> {
        let previous = match &line.body {
            Body::Log(l) if l.event == "opened" => &l.previous,
            _ => {
                return Err(self.bad(at, format!(
                    "the log's first line (seq {}) is not the \"opened\" line every file starts with: lines were removed from the start of its oldest file",
                    line.seq
                )));
            }
        };
        match previous {
            None if line.seq != 1 || line.prev != GENESIS => {
                Err(self.bad(at, "the first line of the log does not start the chain"))
            }
            Some(p) if p.seq.checked_add(1) != Some(line.seq) || p.hash != line.prev => Err(self.bad(at, format!(
                "its seq and prev do not follow the end of {} (seq {}) it names as the file before",
                p.file, p.seq
            ))),
            // The file it names is gone (`retain`), but what its opening
            // recorded of it still stands.
            Some(PreviousLine {
                head: Some(head),
                file,
                seq,
                hash,
                ..
            }) if head_claims_more(head, file_number(file).unwrap_or(0), *seq, hash) => Err(self.bad(at, format!(
                "when the gateway restarted, HEAD recorded seq {} in {}, but the log ended at seq {}: lines were cut while it was down",
                head.seq, head.file, seq
            ))),
            _ => Ok(()),
        }
    }
}
