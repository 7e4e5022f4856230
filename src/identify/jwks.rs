//! Identify stage: JWKS fetched over HTTPS and kept fresh. The refresh
//! interval follows `Cache-Control: max-age` and `spiffe_refresh_hint`
//! within the configured bounds; an unknown `kid` triggers an early,
//! rate-limited refetch; a failed fetch keeps the last good keys.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri, header};
use http_body_util::{BodyExt, Full, Limited};

use super::keys::{KeySet, MAX_JWKS_BYTES, Mode};
use crate::config;
use crate::forward::client::{self, HttpClient};
use crate::record::Recorder;
use crate::snapshot::Snapshot;

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("jwks_url {0:?} must be an https URL")]
    Url(String),
    #[error("jwks_ca_file: {0}")]
    Ca(#[from] client::Error),
}

/// Where the identify stage's keys live: the gateway implements it. A
/// stage gets this narrow handle, never the gateway itself, so imports flow
/// one way, from `gateway` down.
pub trait KeySink: Send + Sync {
    /// The snapshot in force now (a request's own may be older).
    fn snapshot(&self) -> Arc<Snapshot>;
    /// Publishes keys `fetcher` loaded, if its issuer still uses it.
    fn publish_keys(&self, fetcher: &Arc<JwksFetcher>, keys: Arc<KeySet>);
    /// Where fetches and key counts are counted.
    fn recorder(&self) -> &Recorder;
}

/// True while the current snapshot still gets keys from `fetcher`.
fn in_use(sink: &dyn KeySink, fetcher: &Arc<JwksFetcher>) -> bool {
    sink.snapshot().fetchers().any(|f| Arc::ptr_eq(f, fetcher))
}

/// Fetches one issuer's JWKS and publishes it through a [`KeySink`].
#[derive(Debug)]
pub struct JwksFetcher {
    /// The issuer's name in config.
    pub issuer: String,
    url: Uri,
    ca_file: Option<std::path::PathBuf>,
    client: HttpClient,
    mode: Mode,
    refresh: Duration,
    min_refresh: Duration,
    /// When the last fetch started; held across a fetch so that concurrent
    /// refetch requests wait for it instead of fetching again.
    last_attempt: tokio::sync::Mutex<Option<Instant>>,
    last_good: ArcSwap<KeySet>,
    last_error: Mutex<Option<String>>,
    started: AtomicBool,
}

impl JwksFetcher {
    pub fn new(cfg: &config::Issuer, mode: Mode) -> Result<Self, Error> {
        let raw = cfg.jwks_url.clone().unwrap_or_default();
        let url: Uri = raw.parse().map_err(|_| Error::Url(raw.clone()))?;
        if url.scheme_str() != Some("https") || url.authority().is_none() {
            return Err(Error::Url(raw));
        }
        let roots = match &cfg.jwks_ca_file {
            Some(path) => Arc::new(client::load_roots(path)?),
            None => client::system_roots(),
        };
        Ok(Self {
            issuer: cfg.name.clone(),
            url,
            ca_file: cfg.jwks_ca_file.clone(),
            client: client::client(roots, Duration::from_secs(5))?,
            mode,
            refresh: cfg.refresh_interval,
            min_refresh: cfg.min_refresh_interval,
            last_attempt: tokio::sync::Mutex::new(None),
            last_good: ArcSwap::from_pointee(KeySet::empty()),
            last_error: Mutex::new(None),
            started: AtomicBool::new(false),
        })
    }

    /// True if `cfg` describes the same source, so a reload can keep this fetcher.
    pub fn same_source(&self, cfg: &config::Issuer) -> bool {
        cfg.jwks_url.as_deref() == Some(&self.url.to_string())
            && cfg.jwks_ca_file == self.ca_file
            && cfg.refresh_interval == self.refresh
            && cfg.min_refresh_interval == self.min_refresh
            && cfg.name == self.issuer
    }

    pub fn last_good(&self) -> Arc<KeySet> {
        self.last_good.load_full()
    }

    /// Why the issuer has no keys, for the 401 description and logs.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// Fetches now unless a fetch started less than `min_refresh_interval`
    /// ago, then publishes the keys. Returns the delay until the next
    /// scheduled refresh.
    pub async fn refresh(self: &Arc<Self>, sink: &dyn KeySink, forced: bool) -> Duration {
        let mut last = self.last_attempt.lock().await;
        if forced && last.is_some_and(|t| t.elapsed() < self.min_refresh) {
            return self.min_refresh;
        }
        *last = Some(Instant::now());
        let result = self.fetch().await;
        // The lock is held until the keys are published: a slower, older
        // fetch can never publish over a newer one.
        let delay = match result {
            Ok((keys, max_age)) => {
                let keys = Arc::new(keys);
                self.last_good.store(Arc::clone(&keys));
                if let Ok(mut e) = self.last_error.lock() {
                    *e = None;
                }
                let n = keys.len();
                let hint = keys.refresh_hint();
                sink.publish_keys(self, keys);
                sink.recorder().jwks_fetch(&self.issuer, "ok", n);
                tracing::debug!(issuer = %self.issuer, keys = n, "JWKS refreshed");
                [max_age, hint]
                    .into_iter()
                    .flatten()
                    .fold(self.refresh, Duration::min)
                    .max(self.min_refresh)
            }
            Err(why) => {
                let have = self.last_good.load().len();
                sink.recorder().jwks_fetch(&self.issuer, "error", have);
                if have == 0 {
                    tracing::error!(issuer = %self.issuer, url = %self.url,
                        "JWKS fetch failed and no keys were ever loaded: every token from this issuer is refused: {why}");
                } else {
                    tracing::warn!(issuer = %self.issuer, url = %self.url, keys = have,
                        "JWKS fetch failed; keeping the last good keys: {why}");
                }
                if let Ok(mut e) = self.last_error.lock() {
                    *e = Some(why);
                }
                self.min_refresh
            }
        };
        drop(last);
        delay
    }

    async fn fetch(&self) -> Result<(KeySet, Option<Duration>), String> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(self.url.clone())
            .header(header::ACCEPT, "application/json, application/jwk-set+json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(FETCH_TIMEOUT, self.client.request(req))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| format!("request failed: {}", error_chain(&e)))?;
        if resp.status() != StatusCode::OK {
            return Err(format!("status {}", resp.status()));
        }
        let max_age = resp
            .headers()
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = tokio::time::timeout(
            FETCH_TIMEOUT,
            Limited::new(resp.into_body(), MAX_JWKS_BYTES).collect(),
        )
        .await
        .map_err(|_| "body timed out".to_owned())?
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
        let (keys, skipped) = KeySet::from_jwks(&body, &self.mode).map_err(|e| e.to_string())?;
        for why in skipped {
            tracing::warn!(issuer = %self.issuer, "JWKS key skipped: {why}");
        }
        if keys.is_empty() {
            return Err("the JWKS holds no usable key".into());
        }
        Ok((keys, max_age))
    }

    /// Refreshes in the background until the sink (the gateway) or this
    /// fetcher (no longer in any snapshot) is gone.
    /// A fetcher kept across a reload is already running: starting it again is a no-op.
    pub fn spawn(self: &Arc<Self>, sink: Weak<dyn KeySink>, first_delay: Duration) {
        if self.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut delay = first_delay;
            loop {
                tokio::time::sleep(delay).await;
                let (Some(fetcher), Some(sink)) = (me.upgrade(), sink.upgrade()) else {
                    return;
                };
                if !in_use(sink.as_ref(), &fetcher) {
                    return;
                }
                delay = fetcher.refresh(sink.as_ref(), false).await;
            }
        });
    }
}

/// How long start-up (or a reload) waits for a new issuer's first JWKS.
const FIRST_FETCH_WAIT: Duration = Duration::from_secs(5);

/// Loads the keys of every JWKS issuer not yet running (waiting a bounded
/// time, so the gateway starts warm but never hangs on a dead issuer) and
/// starts their refresh loops. Also reports file-based issuers' key counts.
pub async fn start_all<S: KeySink + 'static>(sink: &Arc<S>) {
    let snapshot = sink.snapshot();
    for (name, keys) in snapshot.keys.iter() {
        sink.recorder().issuer_keys(name, keys.len());
    }
    let fresh: Vec<Arc<JwksFetcher>> = snapshot
        .fetchers()
        .filter(|f| !f.started.load(Ordering::SeqCst))
        .cloned()
        .collect();
    let first = fresh.iter().map(|f| async move {
        match tokio::time::timeout(FIRST_FETCH_WAIT, f.refresh(sink.as_ref(), false)).await {
            Ok(delay) => delay,
            Err(_) => {
                tracing::error!(issuer = %f.issuer, "first JWKS fetch is still running after {FIRST_FETCH_WAIT:?}; tokens from this issuer are refused until it succeeds");
                f.min_refresh
            }
        }
    });
    let delays = futures_util::future::join_all(first).await;
    let weak: Weak<dyn KeySink> = Arc::downgrade(sink) as Weak<dyn KeySink>;
    for (fetcher, delay) in fresh.iter().zip(delays) {
        fetcher.spawn(Weak::clone(&weak), delay);
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        out.push_str(": ");
        out.push_str(&inner.to_string());
        cur = inner.source();
    }
    out
}
