use std::sync::OnceLock;

use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use serde_json::{Value, json};

use super::*;

fn enc(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_jwk() -> Value {
    static KEY: OnceLock<RsaKeyPair> = OnceLock::new();
    let key = KEY.get_or_init(|| RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key"));
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(key.public_key());
    json!({"kty": "RSA", "n": enc(&public.n), "e": enc(&public.e)})
}

fn ec_jwk(p384: bool) -> Value {
    let alg = if p384 {
        &lc::ECDSA_P384_SHA384_FIXED_SIGNING
    } else {
        &lc::ECDSA_P256_SHA256_FIXED_SIGNING
    };
    let key = EcdsaKeyPair::generate(alg).expect("EC key");
    let point = key.public_key().as_ref();
    let len = (point.len() - 1) / 2;
    let crv = if p384 { "P-384" } else { "P-256" };
    json!({"kty": "EC", "crv": crv, "x": enc(&point[1..=len]), "y": enc(&point[1 + len..])})
}

fn ed_jwk() -> Value {
    let key = Ed25519KeyPair::generate().expect("Ed25519 key");
    json!({"kty": "OKP", "crv": "Ed25519", "x": enc(key.public_key().as_ref())})
}

fn with(mut jwk: Value, fields: Value) -> Value {
    if let (Some(jwk), Some(fields)) = (jwk.as_object_mut(), fields.as_object()) {
        jwk.extend(fields.clone());
    }
    jwk
}

fn parse(keys: Vec<Value>, mode: &Mode) -> (KeySet, Vec<String>) {
    let doc = json!({"keys": keys, "spiffe_refresh_hint": 300}).to_string();
    KeySet::from_jwks(doc.as_bytes(), mode).expect("a JWKS")
}

fn spiffe() -> Mode {
    Mode::Spiffe {
        trust_domains: vec!["example.org".into()],
    }
}

#[test]
fn oauth_keeps_supported_keys_and_says_why_others_are_skipped() {
    let mut bad_point = ec_jwk(false);
    bad_point["y"] = json!(enc(&[7u8; 32]));
    let keys = vec![
        with(
            rsa_jwk(),
            json!({"kid": "rsa", "use": "sig", "alg": "RS256"}),
        ),
        with(ec_jwk(false), json!({"kid": "p256"})),
        with(ec_jwk(true), json!({"kid": "p384", "key_ops": ["verify"]})),
        ed_jwk(),
        with(rsa_jwk(), json!({"kid": "enc", "use": "enc"})),
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}),
        json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"}),
        json!({"kty": "OKP", "crv": "X25519", "x": "AA", "kid": "x25519"}),
        json!({"kty": "PQ", "kid": "future"}),
        with(ec_jwk(false), json!({"kid": "p256"})),
        with(rsa_jwk(), json!({"kid": "priv", "d": "secret-bits"})),
        with(rsa_jwk(), json!({"kid": "ec-alg", "alg": "ES256"})),
        with(rsa_jwk(), json!({"kid": "ops", "key_ops": ["encrypt"]})),
        with(rsa_jwk(), json!({"kid": "x5", "use": "x509-svid"})),
        json!({"kty": "RSA", "kid": "short", "n": enc(&[0xC1; 128]), "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "no-n", "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "bad-b64", "n": "***", "e": "AQAB"}),
        with(bad_point, json!({"kid": "off-curve"})),
        json!({"kty": "RSA", "kid": 5}),
        json!("not an object"),
    ];
    let (set, skipped) = parse(keys, &Mode::OAuth);
    assert_eq!(set.len(), 4, "{skipped:#?}");
    assert!(set.contains_kid("rsa") && set.contains_kid("p256") && set.contains_kid("p384"));
    assert_eq!(set.unnamed().len(), 1);
    assert!(set.has_asymmetric() && !set.is_empty());
    assert_eq!(set.refresh_hint(), Some(Duration::from_secs(300)));
    let expect = [
        "key #4 (kid enc): use enc is for encryption",
        "key #5 (kid hmac): symmetric keys are never taken from a JWKS",
        "key #6 (kid p521): curve P-521 (ES512) is not supported",
        "key #7 (kid x25519): unsupported curve X25519",
        "key #8 (kid future): unsupported kty PQ",
        "key #9 (kid p256): duplicate kid",
        "key #10 (kid priv): holds private key material",
        "key #11 (kid ec-alg): alg ES256 does not fit the key type",
        "key #12 (kid ops): key_ops does not allow verify",
        "key #13 (kid x5): use x509-svid is not sig",
        "key #14 (kid short): RSA modulus of 1024 bits is outside 2048..8192",
        "key #15 (kid no-n): no n",
        "key #16 (kid bad-b64): n is not base64url",
        "key #17 (kid off-curve): EC point is not on the curve",
        "key #18: not a JWK object of string fields",
        "key #19: not a JWK object of string fields",
    ];
    assert_eq!(skipped, expect);
    for reason in &skipped {
        assert!(!reason.contains("secret-bits"), "{reason}");
    }
}

#[test]
fn spiffe_needs_jwt_svid_use_and_kid() {
    let keys = vec![
        with(rsa_jwk(), json!({"kid": "ok", "use": "jwt-svid"})),
        with(ec_jwk(false), json!({"kid": "ok-ec", "use": "jwt-svid"})),
        with(ec_jwk(false), json!({"kid": "sig", "use": "sig"})),
        with(ec_jwk(false), json!({"kid": "none"})),
        with(ec_jwk(false), json!({"use": "jwt-svid"})),
        with(ed_jwk(), json!({"kid": "ed", "use": "jwt-svid"})),
        with(rsa_jwk(), json!({"kid": "x509", "use": "x509-svid"})),
    ];
    let (set, skipped) = parse(keys, &spiffe());
    assert_eq!(set.len(), 2);
    assert!(set.contains_kid("ok") && set.contains_kid("ok-ec") && !set.contains_kid("sig"));
    assert!(set.unnamed().is_empty());
    assert_eq!(
        skipped,
        [
            "key #2 (kid sig): use is not jwt-svid",
            "key #3 (kid none): use is not jwt-svid",
            "key #4: no kid (required for JWT-SVID keys)",
            "key #5 (kid ed): Ed25519 is not a JWT-SVID algorithm",
            "key #6 (kid x509): use is not jwt-svid",
        ]
    );
}

#[test]
fn documents_that_are_not_key_sets_are_errors() {
    for doc in [
        &b"not json"[..],
        b"[]",
        b"{}",
        br#"{"keys": {}}"#,
        br#"{"keys": "x"}"#,
    ] {
        assert!(KeySet::from_jwks(doc, &Mode::OAuth).is_err(), "{doc:?}");
    }
    let huge = vec![b' '; MAX_JWKS_BYTES + 1];
    assert!(matches!(
        KeySet::from_jwks(&huge, &Mode::OAuth),
        Err(Error::TooLarge)
    ));
    let (set, skipped) = KeySet::from_jwks(br#"{"keys": []}"#, &spiffe()).expect("empty set");
    assert!(set.is_empty() && !set.has_asymmetric() && skipped.is_empty());
    assert_eq!(set.refresh_hint(), None);
    assert!(KeySet::empty().is_empty());
}

#[test]
fn too_many_keys_are_cut_off_and_kids_are_logged_safely() {
    let one = with(ec_jwk(false), json!({"kid": "k"}));
    let keys: Vec<Value> = (0..MAX_KEYS + 3)
        .map(|i| with(one.clone(), json!({"kid": format!("k{i}")})))
        .collect();
    let (set, skipped) = parse(keys, &Mode::OAuth);
    assert_eq!(set.len(), MAX_KEYS);
    assert_eq!(
        skipped,
        [format!("keys past the first {MAX_KEYS}: 3 skipped")]
    );

    let evil = with(ec_jwk(false), json!({"kid": "a\"b\\c\nd", "use": "enc"}));
    let (_, skipped) = parse(vec![evil], &Mode::OAuth);
    assert_eq!(skipped, ["key #0 (kid a?b?c?d): use enc is for encryption"]);
    assert_eq!(loggable(&"x".repeat(70)), format!("{}...", "x".repeat(64)));
}

#[test]
fn rsa_modulus_with_a_leading_zero_still_builds() {
    let jwk = rsa_jwk();
    let n = URL_SAFE_NO_PAD
        .decode(jwk["n"].as_str().expect("n"))
        .expect("b64");
    let mut padded = vec![0u8];
    padded.extend_from_slice(&n);
    let (set, skipped) = parse(vec![with(jwk, json!({"n": enc(&padded)}))], &Mode::OAuth);
    assert_eq!((set.len(), skipped.len()), (1, 0), "{skipped:?}");
}
