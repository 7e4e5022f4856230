//! Accept stage: sockets, TLS and HTTP/1.1 + h2 connections, and a graceful
//! drain on shutdown. Connections are admitted under caps, timed while they
//! send a request head or idle, and each request head is screened; the
//! rest is the handler's business.

mod admit;
mod conn;
pub mod fds;
mod limits;
pub mod screen;
pub mod tls;
mod trouble;

pub use limits::{Limits, body_read_timeout};

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::server::graceful::Watcher;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::Body;
use admit::Admission;
use conn::{ConnState, Tracked, Watched};
use trouble::AcceptTrouble;

/// What the accept stage knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    pub tls: bool,
}

/// The client certificate a TLS connection presented, verified by the
/// listener's client-certificate verifier (the admin listener's
/// `client_ca_file`). Parsed once per connection and put into the
/// extensions of every request on it; absent without a client certificate.
#[derive(Debug, Clone)]
pub struct ClientCert {
    /// The leaf certificate's URI and DNS subject alternative names.
    pub sans: Arc<[String]>,
}

/// TLS handshakes that take longer than this are dropped (the header-read
/// timeout, when shorter, cuts them first).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` with default limits; see [`serve_with`].
pub async fn serve<H, F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
    shutdown: CancellationToken,
    drain: Duration,
) where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    serve_with(listener, tls, handler, shutdown, drain, Limits::default()).await;
}

/// Serves `listener` under `limits` until `shutdown` is cancelled, then
/// drains: no new connections, in-flight requests and streams get up to
/// `drain` to finish, and whatever is left after that is cut.
pub async fn serve_with<H, F>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: H,
    shutdown: CancellationToken,
    drain: Duration,
    limits: Limits,
) where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let admission = Admission::new(
        limits.max_connections,
        limits.max_connections_per_address,
        limits.engine_buffer(),
    );
    let builder = Arc::new(limits.builder());
    let mut trouble = AcceptTrouble::default();
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(pair) => {
                trouble.cleared();
                pair
            }
            Err(e) => {
                if let Some(pause) = trouble.failed(&e, &admission) {
                    tokio::time::sleep(pause).await;
                }
                continue;
            }
        };
        let slot = match admission.admit(remote.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                trouble.refused(refused, remote);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            info: ConnInfo {
                remote,
                tls: acceptor.is_some(),
            },
            limits,
            builder: Arc::clone(&builder),
            acceptor: acceptor.clone(),
            handler: handler.clone(),
        };
        let watcher = graceful.watcher();
        conns.spawn(async move {
            let state = Arc::clone(slot.state());
            tokio::select! {
                () = conn.serve(stream, &state, watcher) => {}
                closed = state.watchdog(limits.clock()) => {
                    tracing::debug!(remote = %remote, reason = closed.as_str(), "connection closed by the gateway");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("drained all connections"),
        () = tokio::time::sleep(drain) => {
            tracing::warn!(open = conns.len(), "drain deadline passed; cutting the remaining connections");
        }
    }
    conns.abort_all();
}

/// One admitted connection, before its handshake.
struct Conn<H> {
    info: ConnInfo,
    limits: Limits,
    builder: Arc<auto::Builder<TokioExecutor>>,
    acceptor: Option<TlsAcceptor>,
    handler: H,
}

impl<H, F> Conn<H>
where
    H: Fn(Request<Incoming>, ConnInfo) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    async fn serve(self, stream: TcpStream, state: &Arc<ConnState>, watcher: Watcher) {
        let remote = self.info.remote;
        let result = match &self.acceptor {
            None => {
                let io = TokioIo::new(Watched::new(stream, Arc::clone(state)));
                let conn = self
                    .builder
                    .serve_connection_with_upgrades(io, self.service(None, state));
                watcher.watch(conn.into_owned()).await
            }
            Some(acceptor) => {
                let tls =
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => tls,
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%remote, "TLS handshake timed out");
                            return;
                        }
                    };
                let client = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(<[_]>::first)
                    .map(|leaf| ClientCert {
                        sans: self::tls::subject_alt_names(leaf).into(),
                    });
                let io = TokioIo::new(Watched::new(tls, Arc::clone(state)));
                let conn = self
                    .builder
                    .serve_connection_with_upgrades(io, self.service(client, state));
                watcher.watch(conn.into_owned()).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(%remote, error = %e, "connection ended with an error");
        }
    }

    /// One service per connection, carrying what the handshake proved.
    fn service(
        &self,
        client: Option<ClientCert>,
        state: &Arc<ConnState>,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
    > + Clone
    + Send
    + 'static {
        let (handler, info, limits) = (self.handler.clone(), self.info, self.limits);
        let state = Arc::clone(state);
        service_fn(move |mut req: Request<Incoming>| {
            let in_flight = state.begin();
            let screened = screen::check(req.version(), req.headers(), limits.head())
                .and_then(|()| state.with_raw_head(screen::raw_framing));
            let http1 = req.version() < http::Version::HTTP_2;
            if let Some(client) = &client {
                req.extensions_mut().insert(client.clone());
            }
            let handled = screened
                .map(|()| limits::with_body_timeout(limits.body_read_timeout, handler(req, info)));
            async move {
                let resp = match handled {
                    Ok(handled) => handled.await,
                    Err(problem) => {
                        tracing::debug!(remote = %info.remote, code = problem.code(), "{problem}");
                        close_after(problem.into_response(), http1)
                    }
                };
                // A body left half-read cannot be framed past: close.
                let resp = if resp.status() == http::StatusCode::REQUEST_TIMEOUT {
                    close_after(resp, http1)
                } else {
                    resp
                };
                Ok(resp.map(|body| Tracked::new(body, in_flight).boxed_unsync()))
            }
        })
    }
}

/// Asks HTTP/1 to close the connection after this response.
fn close_after(mut resp: Response<Body>, http1: bool) -> Response<Body> {
    if http1 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    resp
}
