//! Approvals: announcing each new pending approval to a configured webhook
//! so chat and ticket tools can pick it up. Off the call path (spawned),
//! bounded by a timeout, retried a few times with backoff; a failure is
//! logged, never fatal — the approval is pending either way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Uri};
use http_body_util::Full;
use serde_json::json;

use super::events::{Event, Events};
use crate::config;
use crate::config::Secret;
use crate::forward::client::{self, HttpClient};
use crate::store::Approval;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("url {0:?} is not an http(s) URL")]
    Url(String),
    #[error("secret: {0}")]
    Secret(String),
    #[error(transparent)]
    Client(#[from] client::Error),
}

/// Delivery attempts per approval.
const ATTEMPTS: u32 = 3;

/// A configured webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    url: Uri,
    secret: Option<Secret>,
    timeout: Duration,
    client: HttpClient,
}

impl Webhook {
    pub fn new(config: &config::Webhook) -> Result<Self, Error> {
        let url: Uri = config
            .url
            .parse()
            .map_err(|_| Error::Url(config.url.clone()))?;
        if !matches!(url.scheme_str(), Some("http" | "https")) || url.host().is_none() {
            return Err(Error::Url(config.url.clone()));
        }
        let secret = config
            .secret
            .as_ref()
            .map(|s| s.resolve().map_err(Error::Secret))
            .transpose()?;
        let roots = match &config.ca_file {
            Some(path) => Arc::new(client::load_roots(path)?),
            None => client::system_roots(),
        };
        Ok(Self {
            url,
            secret,
            timeout: config.timeout,
            client: client::client(roots, config.timeout)?,
        })
    }

    /// The JSON body announcing `approval`.
    pub fn body(approval: &Approval) -> Vec<u8> {
        let event = json!({
            "event": "approval.pending",
            "approval": approval,
            "approve": format!("toolgate approval approve {}", approval.id),
            "deny": format!("toolgate approval deny {} --reason '…'", approval.id),
        });
        serde_json::to_vec(&event).unwrap_or_default()
    }

    /// `sha256=<hex>` HMAC of `body` under the configured secret.
    pub fn signature(&self, body: &[u8]) -> Option<String> {
        let secret = self.secret.as_ref()?;
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.expose().as_bytes());
        let tag = aws_lc_rs::hmac::sign(&key, body);
        let mut hex = String::with_capacity(71);
        hex.push_str("sha256=");
        for b in tag.as_ref() {
            use std::fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
        }
        Some(hex)
    }

    /// Announces a new pending approval in the background.
    pub fn announce(&self, approval: &Approval, events: &Events) {
        let this = self.clone();
        let events = events.clone();
        let body = Bytes::from(Self::body(approval));
        let id = approval.id.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            for attempt in 1..=ATTEMPTS {
                match this.deliver(body.clone()).await {
                    Ok(()) => {
                        tracing::info!(approval = %id, "approval announced to webhook");
                        events.count(Event::WebhookDelivered, 1);
                        return;
                    }
                    Err(why) if attempt == ATTEMPTS => {
                        events.count(Event::WebhookFailed, 1);
                        tracing::warn!(approval = %id, attempts = attempt, error = %why, "approval webhook failed; the approval stays pending");
                    }
                    Err(why) => {
                        tracing::debug!(approval = %id, attempt, error = %why, "approval webhook attempt failed; retrying");
                        tokio::time::sleep(backoff).await;
                        backoff *= 2;
                    }
                }
            }
        });
    }

    async fn deliver(&self, body: Bytes) -> Result<(), String> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("toolgate/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(sig) = self.signature(&body) {
            req = req.header("x-toolgate-signature", sig);
        }
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        match tokio::time::timeout(self.timeout, self.client.request(req)).await {
            Ok(Ok(resp)) if resp.status().is_success() => Ok(()),
            Ok(Ok(resp)) => Err(format!("answered {}", resp.status())),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_the_body() {
        let hook = Webhook {
            url: "http://127.0.0.1:1/hook".parse().unwrap(),
            secret: Some(Secret::for_tests("key")),
            timeout: Duration::from_secs(1),
            client: client::client(client::system_roots(), Duration::from_secs(1)).unwrap(),
        };
        // RFC 4231-style known answer computed independently:
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        assert_eq!(
            hook.signature(b"The quick brown fox jumps over the lazy dog")
                .unwrap(),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }
}
