//! Accept stage: what goes wrong while accepting — failed `accept` calls
//! (out of file descriptors, mostly) and connections refused at a cap —
//! logged at most once per interval with a count, and backed off from
//! instead of spun on.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::admit::{Admission, Refused};

/// At most one warning per interval and kind; the rest are counted.
const LOG_EVERY: Duration = Duration::from_secs(5);
const FIRST_PAUSE: Duration = Duration::from_millis(10);
const MAX_PAUSE: Duration = Duration::from_secs(1);

/// A warning that is logged at most once per [`LOG_EVERY`].
#[derive(Debug, Default)]
struct Throttled {
    last: Option<Instant>,
    suppressed: u64,
}

impl Throttled {
    /// `Some(n)`: log now, `n` occurrences were left out since the last line.
    fn due(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self.last.is_some_and(|last| now < last + LOG_EVERY) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// The accept loop's failures, and how long it pauses after one.
#[derive(Debug, Default)]
pub(crate) struct AcceptTrouble {
    failed: Throttled,
    refused: Throttled,
    pause: Option<Duration>,
}

impl AcceptTrouble {
    /// A connection was accepted: failures in a row are over.
    pub(crate) fn cleared(&mut self) {
        self.pause = None;
    }

    /// `accept` failed: how long to pause before the next one. Out of file
    /// descriptors, an idle connection is closed to free one, and the
    /// pause doubles while it lasts.
    pub(crate) fn failed(&mut self, e: &io::Error, admission: &Admission) -> Option<Duration> {
        let exhausted = is_resource_exhaustion(e);
        if let Some(suppressed) = self.failed.due() {
            tracing::warn!(error = %e, suppressed, "accept failed");
        }
        if !exhausted {
            // A connection reset before it was accepted, and the like.
            return None;
        }
        admission.evict_one();
        let pause = self.pause.map_or(FIRST_PAUSE, |p| (p * 2).min(MAX_PAUSE));
        self.pause = Some(pause);
        Some(pause)
    }

    /// A connection was closed at once: the listener is at a cap.
    pub(crate) fn refused(&mut self, why: Refused, remote: SocketAddr) {
        if let Some(suppressed) = self.refused.due() {
            tracing::warn!(%remote, cap = why.as_str(), suppressed, "connection refused: every connection under the cap is serving a request");
        }
    }
}

/// Errors that mean "no file descriptor or memory to accept with".
fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE (24), ENFILE (23), ENOBUFS (105), ENOMEM (12) on Linux.
    matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105)) || e.kind() == io::ErrorKind::OutOfMemory
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fd_exhaustion_backs_off_and_is_logged_once_per_interval() {
        let admission = Admission::new(4, 4, 1024);
        let emfile = io::Error::from_raw_os_error(24);
        let mut trouble = AcceptTrouble::default();
        let pauses: Vec<_> = (0..9)
            .map(|_| trouble.failed(&emfile, &admission))
            .collect();
        assert_eq!(pauses[0], Some(FIRST_PAUSE));
        assert_eq!(pauses[1], Some(FIRST_PAUSE * 2));
        assert_eq!(pauses[8], Some(MAX_PAUSE));
        assert_eq!(trouble.failed.suppressed, 8, "one line for nine failures");
        tokio::time::advance(LOG_EVERY).await;
        assert_eq!(trouble.failed.due(), Some(8));
        trouble.cleared();
        assert_eq!(trouble.failed(&emfile, &admission), Some(FIRST_PAUSE));
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(trouble.failed(&reset, &admission), None);
    }
}
