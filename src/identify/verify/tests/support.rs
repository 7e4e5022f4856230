//! Test-only keys and token builders. Keys are generated at test time with
//! aws-lc-rs; tokens are assembled and signed by hand (not by jsonwebtoken),
//! so any header or payload can be built, hostile ones included.

use jsonwebtoken::Algorithm;
use serde_json::{Value, json};

pub(super) use crate::identify::testkit::{Signer, enc, jwks, rsa_public_pem};

use super::super::super::Workload;
use super::super::{Identity, KeySet, Mode, Rules};

pub(super) const NOW: u64 = 1_700_000_000;
pub(super) const AUDIENCE: &str = "toolgate";
pub(super) const SPIFFE_ISSUER: &str = "https://spire.example.org";
pub(super) const OAUTH_ISSUER: &str = "https://auth.example.com";

pub(super) fn spiffe_mode() -> Mode {
    Mode::Spiffe {
        trust_domains: vec!["example.org".into()],
    }
}

pub(super) fn key_set(signers: &[&Signer], key_use: Option<&str>, mode: &Mode) -> KeySet {
    let (set, skipped) = KeySet::from_jwks(&jwks(signers, key_use), mode).expect("parse JWKS");
    assert_eq!(set.len() + skipped.len(), signers.len());
    set
}

/// Valid claims for `sub`, issued by `iss` for `AUDIENCE`, 5 minutes left.
pub(super) fn claims(iss: &str, sub: &str) -> Value {
    json!({"iss": iss, "sub": sub, "aud": AUDIENCE, "iat": NOW - 10, "exp": NOW + 300})
}

/// Keys and rules shared by the cases.
pub(super) struct Fixture {
    pub(super) rsa: Signer,
    pub(super) es256: Signer,
    pub(super) spiffe: Rules,
    pub(super) oauth: Rules,
    pub(super) spiffe_keys: KeySet,
    pub(super) oauth_keys: KeySet,
}

pub(super) fn fixture() -> Fixture {
    let rsa = Signer::rsa("rsa-1", Algorithm::RS256);
    let es256 = Signer::ec("ec-1", Algorithm::ES256);
    let es384 = Signer::ec("ec-384", Algorithm::ES384);
    let mode = spiffe_mode();
    Fixture {
        spiffe_keys: key_set(&[&rsa, &es256, &es384], Some("jwt-svid"), &mode),
        oauth_keys: key_set(&[&rsa, &es256, &es384], Some("sig"), &Mode::OAuth),
        spiffe: Rules::new(SPIFFE_ISSUER, mode),
        oauth: Rules::new(OAUTH_ISSUER, Mode::OAuth),
        rsa,
        es256,
    }
}

pub(super) fn spiffe_claims(sub: &str) -> Value {
    claims(SPIFFE_ISSUER, sub)
}

pub(super) fn agent_claims() -> Value {
    spiffe_claims("spiffe://example.org/agent")
}

/// `base` with `changes` merged in; a `null` change removes the claim.
pub(super) fn with(mut base: Value, changes: Value) -> Value {
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

pub(super) fn workload(identity: Identity) -> std::sync::Arc<Workload> {
    match identity {
        Identity::Workload(workload) => workload,
        Identity::Anonymous => panic!("anonymous identity"),
    }
}
