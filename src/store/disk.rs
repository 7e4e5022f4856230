//! Task-context stage, durability: the journal every acknowledged change is
//! written to before it is applied in memory, and read back whole at
//! start-up. The embedded implementation is [`redb::RedbJournal`].

pub mod health;
pub mod redb;

use std::fmt;

use super::model::{Activity, Approval, Grant, Task};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open {path}: {detail}")]
    Open { path: String, detail: String },
    #[error("write failed: {0}")]
    Write(String),
    #[error("read failed: {0}")]
    Read(String),
    #[error("record {key} is corrupt: {detail}")]
    Corrupt { key: String, detail: String },
}

/// One record to write (insert or replace, by id).
#[derive(Debug, Clone)]
pub enum Record {
    Task(Task),
    Grant(Grant),
    Approval(Approval),
    Activity { task_id: String, activity: Activity },
}

/// One record to delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Task(String),
    Grant(String),
    Approval(String),
    Activity(String),
}

/// Everything the journal holds, as loaded at start-up.
#[derive(Debug, Clone, Default)]
pub struct Image {
    pub tasks: Vec<Task>,
    pub grants: Vec<Grant>,
    pub approvals: Vec<Approval>,
    pub activity: Vec<(String, Activity)>,
}

/// A crash-safe journal: `write` is one atomic transaction, durable (fsynced)
/// when it returns `Ok`; a crash at any point leaves either all of it or none.
pub trait Durable: Send + Sync + fmt::Debug {
    fn load(&self) -> Result<Image, Error>;
    fn write(&self, put: &[Record], delete: &[Key]) -> Result<(), Error>;
}
