//! Dev tooling: mint tokens with a local key so the demo and tests can call
//! through the gateway. Never part of the request path.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, AlgorithmFamily, EncodingKey, Header};
use serde_json::{Map, Value, json};

/// The published dev key and its key id (see `config/dev/README.md`).
pub const DEV_KEY_PEM: &str = include_str!("../../config/dev/dev-signing-key.pem");
pub const DEV_JWKS: &str = include_str!("../../config/dev/jwks.json");
pub const DEV_KID: &str = "toolgate-dev-1";
pub const DEV_ISSUER: &str = "toolgate-dev";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read key file {0}: {1}")]
    KeyFile(String, std::io::Error),
    #[error("key does not fit algorithm {alg:?}: {reason}")]
    Key { alg: Algorithm, reason: String },
    #[error("algorithm {0:?} cannot be minted here (use ES256/384, RS*, PS* or EdDSA)")]
    Algorithm(Algorithm),
    #[error("claim {0:?} must be written name=value")]
    Claim(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

/// What to put in a token.
#[derive(Debug, Clone)]
pub struct Mint {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
    pub ttl: Duration,
    /// Actors, current first: `act.sub`, then `act.act.sub`, ... (RFC 8693).
    pub actors: Vec<String>,
    /// Extra claims; values that parse as JSON are used as JSON.
    pub claims: Vec<(String, String)>,
    pub algorithm: Algorithm,
    pub kid: Option<String>,
}

impl Mint {
    /// A dev token for `subject` and `audience`, signed with the dev key.
    pub fn dev(subject: &str, audience: &str, ttl: Duration) -> Self {
        Self {
            issuer: DEV_ISSUER.to_owned(),
            subject: subject.to_owned(),
            audience: audience.to_owned(),
            ttl,
            actors: Vec::new(),
            claims: Vec::new(),
            algorithm: Algorithm::ES256,
            kid: Some(DEV_KID.to_owned()),
        }
    }

    pub fn claims(&self, now: SystemTime) -> Value {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut claims = Map::new();
        claims.insert("iss".into(), Value::from(self.issuer.as_str()));
        claims.insert("sub".into(), Value::from(self.subject.as_str()));
        claims.insert("aud".into(), Value::from(self.audience.as_str()));
        claims.insert("iat".into(), Value::from(now));
        claims.insert("exp".into(), Value::from(now + self.ttl.as_secs()));
        let mut jti = [0u8; 12];
        let _ = getrandom::fill(&mut jti);
        claims.insert("jti".into(), Value::from(hex::encode(jti)));
        let act = self
            .actors
            .iter()
            .rev()
            .fold(None, |inner: Option<Value>, actor| {
                let mut obj = json!({ "sub": actor });
                if let Some(inner) = inner {
                    obj["act"] = inner;
                }
                Some(obj)
            });
        if let Some(act) = act {
            claims.insert("act".into(), act);
        }
        for (k, v) in &self.claims {
            let value = serde_json::from_str(v).unwrap_or_else(|_| Value::from(v.as_str()));
            claims.insert(k.clone(), value);
        }
        Value::Object(claims)
    }

    /// Signs the token with a PEM private key.
    pub fn sign(&self, key_pem: &[u8]) -> Result<String, Error> {
        let alg = self.algorithm;
        let key_err = |e: jsonwebtoken::errors::Error| Error::Key {
            alg,
            reason: e.to_string(),
        };
        // AlgorithmFamily is exhaustive (Algorithm is not), so match on it.
        let key = match alg.family() {
            AlgorithmFamily::Ec => EncodingKey::from_ec_pem(key_pem).map_err(key_err)?,
            AlgorithmFamily::Rsa => EncodingKey::from_rsa_pem(key_pem).map_err(key_err)?,
            AlgorithmFamily::Ed => EncodingKey::from_ed_pem(key_pem).map_err(key_err)?,
            AlgorithmFamily::Hmac => return Err(Error::Algorithm(alg)),
        };
        let mut header = Header::new(alg);
        header.kid = self.kid.clone();
        jsonwebtoken::encode(&header, &self.claims(SystemTime::now()), &key)
            .map_err(|e| Error::Sign(e.to_string()))
    }

    /// Signs with the key in a PEM file.
    pub fn sign_with_file(&self, path: &Path) -> Result<String, Error> {
        let pem = std::fs::read(path).map_err(|e| Error::KeyFile(path.display().to_string(), e))?;
        self.sign(&pem)
    }
}

/// Parses `name=value` pairs.
pub fn parse_claim(text: &str) -> Result<(String, String), Error> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(Error::Claim(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_token_has_the_claims_asked_for() {
        let mut m = Mint::dev("user:alice", "http://gw/mcp", Duration::from_secs(60));
        m.actors = vec![
            "spiffe://toolgate.dev/agent/a".into(),
            "spiffe://toolgate.dev/orchestrator".into(),
        ];
        m.claims = vec![
            parse_claim("task_id=t-1").unwrap(),
            parse_claim("n=3").unwrap(),
        ];
        let claims = m.claims(UNIX_EPOCH + Duration::from_secs(1000));
        assert_eq!(claims["exp"], 1060);
        assert_eq!(claims["act"]["sub"], "spiffe://toolgate.dev/agent/a");
        assert_eq!(
            claims["act"]["act"]["sub"],
            "spiffe://toolgate.dev/orchestrator"
        );
        assert_eq!(claims["task_id"], "t-1");
        assert_eq!(claims["n"], 3);
        let token = m.sign(DEV_KEY_PEM.as_bytes()).unwrap();
        assert_eq!(token.split('.').count(), 3);
        assert!(parse_claim("novalue").is_err());
    }
}
