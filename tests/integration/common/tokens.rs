//! Test keys and tokens for the identify stage, on top of the library's
//! `identify::testkit` (keys generated with aws-lc-rs, tokens signed by hand
//! so any header or payload — hostile ones included — can be built).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};
use toolgate::identify::testkit::{Signer, enc};

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    enc(bytes)
}

/// Unix seconds now.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A private key and the `kid` / `alg` its tokens carry: the library's
/// test kit signer, with a `kid` always set and JWKs that carry `alg`.
pub struct Key {
    signer: Signer,
}

impl Key {
    /// A fresh P-256 key (ES256).
    pub fn es256(kid: &str) -> Self {
        Self {
            signer: Signer::ec(kid, Algorithm::ES256),
        }
    }

    /// The process-wide RSA-2048 key under `kid` (RS256).
    pub fn rs256(kid: &str) -> Self {
        Self {
            signer: Signer::rsa(kid, Algorithm::RS256),
        }
    }

    /// An HMAC secret (HS256), e.g. an issuer's public key PEM.
    pub fn hs256(kid: &str, secret: &[u8]) -> Self {
        let mut signer = Signer::hmac(secret, Algorithm::HS256);
        signer.kid = Some(kid.to_owned());
        Self { signer }
    }

    pub fn alg(&self) -> String {
        format!("{:?}", self.signer.alg)
    }

    /// The public JWK, with `kid`, `alg` and `use` (when given).
    pub fn jwk(&self, key_use: Option<&str>) -> Value {
        let mut jwk = self.signer.jwk();
        jwk["alg"] = json!(self.alg());
        if let Some(key_use) = key_use {
            jwk["use"] = json!(key_use);
        }
        jwk
    }

    /// The public key as an SPKI PEM: what an attacker would try as an HMAC secret.
    pub fn public_pem(&self) -> String {
        self.signer.public_pem()
    }

    /// The usual header: `alg`, `typ: JWT`, `kid`.
    pub fn header(&self) -> Value {
        self.signer.header()
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.signer.token(claims)
    }

    /// Signs any header JSON and any payload JSON.
    pub fn sign_with(&self, header: &Value, claims: &Value) -> String {
        self.signer.token_with(header, claims)
    }

    /// Signs raw header and payload bytes (e.g. JSON with a repeated key).
    pub fn sign_raw(&self, header: &[u8], payload: &[u8]) -> String {
        self.signer.token_raw(header, payload)
    }
}

/// A JWKS document of the given keys, each with its `use`.
pub fn jwks(keys: &[(&Key, Option<&str>)]) -> Value {
    let keys: Vec<Value> = keys.iter().map(|(k, u)| k.jwk(*u)).collect();
    json!({ "keys": keys })
}

/// Valid claims: `iss`, `sub`, `aud`, issued now, 5 minutes left, a unique
/// `jti` (so no two tokens are the same string).
pub fn claims(iss: &str, sub: &str, aud: &str) -> Value {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    let now = now();
    let jti = format!("jti-{}", SERIAL.fetch_add(1, Ordering::Relaxed));
    json!({"iss": iss, "sub": sub, "aud": aud, "iat": now, "exp": now + 300, "jti": jti})
}

/// `base` with `changes` merged in; a `null` change removes the claim.
pub fn with(mut base: Value, changes: Value) -> Value {
    if let (Some(claims), Some(changes)) = (base.as_object_mut(), changes.as_object()) {
        for (name, value) in changes {
            match value {
                Value::Null => claims.remove(name),
                _ => claims.insert(name.clone(), value.clone()),
            };
        }
    }
    base
}

/// The signature segment of a compact JWS.
pub fn signature_of(token: &str) -> &str {
    token.rsplit('.').next().expect("a JWS has segments")
}
