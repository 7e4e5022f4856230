//! Accept stage: the limits one listener enforces, as the listener and the
//! HTTP engine use them, and the body-read deadline handed to whoever reads
//! a request's body.

use std::future::Future;
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;

use super::conn::Clock;
use super::screen::HeadLimits;
use crate::config::{Connections, ListenerRole};

/// One listener's connection limits (see `config::Connections`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_concurrent_streams: u32,
    pub max_headers: usize,
    pub max_header_bytes: usize,
}

impl Limits {
    /// The limits `config` gives `role`'s listener.
    pub fn new(config: &Connections, role: ListenerRole) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            body_read_timeout: config.body_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections(role),
            max_connections_per_address: config.max_connections_per_address(role),
            max_concurrent_streams: config.max_concurrent_streams,
            max_headers: config.max_headers,
            max_header_bytes: config.max_header_bytes,
        }
    }

    pub(super) fn clock(&self) -> Clock {
        Clock {
            header_read: self.header_read_timeout,
            idle: self.idle_timeout,
        }
    }

    pub(super) fn head(&self) -> HeadLimits {
        HeadLimits {
            max_headers: self.max_headers,
            max_header_bytes: self.max_header_bytes,
        }
    }

    /// The most of one HTTP/1 request head the engine buffers.
    pub(super) fn engine_buffer(&self) -> usize {
        (self.max_header_bytes + ENGINE_SLACK).max(8192)
    }

    /// The HTTP engine for one connection. Its own limits sit a little
    /// above the screen's, so a head over a limit usually gets the
    /// screen's explained 431 while the engine still bounds the memory a
    /// head may take (its default was ~400 KB).
    pub(super) fn builder(&self) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        let slack = ENGINE_SLACK;
        let mut h1 = builder.http1();
        // The listener's watchdog times heads and idle connections; the
        // engine's own header timer would restart on every keep-alive.
        h1.header_read_timeout(None)
            .max_buf_size(self.engine_buffer())
            // A client may shut its write side once its request is sent
            // and still wait for the answer (RFC 9112 §9.6).
            .half_close(true);
        if self.max_headers > DEFAULT_H1_MAX_HEADERS {
            h1.max_headers(self.max_headers);
        }
        let per_field = 32; // RFC 9113 §6.5.2 counts 32 bytes per field.
        let list = self
            .max_header_bytes
            .saturating_add(self.max_headers.saturating_mul(per_field))
            .saturating_add(slack);
        builder
            .http2()
            .max_concurrent_streams(self.max_concurrent_streams)
            .max_header_list_size(u32::try_from(list).unwrap_or(u32::MAX));
        builder
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(&Connections::default(), ListenerRole::Agents)
    }
}

/// How far the engine's own head limits sit above the screen's.
const ENGINE_SLACK: usize = 16 * 1024;

/// hyper's own HTTP/1 header-count limit (kept as is: raising it moves
/// every head's parse to the heap).
const DEFAULT_H1_MAX_HEADERS: usize = 100;

tokio::task_local! {
    static BODY_READ_TIMEOUT: Duration;
}

/// Runs a request's handler with the listener's body-read timeout in reach
/// of [`body_read_timeout`].
pub(super) fn with_body_timeout<F: Future>(
    limit: Duration,
    handler: F,
) -> impl Future<Output = F::Output> {
    BODY_READ_TIMEOUT.scope(limit, handler)
}

/// How long the request being handled may take to deliver its body; `None`
/// outside a listener's request (e.g. a handler called directly in a test).
pub fn body_read_timeout() -> Option<Duration> {
    BODY_READ_TIMEOUT.try_with(|t| *t).ok()
}
