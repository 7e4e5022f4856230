//! Accept stage: sockets, TLS and HTTP/1.1 + h2 connections, and a graceful
//! drain on shutdown. Everything after the socket is the handler's business.

pub mod tls;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::Body;

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

/// TLS handshakes that take longer than this are dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `listener` until `shutdown` is cancelled, then drains: no new
/// connections, in-flight requests and streams get up to `drain` to finish,
/// and whatever is left after that is cut.
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
    let acceptor = tls.map(TlsAcceptor::from);
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let info = ConnInfo { remote, tls: acceptor.is_some() };
                let handler = handler.clone();
                // One service per connection, carrying what the handshake proved.
                let service = move |client: Option<ClientCert>| {
                    service_fn(move |mut req: Request<Incoming>| {
                        if let Some(client) = &client {
                            req.extensions_mut().insert(client.clone());
                        }
                        let fut = handler(req, info);
                        async move { Ok::<_, Infallible>(fut.await) }
                    })
                };
                let watcher = graceful.watcher();
                let acceptor = acceptor.clone();
                conns.spawn(async move {
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    // A client may shut its write side once its request is sent
                    // and still wait for the answer (RFC 9112 §9.6).
                    builder.http1().half_close(true);
                    let result = match acceptor {
                        None => {
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service(None));
                            watcher.watch(conn.into_owned()).await
                        }
                        Some(acceptor) => {
                            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
                                .map(|leaf| ClientCert { sans: self::tls::subject_alt_names(leaf).into() });
                            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service(client));
                            watcher.watch(conn.into_owned()).await
                        }
                    };
                    if let Err(e) = result {
                        tracing::debug!(%remote, error = %e, "connection ended with an error");
                    }
                });
            }
        }
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
