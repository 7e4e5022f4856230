//! Start-up stage: `[audit]`, the decision log — where it is written, when
//! it rotates, how long it is kept, when it is flushed to disk, what happens
//! when it cannot be written, and which call arguments it never shows.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{SecretRef, duration};

/// `[audit]`: the tamper-evident decision log (see README "Decision log").
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audit {
    /// Directory of the log's files (`decisions-00000001.jsonl`, …, `HEAD`).
    /// Relative paths are relative to the config file.
    pub dir: PathBuf,
    /// A file past this many bytes is sealed and the next one started.
    #[serde(default = "Audit::default_max_file_size")]
    pub max_file_size: u64,
    /// How many files are kept; older ones are deleted after a rotation.
    #[serde(default = "Audit::default_retain")]
    pub retain: usize,
    /// When written lines are forced to disk.
    #[serde(default)]
    pub fsync: Fsync,
    /// With `fsync = "interval"`: how often.
    #[serde(default = "Audit::default_fsync_interval", with = "duration")]
    pub fsync_interval: Duration,
    /// Shortest time between two batches: under load records gather in the
    /// outbox for this long and are written (and synced) together, instead
    /// of waking the writer once per record. A record arriving when the
    /// writer is idle is written at once.
    #[serde(default = "Audit::default_batch_interval", with = "duration")]
    pub batch_interval: Duration,
    /// What calls get when the log cannot take their record.
    #[serde(default)]
    pub on_failure: OnFailure,
    /// Records waiting for the writer thread, at most: reserved by a call
    /// not yet ended, in the outbox, or taken and not yet written.
    #[serde(default = "Audit::default_queue")]
    pub queue: usize,
    /// Key of the keyed hash (HMAC-SHA256) that `action = "hash"` masks use.
    pub hash_key: Option<SecretRef>,
    /// Call arguments the log never shows in clear.
    #[serde(default)]
    pub mask: Vec<Mask>,
}

/// When the writer forces lines to disk (`fdatasync`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fsync {
    /// After every batch it writes: a record is on disk before the next batch.
    Batch,
    /// At most every `fsync_interval` (and at rotation and shutdown): the
    /// default, as auditd's and Envoy's access logs do (README "fsync policy").
    #[default]
    Interval,
    /// Left to the operating system (rotation and shutdown still sync).
    Never,
}

/// What happens to calls when the log cannot take their record (queue full,
/// or the disk failing).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Refuse them (`audit_unavailable`): nothing runs unrecorded.
    #[default]
    FailClosed,
    /// Keep serving; every record not written is counted
    /// (`toolgate_audit_dropped_total`) and logged.
    Serve,
}

/// One argument the log never shows in clear: an RFC 6901 JSON pointer into
/// the call's arguments (`*` as a segment matches any key or index).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mask {
    pub pointer: String,
    #[serde(default)]
    pub action: MaskAction,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskAction {
    /// Remove the field.
    #[default]
    Drop,
    /// Replace it by `"hmac-sha256:<hex>"` of its JSON text under `hash_key`:
    /// equal values stay comparable, the value does not show.
    Hash,
}

impl Audit {
    fn default_max_file_size() -> u64 {
        64 * 1024 * 1024
    }
    fn default_retain() -> usize {
        32
    }
    fn default_fsync_interval() -> Duration {
        Duration::from_secs(1)
    }
    fn default_batch_interval() -> Duration {
        // Like an access log's flush interval (Envoy's is 1 s): under load
        // each batch costs a wake-up, a write and a HEAD update, so a
        // batch of ~1k records is far cheaper per record than one of 100
        // (the load benchmark's row (g)). An idle writer writes at once.
        Duration::from_millis(50)
    }
    fn default_queue() -> usize {
        65_536
    }

    /// The checks serde cannot do, each reported with its field.
    pub(super) fn check(&self, report: &mut dyn FnMut(&str, String)) {
        if self.max_file_size < 4096 {
            report("audit.max_file_size", "must be at least 4096 bytes".into());
        }
        if self.retain == 0 {
            report("audit.retain", "must keep at least 1 file".into());
        }
        if self.queue == 0 {
            report("audit.queue", "must be greater than zero".into());
        }
        if self.batch_interval > Duration::from_secs(1) {
            report("audit.batch_interval", "must be at most 1s".into());
        }
        if self.fsync == Fsync::Interval && self.fsync_interval.is_zero() {
            report("audit.fsync_interval", "must be greater than zero".into());
        }
        for (i, mask) in self.mask.iter().enumerate() {
            if !mask.pointer.starts_with('/') {
                report(
                    &format!("audit.mask[{i}].pointer"),
                    format!(
                        "{:?} is not a JSON pointer into the arguments (it starts with '/')",
                        mask.pointer
                    ),
                );
            }
        }
        let hashes = self.mask.iter().any(|m| m.action == MaskAction::Hash);
        match &self.hash_key {
            None if hashes => report(
                "audit.hash_key",
                "a mask with action = \"hash\" needs hash_key = { env = \"NAME\" } (or { file = \"path\" })"
                    .into(),
            ),
            Some(key) => {
                if let Err(e) = key.resolve() {
                    report("audit.hash_key", e);
                }
            }
            None => {}
        }
    }
}
