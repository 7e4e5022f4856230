//! Record stage: where `tracing` lines go — stderr, with the per-call
//! decision lines (`toolgate::decision::*`) gathered in a buffer that a
//! thread of its own writes out at most [`FLUSH_EVERY`] later (sooner once
//! [`FLUSH_AT`] bytes wait), instead of one `write(2)` per call on the
//! request path. A request never waits for stderr: past [`MAX_WAITING`]
//! bytes (stderr stuck) decision lines are dropped and counted, and the
//! count is written when stderr moves again. Every other line is written
//! at once, after whatever was buffered before it, so the order of lines
//! is kept; shutdown writes what waits ([`flush`]).
//!
//! A process killed outright (SIGKILL, abort) can lose up to
//! [`FLUSH_EVERY`] of decision lines; the decision log (`[audit]`) is the
//! durable record.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Longest a buffered line waits.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Buffered bytes that wake the writer early.
const FLUSH_AT: usize = 256 * 1024;
/// Buffered bytes past which decision lines are dropped (and counted).
const MAX_WAITING: usize = 8 * 1024 * 1024;
/// The target prefix of the lines that may wait.
const BUFFERED_TARGET: &str = "toolgate::decision";

/// The writer `tracing` formats into (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct Stderr;

/// One line's writer: buffered, or written through.
#[derive(Debug)]
pub struct Line {
    wait: bool,
}

struct Shared {
    waiting: Mutex<Vec<u8>>,
    /// Signalled when [`FLUSH_AT`] bytes wait.
    full: Condvar,
    /// Held while writing to stderr (lines leave in the order they came):
    /// the buffer last written out, empty, swapped for the waiting one so
    /// that neither is allocated again.
    order: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    /// False when the writer thread could not start: nothing waits then.
    buffered: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        // The first line starts the thread that writes buffered ones out.
        let spawned = std::thread::Builder::new()
            .name("toolgate-log".into())
            .spawn(|| {
                let shared = shared();
                loop {
                    {
                        let waiting = lock(&shared.waiting);
                        if waiting.len() < FLUSH_AT {
                            drop(shared.full.wait_timeout(waiting, FLUSH_EVERY));
                        }
                    }
                    flush();
                }
            });
        if let Err(e) = &spawned {
            eprintln!(
                "warning: cannot start the log writer ({e}); decision lines are written at once"
            );
        }
        Shared {
            waiting: Mutex::new(Vec::with_capacity(FLUSH_AT * 2)),
            full: Condvar::new(),
            order: Mutex::new(Vec::with_capacity(FLUSH_AT * 2)),
            dropped: AtomicU64::new(0),
            buffered: spawned.is_ok(),
        }
    })
}

/// Writes out the buffered lines (at shutdown, and every [`FLUSH_EVERY`]).
pub fn flush() {
    let shared = shared();
    let mut spare = lock(&shared.order);
    write_waiting(shared, &mut spare);
}

/// With `order` held (`spare` is its buffer): the waiting lines (and the
/// count of dropped ones) to stderr, the waiting buffer's lock held only to
/// swap it for the empty spare.
fn write_waiting(shared: &Shared, spare: &mut Vec<u8>) {
    std::mem::swap(&mut *lock(&shared.waiting), spare);
    let mut err = std::io::stderr().lock();
    // Nowhere to report a failing stderr: its lines are lost.
    let _ = err.write_all(spare);
    spare.clear();
    let dropped = shared.dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        let _ = writeln!(
            err,
            "toolgate: {dropped} decision lines dropped: stderr did not keep up"
        );
    }
}

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { wait: false }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Line {
        Line {
            wait: meta.target().starts_with(BUFFERED_TARGET),
        }
    }
}

impl std::io::Write for Line {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let shared = shared();
        if self.wait && shared.buffered {
            let mut waiting = lock(&shared.waiting);
            if waiting.len() + data.len() > MAX_WAITING {
                shared.dropped.fetch_add(1, Ordering::Relaxed);
            } else {
                waiting.extend_from_slice(data);
                if waiting.len() >= FLUSH_AT {
                    shared.full.notify_one();
                }
            }
        } else {
            // Whatever waited goes first.
            let mut spare = lock(&shared.order);
            write_waiting(shared, &mut spare);
            std::io::stderr().lock().write_all(data)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decision_lines_wait_and_others_do_not() {
        let allow = tracing::Metadata::new(
            "event",
            "toolgate::decision::allow",
            tracing::Level::INFO,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::EVENT,
        );
        let other = tracing::Metadata::new(
            "event",
            "toolgate::listener",
            tracing::Level::INFO,
            None,
            None,
            None,
            tracing::field::FieldSet::new(&[], tracing::callsite::Identifier(&CALLSITE)),
            tracing::metadata::Kind::EVENT,
        );
        assert!(Stderr.make_writer_for(&allow).wait);
        assert!(!Stderr.make_writer_for(&other).wait);
        assert!(!Stderr.make_writer().wait);
    }

    struct Callsite;
    static CALLSITE: Callsite = Callsite;
    impl tracing::callsite::Callsite for Callsite {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &tracing::Metadata<'_> {
            unreachable!("not registered")
        }
    }
}
