//! Identify stage: verifies one bearer token (JWT-SVID or OAuth access token)
//! against its issuer's rules and keys and turns it into an `Identity`.
//!
//! The signature is checked by jsonwebtoken's aws-lc-rs verifiers; the header
//! and every claim (exp/nbf included, against the caller's `now_unix`) are
//! checked here, so the header is decoded once and the payload parsed once.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;

use super::Identity;
use super::keys::{KeySet, Mode, loggable};
use super::spiffe;

mod claims;
mod header;

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// How to verify the tokens of one trusted issuer.
#[derive(Clone)]
pub struct Rules {
    /// Exact `iss`.
    pub issuer: String,
    pub mode: Mode,
    /// Allowed `alg`s. HS* count only with `hs_secret`, in OAuth mode and with
    /// no public keys loaded; EdDSA never counts in SPIFFE mode.
    pub algorithms: Vec<Algorithm>,
    /// Shared secret for HS256/384/512.
    pub hs_secret: Option<Vec<u8>>,
    pub leeway: Duration,
    /// `exp - iat` (or `exp - now` without `iat`, or when `iat` is in the
    /// future) must not exceed this.
    pub max_lifetime: Option<Duration>,
    pub required_claims: Vec<String>,
    /// Claims copied into `Workload::claims`; all others are dropped.
    pub selected_claims: Vec<String>,
    /// Claim whose string value becomes `Workload::task_id`.
    pub task_claim: Option<String>,
}

impl Rules {
    /// Rules with the default algorithms, 60 s leeway and nothing else.
    pub fn new(issuer: impl Into<String>, mode: Mode) -> Self {
        Self {
            issuer: issuer.into(),
            mode,
            algorithms: Self::default_algorithms(),
            hs_secret: None,
            leeway: Duration::from_secs(60),
            max_lifetime: None,
            required_claims: Vec::new(),
            selected_claims: Vec::new(),
            task_claim: None,
        }
    }

    /// RS/PS 256–512, ES256, ES384 and EdDSA: every public-key algorithm
    /// jsonwebtoken has (it has no ES512).
    pub fn default_algorithms() -> Vec<Algorithm> {
        use Algorithm::{ES256, ES384, EdDSA, PS256, PS384, PS512, RS256, RS384, RS512};
        vec![
            RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA,
        ]
    }
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("issuer", &self.issuer)
            .field("mode", &self.mode)
            .field("algorithms", &self.algorithms)
            .field("hs_secret", &self.hs_secret.as_ref().map(|_| "<redacted>"))
            .field("leeway", &self.leeway)
            .field("max_lifetime", &self.max_lifetime)
            .field("required_claims", &self.required_claims)
            .field("selected_claims", &self.selected_claims)
            .field("task_claim", &self.task_claim)
            .finish()
    }
}

/// Why a token was refused. `Display` is the same text as `description`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("token is larger than {MAX_TOKEN_BYTES} bytes")]
    TooLarge,
    #[error("token is not three base64url segments with a JSON header and payload")]
    Malformed,
    #[error("token alg is not allowed for this issuer")]
    AlgNotAllowed,
    #[error("token header has a field or typ that is not allowed")]
    HeaderFieldNotAllowed,
    #[error("token header has no kid")]
    MissingKid,
    /// The caller may refetch the issuer's JWKS (rate-limited) and retry.
    #[error("token kid names no known key")]
    UnknownKid,
    /// The caller may refetch the issuer's JWKS (rate-limited) and retry.
    #[error("no verification keys are loaded for this issuer")]
    NoKeys,
    #[error("the key for this token does not fit its alg")]
    KeyAlgMismatch,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has no exp claim")]
    MissingExp,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet (nbf)")]
    NotYetValid,
    #[error("token has no iss claim")]
    MissingIssuer,
    #[error("token iss is not the expected issuer")]
    WrongIssuer,
    /// For callers: no `Rules` exist for the peeked issuer.
    #[error("token iss is not a trusted issuer")]
    UntrustedIssuer,
    #[error("token has no aud claim")]
    MissingAudience,
    #[error("token aud does not include this audience")]
    WrongAudience,
    #[error("token lifetime is longer than allowed")]
    LifetimeTooLong,
    #[error("token lacks required claim {}", loggable(.0))]
    MissingClaim(String),
    #[error("token claim {} has the wrong type", loggable(.0))]
    InvalidClaim(String),
    #[error("token sub is not a valid SPIFFE ID: {0}")]
    BadSpiffeId(spiffe::Error),
    #[error("token SPIFFE ID is outside the allowed trust domains")]
    TrustDomainNotAllowed,
    #[error("token has no sub claim")]
    MissingSubject,
    #[error("token act claim is malformed or nested too deep")]
    BadDelegation,
}

impl Rejection {
    /// A snake_case metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::HeaderFieldNotAllowed => "header_field_not_allowed",
            Self::MissingKid => "missing_kid",
            Self::UnknownKid => "unknown_kid",
            Self::NoKeys => "no_keys",
            Self::KeyAlgMismatch => "key_alg_mismatch",
            Self::BadSignature => "bad_signature",
            Self::MissingExp => "missing_exp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::MissingIssuer => "missing_issuer",
            Self::WrongIssuer => "wrong_issuer",
            Self::UntrustedIssuer => "untrusted_issuer",
            Self::MissingAudience => "missing_audience",
            Self::WrongAudience => "wrong_audience",
            Self::LifetimeTooLong => "lifetime_too_long",
            Self::MissingClaim(_) => "missing_claim",
            Self::InvalidClaim(_) => "invalid_claim",
            Self::BadSpiffeId(_) => "bad_spiffe_id",
            Self::TrustDomainNotAllowed => "trust_domain_not_allowed",
            Self::MissingSubject => "missing_subject",
            Self::BadDelegation => "bad_delegation",
        }
    }

    /// Text for a `WWW-Authenticate` `error_description`: which check failed,
    /// never the token or a claim value; no `"` or `\`.
    pub fn description(&self) -> String {
        self.to_string().replace(['"', '\\'], "'")
    }

    /// Whether refetching the issuer's JWKS might make the token verify.
    pub fn wants_key_refresh(&self) -> bool {
        matches!(self, Self::UnknownKid | Self::NoKeys)
    }
}

/// The three segments of a compact JWS, the first two decoded.
struct Parts<'a> {
    signing_input: &'a str,
    header: Vec<u8>,
    payload: Vec<u8>,
    signature: Vec<u8>,
}

fn segments(token: &str) -> Result<(&str, &str, &str), Rejection> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Rejection::TooLarge);
    }
    let mut split = token.split('.');
    match (split.next(), split.next(), split.next(), split.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        _ => Err(Rejection::Malformed),
    }
}

fn b64(segment: &str) -> Result<Vec<u8>, Rejection> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::Malformed)
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Self, Rejection> {
        let (header, payload, signature) = segments(token)?;
        Ok(Self {
            signing_input: &token[..header.len() + 1 + payload.len()],
            header: b64(header)?,
            payload: b64(payload)?,
            signature: b64(signature)?,
        })
    }
}

/// Reads `iss` from an unverified token to pick the `Rules` (no crypto).
pub fn peek_issuer(token: &str) -> Result<String, Rejection> {
    #[derive(Deserialize)]
    struct Peek {
        iss: Option<String>,
    }
    let (_, payload, _) = segments(token)?;
    let peek: Peek = serde_json::from_slice(&b64(payload)?).map_err(|_| Rejection::Malformed)?;
    peek.iss.ok_or(Rejection::MissingIssuer)
}

/// Verifies `token` for `audience` at `now_unix` (seconds).
pub fn verify(
    token: &str,
    rules: &Rules,
    keys: &KeySet,
    audience: &str,
    now_unix: u64,
) -> Result<Identity, Rejection> {
    let parts = Parts::split(token)?;
    let header = header::Header::parse(&parts.header)?;
    let alg = allowed_alg(&header.alg, rules, keys)?;
    header.check_fields(&rules.mode)?;
    check_signature(&parts, alg, header.kid.as_deref(), rules, keys)?;
    let claims = claims::parse(&parts.payload)?;
    claims::identity(claims, rules, audience, now_unix)
}

fn allowed_alg(name: &str, rules: &Rules, keys: &KeySet) -> Result<Algorithm, Rejection> {
    let alg = Algorithm::from_str(name).map_err(|_| Rejection::AlgNotAllowed)?;
    let spiffe = matches!(rules.mode, Mode::Spiffe { .. });
    let allowed = rules.algorithms.contains(&alg)
        && match alg.family() {
            AlgorithmFamily::Hmac => !spiffe && rules.hs_secret.is_some() && !keys.has_asymmetric(),
            AlgorithmFamily::Ed => !spiffe,
            AlgorithmFamily::Rsa | AlgorithmFamily::Ec => true,
        };
    if allowed {
        Ok(alg)
    } else {
        Err(Rejection::AlgNotAllowed)
    }
}

fn check_signature(
    parts: &Parts<'_>,
    alg: Algorithm,
    kid: Option<&str>,
    rules: &Rules,
    keys: &KeySet,
) -> Result<(), Rejection> {
    let check = |key: &DecodingKey| {
        let verifier = (DEFAULT_PROVIDER.verifier_factory)(&alg, key)
            .map_err(|_| Rejection::KeyAlgMismatch)?;
        verifier
            .verify(parts.signing_input.as_bytes(), &parts.signature)
            .map_err(|_| Rejection::BadSignature)
    };
    if alg.family() == AlgorithmFamily::Hmac {
        let secret = rules.hs_secret.as_deref().ok_or(Rejection::AlgNotAllowed)?;
        return check(&DecodingKey::from_secret(secret));
    }
    if keys.is_empty() {
        return Err(Rejection::NoKeys);
    }
    match (kid, &rules.mode) {
        (Some(kid), _) => {
            let key = keys.find(kid).ok_or(Rejection::UnknownKid)?;
            if !key.fits(alg) {
                return Err(Rejection::KeyAlgMismatch);
            }
            check(&key.decoding)
        }
        (None, Mode::Spiffe { .. }) => Err(Rejection::MissingKid),
        (None, Mode::OAuth) => {
            if keys.unnamed().is_empty() {
                return Err(Rejection::MissingKid);
            }
            let mut outcome = Err(Rejection::KeyAlgMismatch);
            for key in keys.unnamed().iter().filter(|key| key.fits(alg)) {
                outcome = check(&key.decoding);
                if outcome.is_ok() {
                    break;
                }
            }
            outcome
        }
    }
}

#[cfg(test)]
mod tests;
