//! Operator CLI, the wire: one JSON request to the admin API per
//! invocation, with the bearer token (never printed), a 30 s deadline, and
//! the API's `{"error":{"code","message"}}` answers turned into [`Error::Api`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Full};
use rustls::RootCertStore;
use serde_json::Value;

use super::Error;
use super::args::AdminArgs;
use super::request::Call;
use crate::forward::client::{
    HttpClient, Identity, client_with_identity, load_roots, system_roots,
};

/// The whole exchange, connect to last body byte.
const DEADLINE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin API at one base URL, with one token.
#[derive(Debug)]
pub(crate) struct AdminClient {
    base: String,
    client: HttpClient,
    authorization: Option<HeaderValue>,
}

impl AdminClient {
    pub(crate) fn new(args: &AdminArgs) -> Result<Self, Error> {
        let base = args.admin_url.trim_end_matches('/').to_owned();
        let uri: Uri = base
            .parse()
            .map_err(|_| Error::Usage(format!("--admin-url {base:?} is not a URL")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(Error::Usage(format!(
                    "--admin-url {base:?} is not an http:// or https:// URL"
                )));
            }
        };
        if uri.host().is_none() {
            return Err(Error::Usage(format!("--admin-url {base:?} has no host")));
        }
        let roots = match (&args.ca_file, https) {
            (Some(path), _) => {
                Arc::new(load_roots(path).map_err(|e| Error::Usage(format!("--ca-file: {e}")))?)
            }
            (None, true) => system_roots(),
            (None, false) => Arc::new(RootCertStore::empty()),
        };
        let identity = match (&args.cert, &args.key) {
            (Some(cert), Some(key)) => Some(client_identity(cert, key)?),
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::Usage("--cert and --key go together".into()));
            }
        };
        let client = client_with_identity(roots, CONNECT_TIMEOUT, identity)
            .map_err(|e| Error::Usage(e.to_string()))?;
        Ok(Self {
            base,
            client,
            authorization: authorization(args)?,
        })
    }

    /// Sends `call` and returns the answer's JSON (2xx), or the API's error.
    pub(crate) async fn send(&self, call: &Call) -> Result<Value, Error> {
        let url = format!("{}{}", self.base, call.path);
        let mut req = Request::builder()
            .method(call.method.clone())
            .uri(&url)
            .header(header::ACCEPT, "application/json")
            .header(
                header::USER_AGENT,
                concat!("toolgate-cli/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(auth) = &self.authorization {
            req = req.header(header::AUTHORIZATION, auth.clone());
        }
        let body = match &call.body {
            Some(body) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let req = req
            .body(Full::new(body))
            .map_err(|e| Error::Usage(format!("cannot build a request for {url:?}: {e}")))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| Error::Connect {
                url: url.clone(),
                message: chain(&e),
            })?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await.map_err(|e| Error::Connect {
                url: url.clone(),
                message: chain(&e),
            })?;
            Ok::<_, Error>((parts.status, body.to_bytes()))
        };
        let (status, body) = tokio::time::timeout(DEADLINE, exchange)
            .await
            .map_err(|_| Error::Timeout { url: url.clone() })??;
        answer(status, &body)
    }
}

/// `Bearer <token>` from --token-file, --token or TOOLGATE_ADMIN_TOKEN,
/// marked sensitive. No token: the request goes without one.
/// The client certificate chain and key from PEM files.
fn client_identity(cert: &std::path::Path, key: &std::path::Path) -> Result<Identity, Error> {
    use rustls_pki_types::pem::PemObject as _;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Usage(format!("--cert {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "--cert {}: no certificate in it",
            cert.display()
        )));
    }
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key)
        .map_err(|e| Error::Usage(format!("--key {}: {e}", key.display())))?;
    Ok((certs, key))
}

fn authorization(args: &AdminArgs) -> Result<Option<HeaderValue>, Error> {
    let token = match (&args.token_file, &args.token) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("--token-file {}: {e}", path.display())))?
            .trim()
            .to_owned(),
        (None, Some(token)) => token.trim().to_owned(),
        (None, None) => return Ok(None),
    };
    if token.is_empty() {
        return Err(Error::Usage("the admin token is empty".into()));
    }
    // The message must not include the token.
    let mut value = HeaderValue::try_from(format!("Bearer {token}"))
        .map_err(|_| Error::Usage("the admin token has characters a header cannot carry".into()))?;
    value.set_sensitive(true);
    Ok(Some(value))
}

/// A 2xx answer's JSON, or the API's error object as [`Error::Api`].
pub(crate) fn answer(status: StatusCode, body: &[u8]) -> Result<Value, Error> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if status.is_success() {
        return match json {
            Some(value) => Ok(value),
            None if body.is_empty() => Ok(Value::Null),
            None => Err(Error::BadAnswer(format!(
                "HTTP {status} with a body that is not JSON"
            ))),
        };
    }
    let error = json.as_ref().and_then(|v| v.get("error"));
    let text = |key: &str| {
        error
            .and_then(|e| e.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let code = text("code").unwrap_or_else(|| {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_lowercase()
            .replace(' ', "_")
    });
    let message = text("message").unwrap_or_else(|| {
        let raw = String::from_utf8_lossy(body);
        let mut short: String = raw.trim().chars().take(200).collect();
        if short.is_empty() {
            short = format!("HTTP {status}");
        }
        short
    });
    Err(Error::Api {
        status,
        code,
        message,
    })
}

/// An error and its causes, `outer: inner: …` (hyper's own message alone
/// says only "client error (Connect)").
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
