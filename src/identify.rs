//! Identify stage: who is calling. A route with `auth` requires a bearer
//! JWT — a SPIFFE JWT-SVID or an OAuth access token — from one of its
//! trusted issuers, for its audience; anything else is refused with 401
//! (or 403 for missing scopes) before the call is understood. Verified
//! tokens are cached, so a busy agent pays for verification once per token.

pub mod cache;
pub mod issuer;
pub mod jwks;
pub mod keys;
pub mod metadata;
pub mod mint;
pub mod session;
pub mod spiffe;
pub mod testkit;
pub mod verify;

mod identity;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::AUTHORIZATION;
use http::request::Parts;

pub use identity::{Delegation, Identity, Workload};
use verify::{MAX_TOKEN_BYTES, Rejection};

use crate::snapshot::{Route, RouteAuth, Snapshot};
use jwks::KeySink;

/// Why a caller could not be identified. Each is answered with 401 (or 403
/// for scopes) and a `WWW-Authenticate` challenge; none echoes the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("no bearer token")]
    Missing,
    #[error("tokens in the query string are not accepted; send Authorization: Bearer")]
    InQuery,
    #[error("the Authorization header must be a single Bearer token")]
    NotBearer,
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token issuer is not trusted on this route")]
    UntrustedIssuer,
    #[error("issuer {issuer} has no usable keys ({why})")]
    NoKeys { issuer: String, why: String },
    #[error("{}", .0.description())]
    Rejected(Rejection),
    #[error("token lacks the required scope(s): {0}")]
    InsufficientScope(String),
}

impl Error {
    /// The metric label and the `reason` in the JSON body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Missing => "missing_token",
            Self::InQuery => "token_in_query",
            Self::NotBearer => "not_bearer",
            Self::TooLarge => "token_too_large",
            Self::UntrustedIssuer => "untrusted_issuer",
            Self::NoKeys { .. } => "no_keys",
            Self::Rejected(r) => r.code(),
            Self::InsufficientScope(_) => "insufficient_scope",
        }
    }
}

/// The runtime state of the identify stage (the rules are in the snapshot).
#[derive(Debug)]
pub struct Identifier {
    pub cache: cache::TokenCache,
    pub sessions: session::Sessions,
}

impl Identifier {
    pub fn new() -> Self {
        Self {
            cache: cache::TokenCache::new(100_000),
            sessions: session::Sessions::new(100_000),
        }
    }
}

impl Default for Identifier {
    fn default() -> Self {
        Self::new()
    }
}

/// Identifies the caller of one request on `route`. `keys` is where an
/// unknown `kid` asks for a refetch (and reads the keys it brought).
pub async fn identify(
    identifier: &Identifier,
    keys: &dyn KeySink,
    snapshot: &Arc<Snapshot>,
    route: &Route,
    parts: &Parts,
) -> Result<Identity, Error> {
    let Some(auth) = &route.auth else {
        return Ok(Identity::Anonymous);
    };
    let token = bearer(parts)?;
    let now = now();
    // What a verification proved depends on the audience and on the issuers
    // (and their rules) the route trusts: a token verified for one route is
    // only reused by routes that would verify it the same way.
    let cache_key = format!("{}\n{token}", auth.cache_scope);
    let identity = match identifier
        .cache
        .get(&cache_key, snapshot.keys_generation, now)
    {
        Some(identity) => identity,
        None => {
            // Cached under the generation of the keys it was verified with:
            // if they changed meanwhile (a key removed), the entry is stale
            // at once and the next call verifies again.
            let (identity, expires, generation) =
                verify_token(keys, snapshot, auth, token, now).await?;
            identifier
                .cache
                .insert(&cache_key, generation, identity.clone(), expires);
            identity
        }
    };
    check_scopes(auth, &identity)?;
    Ok(identity)
}

/// The token from `Authorization: Bearer …`, and only from there.
fn bearer(parts: &Parts) -> Result<&str, Error> {
    // A token in the URL would travel upstream with it (and into logs):
    // refused even next to a header (RFC 6750 §2: one method only).
    let in_query = parts
        .uri
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "access_token"));
    if in_query {
        return Err(Error::InQuery);
    }
    let mut values = parts.headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(Error::Missing);
    };
    if values.next().is_some() {
        return Err(Error::NotBearer);
    }
    if value.len() > MAX_TOKEN_BYTES + 7 {
        return Err(Error::TooLarge);
    }
    let value = value.to_str().map_err(|_| Error::NotBearer)?;
    let (scheme, token) = value.split_once(' ').ok_or(Error::NotBearer)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(Error::NotBearer);
    }
    Ok(token)
}

async fn verify_token(
    sink: &dyn KeySink,
    snapshot: &Arc<Snapshot>,
    auth: &RouteAuth,
    token: &str,
    now: u64,
) -> Result<(Identity, u64, u64), Error> {
    let iss = verify::peek_issuer(token).map_err(Error::Rejected)?;
    let issuer = auth
        .issuers
        .iter()
        .filter_map(|name| snapshot.issuers.get(name))
        .find(|i| i.rules.issuer == iss)
        .filter(|i| i.audiences.is_empty() || i.audiences.contains(&auth.audience))
        .ok_or(Error::UntrustedIssuer)?;
    let mut snapshot = Arc::clone(snapshot);
    let mut refetched = false;
    loop {
        let keys = snapshot.keys.get(&issuer.name).cloned().unwrap_or_default();
        let result = if keys.is_empty() && issuer.rules.hs_secret.is_none() {
            Err(Rejection::NoKeys)
        } else {
            verify::verify(token, &issuer.rules, &keys, &auth.audience, now)
        };
        match (result, issuer.fetcher()) {
            (Ok(identity), _) => {
                let expires = match &identity {
                    Identity::Workload(w) => w.expires_at,
                    Identity::Anonymous => now,
                };
                return Ok((identity, expires, snapshot.keys_generation));
            }
            // A new kid (or no keys yet): fetch once, rate-limited, and retry.
            (Err(Rejection::UnknownKid | Rejection::NoKeys), Some(fetcher)) if !refetched => {
                refetched = true;
                fetcher.refresh(sink, true).await;
                snapshot = sink.snapshot();
            }
            (Err(Rejection::NoKeys), fetcher) => {
                let why = fetcher
                    .and_then(|f| f.last_error())
                    .unwrap_or_else(|| "no key could be loaded".into());
                return Err(Error::NoKeys {
                    issuer: issuer.name.clone(),
                    why,
                });
            }
            (Err(rejection), _) => return Err(Error::Rejected(rejection)),
        }
    }
}

fn check_scopes(auth: &RouteAuth, identity: &Identity) -> Result<(), Error> {
    if auth.scopes.is_empty() {
        return Ok(());
    }
    let have: &[String] = match identity {
        Identity::Workload(w) => &w.scopes,
        Identity::Anonymous => &[],
    };
    let missing: Vec<&str> = auth
        .scopes
        .iter()
        .filter(|s| !have.contains(s))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::InsufficientScope(missing.join(" ")))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Imports flow one way, from `gateway` down: the stages under the
    /// pipeline get narrow handles (`KeySink`, the `Identifier`, the
    /// `PolicyHost` of `decide/reload`, the snapshot, the `Recorder`),
    /// never the gateway, the server wiring it, or the admin surface above it.
    #[test]
    fn the_stages_do_not_import_the_gateway() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        for stage in [
            "accept",
            "answer",
            "audit",
            "context",
            "decide",
            "forward",
            "identify",
            "listener",
            "mcp",
            "record",
            "snapshot",
            "store",
            "tasks",
            "understand",
        ] {
            files.push(src.join(format!("{stage}.rs")));
            if src.join(stage).is_dir() {
                sources(&src.join(stage), &mut files);
            }
        }
        assert!(files.len() > 60, "{files:?}");
        assert!(files.contains(&src.join("decide/reload.rs")));
        assert!(files.contains(&src.join("identify/jwks.rs")));
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            // Code only: comments may speak of the gateway, and this test names it.
            let code = text.split("\n#[cfg(test)]").next().unwrap_or("");
            for needle in [
                "crate::gateway",
                "super::gateway",
                "Gateway",
                "crate::server",
                "crate::admin",
                "crate::console",
            ] {
                let found = code
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .any(|l| l.contains(needle));
                assert!(!found, "{} names {needle}", file.display());
            }
        }
    }
}
