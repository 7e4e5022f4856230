//! Identify stage: an issuer's signing keys, parsed from a JWKS document (a
//! SPIFFE bundle or an OAuth `jwks_uri`). Unusable keys are skipped with a
//! reason for the logs, never with key material.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::signature::{self as lc, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

/// The largest JWKS document accepted.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;
/// Keys past this many in one document are skipped.
pub const MAX_KEYS: usize = 100;

/// What kind of issuer a key set (and its tokens) belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// JWT-SVIDs: keys need `use: "jwt-svid"` and a `kid`; `sub` is a SPIFFE
    /// ID in one of these trust domains.
    Spiffe { trust_domains: Vec<String> },
    /// OAuth access tokens.
    OAuth,
}

/// Why a JWKS document was refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("JWKS document is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("JWKS document is not JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("JWKS document is not an object with a `keys` array")]
    NotAKeySet,
}

/// One verification key.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    pub(crate) decoding: DecodingKey,
    kind: KeyKind,
    alg: Option<Algorithm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Key {
    /// Whether a token signed with `alg` may be checked with this key.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|own| own == alg) && self.kind.fits(alg)
    }
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        match self {
            Self::Rsa => alg.family() == AlgorithmFamily::Rsa,
            Self::P256 => alg == Algorithm::ES256,
            Self::P384 => alg == Algorithm::ES384,
            Self::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// The usable keys of one issuer: by `kid`, plus (OAuth only) keys without one.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    unnamed: Vec<Key>,
    refresh_hint: Option<Duration>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<serde::de::IgnoredAny>,
    key_ops: Option<Vec<String>>,
}

impl KeySet {
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a JWKS document. In SPIFFE mode only keys with
    /// `use: "jwt-svid"` and a `kid` count. Keys of unsupported type or curve,
    /// `use: "enc"`, or that fail to build are skipped, not fatal; the
    /// returned list says which and why. A document that is not an object
    /// with a `keys` array is an error.
    pub fn from_jwks(bytes: &[u8], mode: &Mode) -> Result<(KeySet, Vec<String>), Error> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(Error::TooLarge);
        }
        let doc: Value = serde_json::from_slice(bytes).map_err(Error::Json)?;
        let Some(Value::Array(raw_keys)) = doc.get("keys") else {
            return Err(Error::NotAKeySet);
        };
        let mut set = KeySet {
            refresh_hint: doc
                .get("spiffe_refresh_hint")
                .and_then(Value::as_u64)
                .filter(|secs| *secs > 0)
                .map(Duration::from_secs),
            ..KeySet::default()
        };
        let mut skipped = Vec::new();
        if raw_keys.len() > MAX_KEYS {
            skipped.push(format!(
                "keys past the first {MAX_KEYS}: {} skipped",
                raw_keys.len() - MAX_KEYS
            ));
        }
        for (index, raw) in raw_keys.iter().take(MAX_KEYS).enumerate() {
            let Ok(jwk) = RawJwk::deserialize(raw) else {
                skipped.push(format!("key #{index}: not a JWK object of string fields"));
                continue;
            };
            let label = match &jwk.kid {
                Some(kid) => format!("key #{index} (kid {})", loggable(kid)),
                None => format!("key #{index}"),
            };
            match build(&jwk, mode) {
                Err(why) => skipped.push(format!("{label}: {why}")),
                Ok(key) => match jwk.kid {
                    Some(kid) if set.by_kid.contains_key(&kid) => {
                        skipped.push(format!("{label}: duplicate kid"));
                    }
                    Some(kid) => {
                        set.by_kid.insert(kid, key);
                    }
                    None => set.unnamed.push(key),
                },
            }
        }
        Ok((set, skipped))
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `spiffe_refresh_hint` (seconds) from the document, if present.
    pub fn refresh_hint(&self) -> Option<Duration> {
        self.refresh_hint
    }

    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Whether any public key is loaded (symmetric keys never come from a
    /// JWKS, so this is any key at all).
    pub fn has_asymmetric(&self) -> bool {
        !self.is_empty()
    }

    pub(crate) fn find(&self, kid: &str) -> Option<&Key> {
        self.by_kid.get(kid)
    }

    pub(crate) fn unnamed(&self) -> &[Key] {
        &self.unnamed
    }
}

fn build(jwk: &RawJwk, mode: &Mode) -> Result<Key, String> {
    let spiffe = matches!(mode, Mode::Spiffe { .. });
    match (jwk.use_.as_deref(), spiffe) {
        (Some("enc"), _) => return Err("use enc is for encryption".into()),
        (Some("jwt-svid"), true) | (None | Some("sig" | "jwt-svid"), false) => {}
        (_, true) => return Err("use is not jwt-svid".into()),
        (Some(other), false) => return Err(format!("use {} is not sig", loggable(other))),
    }
    if spiffe && jwk.kid.is_none() {
        return Err("no kid (required for JWT-SVID keys)".into());
    }
    if let Some(ops) = &jwk.key_ops
        && !ops.iter().any(|op| op == "verify")
    {
        return Err("key_ops does not allow verify".into());
    }
    if jwk.d.is_some() {
        return Err("holds private key material".into());
    }
    let alg = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(
            Algorithm::from_str(name).map_err(|_| format!("unsupported alg {}", loggable(name)))?,
        ),
    };
    let (kind, decoding) = match (jwk.kty.as_deref(), jwk.crv.as_deref()) {
        (Some("RSA"), _) => rsa(jwk)?,
        (Some("EC"), Some("P-256")) => ec(jwk, 32, KeyKind::P256, &lc::ECDSA_P256_SHA256_FIXED)?,
        (Some("EC"), Some("P-384")) => ec(jwk, 48, KeyKind::P384, &lc::ECDSA_P384_SHA384_FIXED)?,
        (Some("EC"), Some("P-521")) => return Err("curve P-521 (ES512) is not supported".into()),
        (Some("OKP"), Some("Ed25519")) if spiffe => {
            return Err("Ed25519 is not a JWT-SVID algorithm".into());
        }
        (Some("OKP"), Some("Ed25519")) => ed25519(jwk)?,
        (Some("EC" | "OKP"), crv) => {
            return Err(format!(
                "unsupported curve {}",
                loggable(crv.unwrap_or("(none)"))
            ));
        }
        (Some("oct"), _) => return Err("symmetric keys are never taken from a JWKS".into()),
        (kty, _) => {
            return Err(format!(
                "unsupported kty {}",
                loggable(kty.unwrap_or("(none)"))
            ));
        }
    };
    if let Some(alg) = alg
        && !kind.fits(alg)
    {
        return Err(format!("alg {alg:?} does not fit the key type"));
    }
    Ok(Key {
        decoding,
        kind,
        alg,
    })
}

fn field(value: Option<&String>, name: &str) -> Result<Vec<u8>, String> {
    let text = value.ok_or_else(|| format!("no {name}"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("{name} is not base64url"))
}

fn rsa(jwk: &RawJwk) -> Result<(KeyKind, DecodingKey), String> {
    let n = field(jwk.n.as_ref(), "n")?;
    let e = field(jwk.e.as_ref(), "e")?;
    let (n, e) = (strip_leading_zeros(&n), strip_leading_zeros(&e));
    let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
    if !(2048..=8192).contains(&bits) {
        return Err(format!("RSA modulus of {bits} bits is outside 2048..8192"));
    }
    RsaPublicKeyComponents { n, e }
        .to_parsed_public_key(&lc::RSA_PKCS1_2048_8192_SHA256)
        .map_err(|_| "RSA key does not build".to_owned())?;
    Ok((KeyKind::Rsa, DecodingKey::from_rsa_raw_components(n, e)))
}

fn ec(
    jwk: &RawJwk,
    len: usize,
    kind: KeyKind,
    check: &'static lc::EcdsaVerificationAlgorithm,
) -> Result<(KeyKind, DecodingKey), String> {
    let x = field(jwk.x.as_ref(), "x")?;
    let y = field(jwk.y.as_ref(), "y")?;
    if x.len() != len || y.len() != len {
        return Err("EC coordinates have the wrong length".into());
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    ParsedPublicKey::new(check, &point).map_err(|_| "EC point is not on the curve".to_owned())?;
    Ok((kind, DecodingKey::from_ec_der(&point)))
}

fn ed25519(jwk: &RawJwk) -> Result<(KeyKind, DecodingKey), String> {
    let x = field(jwk.x.as_ref(), "x")?;
    ParsedPublicKey::new(&lc::ED25519, &x).map_err(|_| "Ed25519 key does not build".to_owned())?;
    Ok((KeyKind::Ed25519, DecodingKey::from_ed_der(&x)))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// Text from outside (a `kid`, a claim name) made fit for logs and
/// `WWW-Authenticate`: at most 64 characters of `[A-Za-z0-9._:/@+-]`, others
/// shown as `?`.
pub(crate) fn loggable(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._:/@+-".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests;
