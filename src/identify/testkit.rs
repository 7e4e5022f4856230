//! Keys and tokens for tests and benchmarks: keys are generated with
//! aws-lc-rs and tokens are assembled and signed by hand (not by
//! jsonwebtoken), so any header or payload can be built, hostile ones
//! included. Never used on the request path.

#![allow(clippy::expect_used, missing_docs)]

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self as lc, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

pub fn enc(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// One process-wide RSA-2048 key: generating it is the slow part.
fn rsa_pair() -> &'static RsaKeyPair {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    KEY.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).expect("generate RSA key"))
}

#[derive(Debug)]
enum Private {
    Rsa,
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Hmac(Vec<u8>),
}

/// A private key with the `kid` and `alg` its tokens carry.
#[derive(Debug)]
pub struct Signer {
    pub kid: Option<String>,
    pub alg: Algorithm,
    key: Private,
}

impl Signer {
    /// The shared RSA key, for RS* or PS*.
    pub fn rsa(kid: &str, alg: Algorithm) -> Self {
        Self::new(kid, alg, Private::Rsa)
    }

    /// A fresh P-256 (ES256) or P-384 (ES384) key.
    pub fn ec(kid: &str, alg: Algorithm) -> Self {
        let curve = match alg {
            Algorithm::ES384 => &lc::ECDSA_P384_SHA384_FIXED_SIGNING,
            _ => &lc::ECDSA_P256_SHA256_FIXED_SIGNING,
        };
        let key = EcdsaKeyPair::generate(curve).expect("generate EC key");
        Self::new(kid, alg, Private::Ec(key))
    }

    pub fn ed(kid: &str) -> Self {
        let key = Ed25519KeyPair::generate().expect("generate Ed25519 key");
        Self::new(kid, Algorithm::EdDSA, Private::Ed(key))
    }

    pub fn hmac(secret: &[u8], alg: Algorithm) -> Self {
        let mut signer = Self::new("", alg, Private::Hmac(secret.to_vec()));
        signer.kid = None;
        signer
    }

    fn new(kid: &str, alg: Algorithm, key: Private) -> Self {
        Self {
            kid: Some(kid.to_owned()),
            alg,
            key,
        }
    }

    /// The public JWK (no `use`), with `kid` when the signer has one.
    pub fn jwk(&self) -> Value {
        let mut jwk = match &self.key {
            Private::Rsa => {
                let public = RsaPublicKeyComponents::<Vec<u8>>::from(rsa_pair().public_key());
                json!({"kty": "RSA", "n": enc(&public.n), "e": enc(&public.e)})
            }
            Private::Ec(key) => {
                let point = key.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv,
                       "x": enc(&point[1..=len]), "y": enc(&point[1 + len..])})
            }
            Private::Ed(key) => json!({"kty": "OKP", "crv": "Ed25519", "x": enc(key.public_key())}),
            Private::Hmac(secret) => json!({"kty": "oct", "k": enc(secret)}),
        };
        if let Some(kid) = &self.kid {
            jwk["kid"] = json!(kid);
        }
        jwk
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            Private::Rsa => {
                let padding: &'static dyn lc::RsaEncoding = match self.alg {
                    Algorithm::RS384 => &lc::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &lc::RSA_PKCS1_SHA512,
                    Algorithm::PS256 => &lc::RSA_PSS_SHA256,
                    Algorithm::PS384 => &lc::RSA_PSS_SHA384,
                    Algorithm::PS512 => &lc::RSA_PSS_SHA512,
                    _ => &lc::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; rsa_pair().public_modulus_len()];
                rsa_pair()
                    .sign(padding, &rng, message, &mut sig)
                    .expect("RSA sign");
                sig
            }
            Private::Ec(key) => key.sign(&rng, message).expect("EC sign").as_ref().to_vec(),
            Private::Ed(key) => key.sign(message).as_ref().to_vec(),
            Private::Hmac(secret) => {
                let alg = match self.alg {
                    Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                    Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                    _ => aws_lc_rs::hmac::HMAC_SHA256,
                };
                let key = aws_lc_rs::hmac::Key::new(alg, secret);
                aws_lc_rs::hmac::sign(&key, message).as_ref().to_vec()
            }
        }
    }

    /// The public key as an SPKI PEM (RSA and EC; an HMAC key has none).
    pub fn public_pem(&self) -> String {
        use aws_lc_rs::encoding::AsDer as _;
        match &self.key {
            Private::Rsa => rsa_public_pem(),
            Private::Ec(key) => pem(key.public_key().as_der().expect("EC public DER").as_ref()),
            Private::Ed(key) => {
                // SPKI for Ed25519: fixed prefix + the 32-byte key.
                let mut der = vec![
                    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
                ];
                der.extend_from_slice(key.public_key().as_ref());
                pem(&der)
            }
            Private::Hmac(_) => panic!("an HMAC key has no public half"),
        }
    }

    /// The usual header: `alg`, `typ: JWT` and `kid` when the signer has one.
    pub fn header(&self) -> Value {
        let mut header = json!({"alg": format!("{:?}", self.alg), "typ": "JWT"});
        if let Some(kid) = &self.kid {
            header["kid"] = json!(kid);
        }
        header
    }

    pub fn token(&self, claims: &Value) -> String {
        self.token_with(&self.header(), claims)
    }

    /// Signs any header JSON and any payload JSON.
    pub fn token_with(&self, header: &Value, claims: &Value) -> String {
        self.token_raw(header.to_string().as_bytes(), claims.to_string().as_bytes())
    }

    /// Signs raw header and payload bytes (for non-JSON payloads).
    pub fn token_raw(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!("{}.{}", enc(header), enc(payload));
        let signature = self.sign(input.as_bytes());
        format!("{input}.{}", enc(signature))
    }
}

/// The RSA public key as an SPKI PEM: what an attacker would try as an HMAC
/// secret.
pub fn rsa_public_pem() -> String {
    use aws_lc_rs::encoding::AsDer as _;
    let der = rsa_pair().public_key().as_der().expect("RSA public DER");
    pem(der.as_ref())
}

fn pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// A JWKS of the signers' public keys, each with `use` when given.
pub fn jwks(signers: &[&Signer], key_use: Option<&str>) -> Vec<u8> {
    let keys: Vec<Value> = signers
        .iter()
        .map(|s| {
            let mut jwk = s.jwk();
            if let Some(key_use) = key_use {
                jwk["use"] = json!(key_use);
            }
            jwk
        })
        .collect();
    json!({ "keys": keys }).to_string().into_bytes()
}
