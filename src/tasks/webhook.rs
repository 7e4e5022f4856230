//! Approvals: announcing each new pending approval to a configured webhook
//! so chat and ticket tools can pick it up. Fire and forget, off the call
//! path, with a timeout; failures are logged and counted, never fatal.

use crate::config;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Setup(String),
}

/// A configured webhook.
#[derive(Debug)]
pub struct Webhook {
    pub url: String,
}

impl Webhook {
    pub fn new(config: &config::Webhook) -> Result<Self, Error> {
        Ok(Self {
            url: config.url.clone(),
        })
    }
}
