//! Accept stage: one connection's clock. The connection's reads and its
//! requests move it between "waiting for a request head" and "serving";
//! a watchdog closes it when a client takes too long to send a head or
//! stays idle too long, or when admission evicts it to make room.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// No first byte seen since the connection last went idle.
const NONE: u64 = u64::MAX;

/// Why the gateway closed a connection (the debug log's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// A request head did not arrive whole within the header-read timeout.
    HeaderRead,
    /// No request in flight for the idle timeout.
    Idle,
    /// Admission closed this idle connection to make room for a new one.
    Evicted,
}

impl Closed {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::HeaderRead => "header_read_timeout",
            Self::Idle => "idle_timeout",
            Self::Evicted => "evicted",
        }
    }
}

/// The timeouts the watchdog enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    pub(crate) header_read: Duration,
    pub(crate) idle: Duration,
}

/// What one connection is doing, shared by its reads, its requests, its
/// watchdog and admission. Times are milliseconds since `born`.
#[derive(Debug)]
pub(crate) struct ConnState {
    born: Instant,
    in_flight: AtomicUsize,
    /// Whether any request has started on this connection.
    served: AtomicBool,
    idle_since: AtomicU64,
    first_byte: AtomicU64,
    http2: AtomicBool,
    evicted: AtomicBool,
    evict: Notify,
    /// The raw bytes of the HTTP/1 request head being read, up to
    /// `head_cap`: the parsed head no longer shows every framing header.
    head: Mutex<Vec<u8>>,
    head_cap: usize,
}

impl ConnState {
    pub(crate) fn new(head_cap: usize) -> Self {
        Self {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(NONE),
            http2: AtomicBool::new(false),
            evicted: AtomicBool::new(false),
            evict: Notify::new(),
            head: Mutex::new(Vec::new()),
            head_cap,
        }
    }

    fn head(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        // Plain bytes: a panic while it was held leaves nothing half-done.
        self.head.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `check` on the raw head of the request that just started (as
    /// far as it was captured), then forgets it.
    pub(crate) fn with_raw_head<R>(&self, check: impl FnOnce(&[u8]) -> R) -> R {
        let mut head = self.head();
        let result = check(&head);
        head.clear();
        result
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.born + Duration::from_millis(ms)
    }

    /// True while no request is in flight: admission may evict it.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) == 0
    }

    pub(crate) fn has_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    /// Marks a request as started; in flight until the guard drops.
    pub(crate) fn begin(self: &std::sync::Arc<Self>) -> InFlight {
        self.served.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            state: std::sync::Arc::clone(self),
        }
    }

    /// Asks the watchdog to close the connection now.
    pub(crate) fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.evict.notify_one();
    }

    #[cfg(test)]
    pub(crate) fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Bytes arrived: the first ones after going idle start the head's clock.
    fn on_read(&self, data: &[u8]) {
        if !self.served.load(Ordering::Relaxed)
            && self.first_byte.load(Ordering::Relaxed) == NONE
            && data.starts_with(b"PRI ")
        {
            self.http2.store(true, Ordering::Relaxed);
        }
        if !self.is_idle() {
            return;
        }
        if !self.http2.load(Ordering::Relaxed) {
            let mut head = self.head();
            let room = self.head_cap.saturating_sub(head.len());
            head.extend_from_slice(data.get(..room).unwrap_or(data));
        }
        if self.first_byte.load(Ordering::Relaxed) == NONE {
            let _ = self.first_byte.compare_exchange(
                NONE,
                self.now_ms(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// When the connection must be closed, and why; `None` while serving.
    fn deadline(&self, clock: Clock) -> Option<(Instant, Closed)> {
        if !self.is_idle() {
            return None;
        }
        if !self.has_served() {
            // The first request head (and any TLS handshake) within the
            // header-read timeout of connecting.
            return Some((self.born + clock.header_read, Closed::HeaderRead));
        }
        let first = self.first_byte.load(Ordering::Acquire);
        if first != NONE && !self.http2.load(Ordering::Relaxed) {
            return Some((self.at(first) + clock.header_read, Closed::HeaderRead));
        }
        let since = self.idle_since.load(Ordering::Acquire);
        Some((self.at(since) + clock.idle, Closed::Idle))
    }

    /// Resolves when the connection must be closed. It wakes at least every
    /// header-read period, so a head that starts while it sleeps is still
    /// timed from its first byte, without a wake-up per request.
    pub(crate) async fn watchdog(&self, clock: Clock) -> Closed {
        loop {
            if self.evicted.load(Ordering::Acquire) {
                return Closed::Evicted;
            }
            let now = Instant::now();
            let wake = match self.deadline(clock) {
                Some((at, why)) if at <= now => return why,
                Some((at, _)) => at.min(now + clock.header_read),
                None => now + clock.header_read,
            };
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = self.evict.notified() => {}
            }
        }
    }
}

/// One request in flight; dropping it (with the response body) ends it.
#[derive(Debug)]
pub(crate) struct InFlight {
    state: std::sync::Arc<ConnState>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let state = &self.state;
        state.idle_since.store(state.now_ms(), Ordering::Release);
        state.first_byte.store(NONE, Ordering::Release);
        state.head().clear();
        state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project! {
    /// A connection's byte stream, reporting its reads to the [`ConnState`].
    #[derive(Debug)]
    pub(crate) struct Watched<T> {
        #[pin]
        inner: T,
        state: std::sync::Arc<ConnState>,
    }
}

impl<T> Watched<T> {
    pub(crate) fn new(inner: T, state: std::sync::Arc<ConnState>) -> Self {
        Self { inner, state }
    }
}

impl<T: AsyncRead> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && let Some(data) = buf.filled().get(before..)
            && !data.is_empty()
        {
            this.state.on_read(data);
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

pin_project! {
    /// A response body that keeps its request in flight until it ends or
    /// is dropped: a streamed answer is not an idle connection.
    pub(crate) struct Tracked<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
    }
}

impl<B> Tracked<B> {
    pub(crate) fn new(inner: B, in_flight: InFlight) -> Self {
        Self {
            inner,
            in_flight: Some(in_flight),
        }
    }
}

impl<B: HttpBody> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None) = polled {
            this.in_flight.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const CLOCK: Clock = Clock {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[tokio::test(start_paused = true)]
    async fn a_silent_new_connection_is_closed_after_the_header_read_timeout() {
        let state = ConnState::new(1024);
        let started = Instant::now();
        assert_eq!(state.watchdog(CLOCK).await, Closed::HeaderRead);
        assert_eq!(started.elapsed(), CLOCK.header_read);
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_connection_gets_the_idle_timeout_then_its_next_head_the_header_timeout() {
        let state = Arc::new(ConnState::new(1024));
        drop(state.begin());
        let idle_from = Instant::now();
        assert_eq!(state.watchdog(CLOCK).await, Closed::Idle);
        assert_eq!(idle_from.elapsed(), CLOCK.idle);

        let state = Arc::new(ConnState::new(1024));
        drop(state.begin());
        let watch = {
            let state = Arc::clone(&state);
            tokio::spawn(async move { state.watchdog(CLOCK).await })
        };
        tokio::time::sleep(Duration::from_secs(15)).await;
        state.on_read(b"P");
        let byte_at = Instant::now();
        assert_eq!(watch.await.unwrap(), Closed::HeaderRead);
        assert_eq!(byte_at.elapsed(), CLOCK.header_read);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_in_flight_is_never_timed_out_and_eviction_is_immediate() {
        let state = Arc::new(ConnState::new(1024));
        let busy = state.begin();
        let watched = tokio::time::timeout(Duration::from_secs(600), state.watchdog(CLOCK)).await;
        assert!(watched.is_err(), "closed while serving");
        assert!(!state.is_idle());
        drop(busy);
        assert!(state.is_idle());
        state.evict();
        assert_eq!(state.watchdog(CLOCK).await, Closed::Evicted);
    }
}
