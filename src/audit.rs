//! Record stage, the decision log: one JSON line per call-phase decision and
//! per task, grant, approval and admin event, hash-chained so that an edit,
//! a removed or moved line, or a cut-off tail is found by `toolgate audit
//! verify`. The request path reserves a place in a bounded outbox when it
//! decides, and copies the record's facts into it when the request ends;
//! the writer thread takes the whole outbox once a batch interval, masks
//! arguments, looks up task facts, serializes, hashes, writes, rotates and
//! syncs.
//!
//! ```text
//!  request path                        writer thread (its own)
//!  ────────────                        ───────────────────────
//!  reserve a place ─▶ outbox (bounded) ─▶ mask ─▶ line ─▶ hash chain ─▶ file
//!  (none: fail closed   flat mail,          │                        HEAD ◀┘
//!   or count a drop)    swapped whole       └─ rotate · retain · fsync
//! ```
//!
//! [`read::Records`] reads a log back as typed, verified records; reports
//! and `toolgate audit verify` are built on it. The line format is in
//! [`line`] and the README ("Decision log and reports").

mod chain;
mod entry;
pub mod line;
mod mask;
mod metrics;
mod outbox;
pub mod read;
mod render;
pub mod report;
mod segment;
mod writer;

pub use chain::GENESIS;
pub use entry::{AdminEntry, DecisionEntry, Entry, EventEntry, TEXTS, Text, Texts, Upstream};
pub use mask::{Masks, SCRUBBED};
pub(crate) use render::json::{any_byte, needs_escape as json_needs_escape};
pub use segment::{HEAD_FILE, file_name, file_number};
pub use writer::{AuditLog, Permit};

/// Errors starting the log, or reading one back.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("audit.{field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {what}")]
    Bad {
        file: String,
        line: usize,
        what: String,
    },
    #[error("the audit writer thread could not start: {0}")]
    Thread(std::io::Error),
}

impl Error {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    crate::store::model::now_ms()
}

#[cfg(test)]
mod tests;
