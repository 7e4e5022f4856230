//! Identify stage: a trusted issuer ready to verify tokens — its rules and
//! where its keys come from (a file read at load, an HTTPS JWKS refreshed in
//! the background, or a shared HS secret).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use jsonwebtoken::{Algorithm, AlgorithmFamily};

use super::jwks::JwksFetcher;
use super::keys::{KeySet, Mode};
use super::verify::Rules;
use crate::config::{self, IssuerMode};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown algorithm {0:?}")]
    Algorithm(String),
    #[error("algorithm {0} is not allowed {1}")]
    AlgorithmNotAllowed(String, &'static str),
    #[error("HS algorithms need hs_secret")]
    HsWithoutSecret,
    #[error("hs_secret cannot be used: {0}")]
    HsSecret(String),
    #[error("needs exactly one key source: jwks_file, jwks_url or (for HS only) hs_secret")]
    KeySource,
    #[error("cannot read JWKS file {0}: {1}")]
    JwksFile(PathBuf, String),
    #[error("JWKS file {0} has no usable key{1}")]
    NoUsableKey(PathBuf, String),
    #[error("{0}")]
    JwksUrl(String),
    #[error("spiffe mode needs at least one trust domain")]
    NoTrustDomain,
}

/// Where an issuer's keys come from.
#[derive(Debug)]
pub enum KeySource {
    File(PathBuf),
    Url(Arc<JwksFetcher>),
    /// HS* with a shared secret only: no key set.
    Secret,
}

#[derive(Debug)]
pub struct TrustedIssuer {
    pub name: String,
    /// Audiences its tokens may be accepted for; empty means any.
    pub audiences: Vec<String>,
    pub rules: Rules,
    pub source: KeySource,
    pub authorization_servers: Vec<String>,
}

impl TrustedIssuer {
    /// Builds the issuer and its initial key set. `reuse` is the running
    /// fetcher for this issuer if its URL settings are unchanged.
    pub fn build(
        cfg: &config::Issuer,
        reuse: Option<Arc<JwksFetcher>>,
    ) -> Result<(Self, Arc<KeySet>), Error> {
        let mode = match cfg.mode {
            IssuerMode::Spiffe if cfg.trust_domains.is_empty() => return Err(Error::NoTrustDomain),
            IssuerMode::Spiffe => Mode::Spiffe {
                trust_domains: cfg.trust_domains.clone(),
            },
            IssuerMode::Oauth => Mode::OAuth,
        };
        let algorithms = algorithms(cfg)?;
        let hs_secret = match &cfg.hs_secret {
            Some(secret) if cfg.mode == IssuerMode::Spiffe => {
                let _ = secret;
                return Err(Error::HsSecret("JWT-SVIDs are never HMAC-signed".into()));
            }
            Some(secret) => Some(
                secret
                    .resolve()
                    .map_err(Error::HsSecret)?
                    .expose()
                    .as_bytes()
                    .to_vec(),
            ),
            None => None,
        };
        let (source, keys) = match (&cfg.jwks_file, &cfg.jwks_url, &hs_secret) {
            (Some(path), None, _) => (
                KeySource::File(path.clone()),
                Arc::new(read_file(path, &mode)?),
            ),
            (None, Some(_), _) => {
                let fetcher = match reuse {
                    Some(f) => f,
                    None => Arc::new(
                        JwksFetcher::new(cfg, mode.clone())
                            .map_err(|e| Error::JwksUrl(e.to_string()))?,
                    ),
                };
                let keys = fetcher.last_good();
                (KeySource::Url(fetcher), keys)
            }
            (None, None, Some(_)) => (KeySource::Secret, Arc::new(KeySet::empty())),
            _ => return Err(Error::KeySource),
        };
        if hs_secret.is_some() && keys.has_asymmetric() {
            return Err(Error::HsSecret("this issuer has asymmetric keys".into()));
        }
        let authorization_servers = cfg
            .authorization_servers
            .clone()
            .unwrap_or_else(|| match cfg.mode {
                IssuerMode::Oauth => vec![cfg.issuer.clone()],
                IssuerMode::Spiffe => Vec::new(),
            });
        let rules = Rules {
            issuer: cfg.issuer.clone(),
            mode,
            algorithms,
            hs_secret,
            leeway: cfg.leeway,
            max_lifetime: Some(cfg.max_lifetime),
            required_claims: cfg.required_claims.clone(),
            selected_claims: cfg.selected_claims.clone(),
            task_claim: cfg.task_claim.clone(),
        };
        Ok((
            Self {
                name: cfg.name.clone(),
                audiences: cfg.audiences.clone(),
                rules,
                source,
                authorization_servers,
            },
            keys,
        ))
    }

    pub fn fetcher(&self) -> Option<&Arc<JwksFetcher>> {
        match &self.source {
            KeySource::Url(f) => Some(f),
            KeySource::File(_) | KeySource::Secret => None,
        }
    }
}

/// Reads and parses a JWKS file; it must hold at least one usable key.
pub fn read_file(path: &PathBuf, mode: &Mode) -> Result<KeySet, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::JwksFile(path.clone(), e.to_string()))?;
    let (keys, skipped) = KeySet::from_jwks(&bytes, mode)
        .map_err(|e| Error::JwksFile(path.clone(), e.to_string()))?;
    for why in &skipped {
        tracing::warn!(file = %path.display(), "JWKS key skipped: {why}");
    }
    if keys.is_empty() {
        let why = if skipped.is_empty() {
            String::new()
        } else {
            format!(" ({})", skipped.join("; "))
        };
        return Err(Error::NoUsableKey(path.clone(), why));
    }
    Ok(keys)
}

/// The accepted algorithms: configured, or the mode's asymmetric default.
/// JWT-SVIDs may only use RS, PS and ES (the SPIFFE JWT-SVID spec).
fn algorithms(cfg: &config::Issuer) -> Result<Vec<Algorithm>, Error> {
    let spiffe = cfg.mode == IssuerMode::Spiffe;
    if cfg.algorithms.is_empty() {
        let mut algs = vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
            Algorithm::ES256,
            Algorithm::ES384,
        ];
        if !spiffe {
            algs.push(Algorithm::EdDSA);
        }
        if cfg.hs_secret.is_some() {
            algs.extend([Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
        }
        return Ok(algs);
    }
    let mut out = Vec::new();
    for name in &cfg.algorithms {
        if name.eq_ignore_ascii_case("none") {
            return Err(Error::AlgorithmNotAllowed(name.clone(), "ever"));
        }
        let alg = Algorithm::from_str(name).map_err(|_| Error::Algorithm(name.clone()))?;
        match alg.family() {
            AlgorithmFamily::Hmac if cfg.hs_secret.is_none() => return Err(Error::HsWithoutSecret),
            AlgorithmFamily::Hmac | AlgorithmFamily::Ed if spiffe => {
                return Err(Error::AlgorithmNotAllowed(
                    name.clone(),
                    "for JWT-SVIDs (RS, PS, ES only)",
                ));
            }
            AlgorithmFamily::Hmac
            | AlgorithmFamily::Ed
            | AlgorithmFamily::Rsa
            | AlgorithmFamily::Ec => {}
        }
        out.push(alg);
    }
    Ok(out)
}
