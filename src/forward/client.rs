//! Forward stage: the pooled upstream client of one route, with its TLS
//! trust (system roots or a configured CA), connect timeout and credential.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Uri};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;

use crate::config;

pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("upstream URL {0:?} is not an absolute http(s) URL")]
    BadUrl(String),
    #[error("{0}")]
    Ca(String),
    #[error("upstream credential: {0}")]
    Credential(String),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// Where and how a route's calls are sent.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    /// `Host` for the upstream: its authority, made once.
    pub host: HeaderValue,
    /// The upstream URL's path without a trailing '/'.
    pub base_path: String,
    pub client: HttpClient,
    /// The credential header the gateway attaches (never the caller's).
    pub credential: Option<(HeaderName, HeaderValue)>,
}

impl Upstream {
    pub fn build(route: &config::Route) -> Result<Self, Error> {
        let bad = || Error::BadUrl(route.upstream.clone());
        let uri: Uri = route.upstream.parse().map_err(|_| bad())?;
        let scheme = uri.scheme().cloned().ok_or_else(bad)?;
        let authority = uri.authority().cloned().ok_or_else(bad)?;
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad())?;
        let base_path = uri.path().trim_end_matches('/').to_owned();
        let roots = match &route.upstream_ca_file {
            Some(path) => Arc::new(load_roots(path)?),
            None => system_roots(),
        };
        let credential = route
            .upstream_auth
            .as_ref()
            .map(|auth| {
                let secret = auth.value.resolve().map_err(Error::Credential)?;
                let name = HeaderName::try_from(auth.header.as_str())
                    .map_err(|_| Error::Credential(format!("bad header name {:?}", auth.header)))?;
                let mut value =
                    HeaderValue::try_from(format!("{}{}", auth.prefix, secret.expose())).map_err(
                        |_| Error::Credential("value is not a valid header value".into()),
                    )?;
                value.set_sensitive(true);
                Ok::<_, Error>((name, value))
            })
            .transpose()?;
        Ok(Self {
            scheme,
            authority,
            host,
            base_path,
            client: pooled(
                roots,
                route.timeouts.connect,
                route.timeouts.pool_idle,
                None,
            )?,
            credential,
        })
    }

    /// The upstream URI for the part of the gateway path after the route prefix.
    pub fn uri(&self, rest: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let mut pq = String::with_capacity(self.base_path.len() + rest.len() + 1);
        pq.push_str(&self.base_path);
        pq.push_str(rest);
        if pq.is_empty() {
            pq.push('/');
        }
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(PathAndQuery::try_from(pq)?)
            .build()
    }
}

/// How long an unused pooled connection stays open by default.
const POOL_IDLE: Duration = Duration::from_secs(90);

/// A pooled HTTP(S) client trusting `roots`.
pub fn client(roots: Arc<RootCertStore>, connect: Duration) -> Result<HttpClient, Error> {
    pooled(roots, connect, POOL_IDLE, None)
}

/// A client certificate chain and its key, for mutual TLS.
pub type Identity = (
    Vec<rustls_pki_types::CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
);

/// Like [`client`], presenting `identity` to servers that ask for one.
pub fn client_with_identity(
    roots: Arc<RootCertStore>,
    connect: Duration,
    identity: Option<Identity>,
) -> Result<HttpClient, Error> {
    pooled(roots, connect, POOL_IDLE, identity)
}

/// A client whose unused connections are closed after `pool_idle`.
fn pooled(
    roots: Arc<RootCertStore>,
    connect: Duration,
    pool_idle: Duration,
    identity: Option<Identity>,
) -> Result<HttpClient, Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let tls = match identity {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key)?,
        None => builder.with_no_client_auth(),
    };
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect));
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    // Without a timer the pool never runs its idle timeout: unused
    // connections stayed open until the upstream closed them.
    Ok(Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(pool_idle)
        .pool_max_idle_per_host(256)
        .build(https))
}

/// CA certificates from a PEM file.
pub fn load_roots(path: &Path) -> Result<RootCertStore, Error> {
    let certs = crate::listener::tls::load_certs(path).map_err(|e| Error::Ca(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| Error::Ca(format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// The platform's trust store, read once; Mozilla's roots where it has none.
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}
