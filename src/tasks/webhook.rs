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

    /// `sha256=<hex>` HMAC of `"<timestamp>.<body>"` under the configured
    /// secret: the timestamp is signed with the body, so a receiver can
    /// refuse stale or replayed deliveries.
    pub fn signature(&self, timestamp: u64, body: &[u8]) -> Option<String> {
        let secret = self.secret.as_ref()?;
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.expose().as_bytes());
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        Some(format!(
            "sha256={}",
            crate::store::model::hex(ctx.sign().as_ref())
        ))
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
                match this.deliver(&id, body.clone()).await {
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

    async fn deliver(&self, id: &str, body: Bytes) -> Result<(), String> {
        let timestamp = crate::store::model::now_ms() / 1000;
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("toolgate/", env!("CARGO_PKG_VERSION")),
            )
            .header("x-toolgate-delivery", id)
            .header("x-toolgate-timestamp", timestamp);
        if let Some(sig) = self.signature(timestamp, &body) {
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
    fn signature_is_hmac_sha256_of_timestamp_and_body() {
        let hook = Webhook {
            url: "http://127.0.0.1:1/hook".parse().unwrap(),
            secret: Some(Secret::for_tests("key")),
            timeout: Duration::from_secs(1),
            client: client::client(client::system_roots(), Duration::from_secs(1)).unwrap(),
        };
        // The signed text is "<timestamp>.<body>"; the HMAC itself is
        // checked against the well-known RFC test value below.
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"key");
        let whole = aws_lc_rs::hmac::sign(&key, b"1700000000.{\"a\":1}");
        let hex: String = whole.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hook.signature(1_700_000_000, br#"{"a":1}"#).unwrap(),
            format!("sha256={hex}")
        );
        let fox = aws_lc_rs::hmac::sign(&key, b"The quick brown fox jumps over the lazy dog");
        let fox: String = fox.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            fox,
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        let unsigned = Webhook {
            secret: None,
            ..hook
        };
        assert_eq!(unsigned.signature(1, b"x"), None);
    }
}
