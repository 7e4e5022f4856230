//! Task-context stage, durability: the embedded journal on redb. One table
//! per record kind (key: the record's id, value: its JSON), a format marker
//! in `meta`, and one fsynced write transaction per [`Durable::write`].
//!
//! After an I/O failure (disk full, file system gone read-only) redb
//! refuses every later transaction until the file is opened again, so the
//! journal reopens it — at most once a [`REOPEN_EVERY`] — and writes work
//! again as soon as the disk does, without a restart.

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use ::redb::{
    Builder, CommitError, Database, DatabaseError, Durability, ReadTransaction, ReadableDatabase,
    ReadableTable, StorageError, TableDefinition, TableError, WriteTransaction,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Durable, Error, Image, Key, Record};
use crate::store::model::{Approval, Grant, Task};

/// The on-disk layout this code reads and writes. Bump it (and teach
/// [`RedbJournal::open`] to migrate) when a table or encoding changes.
const FORMAT_VERSION: u64 = 1;
const FORMAT_KEY: &str = "format_version";

type Records = TableDefinition<'static, &'static str, &'static [u8]>;

const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

/// Every record table; the kind constants below index it.
const TABLES: [(&str, Records); 4] = [
    ("tasks", TableDefinition::new("tasks")),
    ("grants", TableDefinition::new("grants")),
    ("approvals", TableDefinition::new("approvals")),
    ("activity", TableDefinition::new("activity")),
];
const TASKS: usize = 0;
const GRANTS: usize = 1;
const APPROVALS: usize = 2;
const ACTIVITY: usize = 3;

/// Page cache; the journal is read whole once at start-up, then only written.
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// How often a journal whose file failed is opened again (each attempt
/// verifies the whole file): writes in between are refused at once.
pub const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// The redb journal. Writers are serialized by redb; readers never block them.
pub struct RedbJournal {
    /// `None` while a reopen after a failure has not yet succeeded. Every
    /// transaction holds the read lock; only a reopen takes the write lock.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    /// Set by an I/O failure (redb then refuses every transaction): when the
    /// last reopen was tried, if one was.
    failed: Mutex<Option<Failed>>,
}

/// A journal whose file failed, waiting to be opened again.
#[derive(Debug, Clone, Copy)]
struct Failed {
    last_try: Option<Instant>,
}

// === impl RedbJournal ===

impl RedbJournal {
    /// Opens the journal at `path`, creating it (and its directories) if
    /// missing. Fails if the file is not a toolgate journal, was written by
    /// a newer toolgate, or is held open by another process.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let shown = path.display().to_string();
        let open_err = |detail: String| Error::Open {
            path: shown.clone(),
            detail,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| open_err(format!("cannot create directory {}: {e}", dir.display())))?;
        }
        let journal = Self {
            db: RwLock::new(Some(open_db(path).map_err(open_err)?)),
            path: path.to_path_buf(),
            failed: Mutex::new(None),
        };
        journal.check_format().map_err(open_err)?;
        Ok(journal)
    }

    /// The file this journal writes, for start-up logs.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stamps a new file with [`FORMAT_VERSION`] and creates its tables;
    /// refuses a file with another version or without a marker.
    fn check_format(&self) -> Result<(), String> {
        let db = self.db().map_err(|e| e.to_string())?;
        let txn = self.begin_write(&db)?;
        let found = {
            let meta = txn.open_table(META).map_err(|e| table_detail("meta", e))?;
            let found = meta
                .get(FORMAT_KEY)
                .map_err(|e| format!("cannot read the format marker: {e}"))?;
            found.map(|v| v.value())
        };
        match found {
            Some(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "journal format version {v} is not the one this toolgate reads \
                     ({FORMAT_VERSION}); was it written by a newer toolgate?"
                ));
            }
            None => {
                let others = txn
                    .list_tables()
                    .map_err(|e| format!("cannot list tables: {e}"))?
                    .filter(|t| ::redb::TableHandle::name(t) != "meta")
                    .count();
                if others > 0 {
                    return Err("a redb database, but not a toolgate journal (no format \
                                marker); point tasks.store at a new file"
                        .into());
                }
                let mut meta = txn.open_table(META).map_err(|e| table_detail("meta", e))?;
                meta.insert(FORMAT_KEY, FORMAT_VERSION)
                    .map_err(|e| format!("cannot write the format marker: {e}"))?;
            }
        }
        for (name, def) in TABLES {
            txn.open_table(def).map_err(|e| table_detail(name, e))?;
        }
        txn.commit()
            .map_err(|e| format!("cannot commit the format marker: {e}"))
    }

    /// The open database, reopened first if a failure closed it and the
    /// last attempt is [`REOPEN_EVERY`] old. Held for a whole transaction.
    fn db(&self) -> Result<Open<'_>, Error> {
        let failed = *self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(failed) = failed {
            if failed.last_try.is_some_and(|t| t.elapsed() < REOPEN_EVERY) {
                return Err(Error::Write(format!(
                    "{}: unwritable since an earlier I/O error; reopened at most every {REOPEN_EVERY:?}",
                    self.path.display()
                )));
            }
            self.reopen();
        }
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(Error::Write(format!(
                "{}: not open since an earlier I/O error",
                self.path.display()
            )));
        }
        Ok(Open(guard))
    }

    /// Drops the failed database and opens the file again (redb recovers
    /// the last committed state); on failure, tries again later.
    fn reopen(&self) {
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(state) = failed.as_mut() else {
            return; // another writer reopened it meanwhile
        };
        state.last_try = Some(Instant::now());
        // The file lock is released with the old handle, before the new one takes it.
        drop(db.take());
        match open_db(&self.path) {
            Ok(fresh) => {
                *db = Some(fresh);
                *failed = None;
                tracing::info!(path = %self.path.display(), "task store reopened after an I/O error: writes work again");
            }
            Err(detail) => {
                tracing::warn!(path = %self.path.display(), "task store still unwritable: {detail}");
            }
        }
    }

    /// Notes a failed transaction: after an I/O error redb refuses every
    /// later one on this handle, so the next write reopens the file.
    fn note_failure(&self, e: Option<&StorageError>) {
        if matches!(e, Some(StorageError::Io(_) | StorageError::PreviousIo)) {
            let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
            failed.get_or_insert(Failed { last_try: None });
        }
    }

    /// A write transaction that is durable (fsynced) when `commit` returns.
    fn begin_write(&self, db: &Open<'_>) -> Result<WriteTransaction, String> {
        let mut txn = db.get().begin_write().map_err(|e| {
            self.note_failure(match &e {
                ::redb::TransactionError::Storage(s) => Some(s),
                _ => None,
            });
            format!("cannot begin a write transaction: {e}")
        })?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| format!("cannot make the transaction durable: {e}"))?;
        Ok(txn)
    }

    fn write_err(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::Write(format!("{}: {what}: {e}", self.path.display()))
    }

    fn read_err(&self, what: &str, e: impl fmt::Display) -> Error {
        Error::Read(format!("{}: {what}: {e}", self.path.display()))
    }

    fn read_table<T: DeserializeOwned>(
        &self,
        txn: &ReadTransaction,
        kind: usize,
    ) -> Result<Vec<(String, T)>, Error> {
        let (name, def) = TABLES[kind];
        let table = txn
            .open_table(def)
            .map_err(|e| self.read_err(&format!("open table {name}"), e))?;
        let mut out = Vec::new();
        for entry in table
            .iter()
            .map_err(|e| self.read_err(&format!("scan table {name}"), e))?
        {
            let (key, value) =
                entry.map_err(|e| self.read_err(&format!("scan table {name}"), e))?;
            let id = key.value().to_owned();
            let record = serde_json::from_slice(value.value()).map_err(|e| Error::Corrupt {
                key: format!("{name}/{id}"),
                detail: e.to_string(),
            })?;
            out.push((id, record));
        }
        Ok(out)
    }
}

impl Durable for RedbJournal {
    fn load(&self) -> Result<Image, Error> {
        let db = self.db()?;
        let txn = db
            .get()
            .begin_read()
            .map_err(|e| self.read_err("begin transaction", e))?;
        let tasks = self.read_table(&txn, TASKS)?;
        let grants = self.read_table(&txn, GRANTS)?;
        let approvals = self.read_table(&txn, APPROVALS)?;
        Ok(Image {
            tasks: keyed("tasks", tasks, |t: &Task| &t.id)?,
            grants: keyed("grants", grants, |g: &Grant| &g.id)?,
            approvals: keyed("approvals", approvals, |a: &Approval| &a.id)?,
            activity: self.read_table(&txn, ACTIVITY)?,
        })
    }

    /// Puts are applied before deletes: a key in both ends up deleted.
    fn write(&self, put: &[Record], delete: &[Key]) -> Result<(), Error> {
        if put.is_empty() && delete.is_empty() {
            return Ok(());
        }
        // Encode first: a record that cannot be encoded opens no transaction.
        let mut encoded = Vec::with_capacity(put.len());
        for record in put {
            encoded.push(match record {
                Record::Task(t) => (TASKS, t.id.as_str(), to_json(&t.id, t)?),
                Record::Grant(g) => (GRANTS, g.id.as_str(), to_json(&g.id, g)?),
                Record::Approval(a) => (APPROVALS, a.id.as_str(), to_json(&a.id, a)?),
                Record::Activity { task_id, activity } => {
                    (ACTIVITY, task_id.as_str(), to_json(task_id, activity)?)
                }
            });
        }
        // Dropping `txn` on any error below aborts it: all or nothing.
        let db = self.db()?;
        let txn = self
            .begin_write(&db)
            .map_err(|detail| Error::Write(format!("{}: {detail}", self.path.display())))?;
        {
            let mut open = Vec::with_capacity(TABLES.len());
            for (name, def) in TABLES {
                let table = txn.open_table(def).map_err(|e| {
                    self.note_failure(match &e {
                        TableError::Storage(s) => Some(s),
                        _ => None,
                    });
                    self.write_err(&format!("open table {name}"), e)
                })?;
                open.push(table);
            }
            for (kind, id, bytes) in &encoded {
                let name = TABLES[*kind].0;
                open[*kind].insert(*id, bytes.as_slice()).map_err(|e| {
                    self.note_failure(Some(&e));
                    self.write_err(&format!("put {name}/{id}"), e)
                })?;
            }
            for key in delete {
                let (kind, id) = match key {
                    Key::Task(id) => (TASKS, id),
                    Key::Grant(id) => (GRANTS, id),
                    Key::Approval(id) => (APPROVALS, id),
                    Key::Activity(id) => (ACTIVITY, id),
                };
                let name = TABLES[kind].0;
                open[kind].remove(id.as_str()).map_err(|e| {
                    self.note_failure(Some(&e));
                    self.write_err(&format!("delete {name}/{id}"), e)
                })?;
            }
        }
        txn.commit().map_err(|e| {
            self.note_failure(match &e {
                CommitError::Storage(s) => Some(s),
                _ => None,
            });
            self.write_err("commit", e)
        })
    }
}

impl fmt::Debug for RedbJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbJournal")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The database a transaction runs on, held open (no reopen) until dropped.
struct Open<'a>(RwLockReadGuard<'a, Option<Database>>);

impl Open<'_> {
    fn get(&self) -> &Database {
        self.0
            .as_ref()
            .expect("RedbJournal::db hands out a guard only over an open database")
    }
}

// === helpers ===

/// Opens (or creates) the file, verifying every page: a file damaged
/// outside redb is refused instead of trusted (a plain open may panic on
/// one), and one left mid-commit by a crash or an I/O error is recovered.
fn open_db(path: &Path) -> Result<Database, String> {
    Builder::new()
        .set_cache_size(CACHE_BYTES)
        .set_check_integrity_on_open(true)
        .create(path)
        .map_err(open_detail)
}

fn to_json(id: &str, value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Write(format!("cannot encode {id}: {e}")))
}

/// A record stored under another id than its own is corrupt: fail closed.
fn keyed<T>(
    table: &str,
    rows: Vec<(String, T)>,
    id_of: impl Fn(&T) -> &String,
) -> Result<Vec<T>, Error> {
    rows.into_iter()
        .map(|(key, record)| {
            if *id_of(&record) == key {
                Ok(record)
            } else {
                Err(Error::Corrupt {
                    key: format!("{table}/{key}"),
                    detail: format!("holds the record of id {:?}", id_of(&record)),
                })
            }
        })
        .collect()
}

fn open_detail(e: DatabaseError) -> String {
    match e {
        DatabaseError::DatabaseAlreadyOpen => "the file is locked by another process; is another \
             toolgate running with the same tasks.store?"
            .into(),
        DatabaseError::LockProtocolMismatch => "the file is open in a process using another redb \
             version; is another toolgate running with the same tasks.store?"
            .into(),
        DatabaseError::UpgradeRequired(v) => format!(
            "written in redb file format {v}, which this toolgate cannot read; \
             upgrade the file or point tasks.store at a new one"
        ),
        DatabaseError::Storage(StorageError::Corrupted(why)) => damaged(&why),
        DatabaseError::Storage(StorageError::Io(io)) if io.kind() == ErrorKind::InvalidData => {
            damaged(&io)
        }
        DatabaseError::Storage(StorageError::Io(io)) => format!("I/O error: {io}"),
        other => other.to_string(),
    }
}

fn damaged(why: &dyn fmt::Display) -> String {
    format!(
        "not a redb database, or a damaged one ({why}); \
         move it aside or point tasks.store at a new file"
    )
}

fn table_detail(name: &str, e: TableError) -> String {
    match e {
        TableError::TableTypeMismatch { .. } | TableError::TableIsMultimap(_) => format!(
            "table {name} has another layout than a toolgate journal's; \
             point tasks.store at a new file"
        ),
        other => format!("cannot open table {name}: {other}"),
    }
}

#[cfg(test)]
mod tests;
