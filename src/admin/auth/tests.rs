//! Admin API authentication: token hashes, role order, SAN matching.

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::config::{Admin, AdminClient, AdminToken};

const OPS: &str = "tgadm_ops-token";
const VIEW: &str = "tgadm_view-token";

fn credentials() -> Credentials {
    let token = |name: &str, role, secret: &str| AdminToken {
        name: name.into(),
        role,
        sha256: hash_token_hex(secret),
    };
    Credentials::new(&Admin {
        tokens: vec![
            token("ops", Role::Operator, OPS),
            token("view", Role::Viewer, VIEW),
        ],
        clients: vec![
            AdminClient {
                san: "spiffe://example.org/ops".into(),
                role: Role::Operator,
            },
            AdminClient {
                san: "admin.example.org".into(),
                role: Role::Admin,
            },
        ],
        ..Admin::default()
    })
}

fn headers(authorization: &[&str]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in authorization {
        h.append(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn cert(sans: &[&str]) -> ClientCert {
    ClientCert {
        sans: sans
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<_>>()
            .into(),
    }
}

#[test]
fn hash_is_sha256_hex() {
    // printf 'abc' | sha256sum
    assert_eq!(
        hash_token_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        decode_hex32(&hash_token_hex("abc")),
        Some(hash_token("abc"))
    );
    assert_eq!(decode_hex32("ab"), None);
    assert_eq!(decode_hex32(&format!("+f{}", "0".repeat(62))), None);
}

#[test]
fn generated_tokens_are_prefixed_256_bit_base64url() {
    let a = generate_token().unwrap();
    let body = a.strip_prefix(TOKEN_PREFIX).unwrap();
    assert_eq!(body.len(), 43, "32 bytes, unpadded base64url");
    assert!(
        body.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_ne!(a, generate_token().unwrap());
}

#[test]
fn tokens_authenticate_by_hash() {
    let c = credentials();
    let caller = c
        .authenticate(&headers(&[&format!("Bearer {OPS}")]), None)
        .unwrap();
    assert_eq!(
        caller,
        Caller {
            actor: "ops".into(),
            role: Role::Operator
        }
    );
    let caller = c
        .authenticate(&headers(&[&format!("bearer  {VIEW}")]), None)
        .unwrap();
    assert_eq!(caller.role, Role::Viewer);
    for (value, code) in [
        ("Bearer tgadm_wrong", "invalid_token"),
        ("Basic dXNlcjpwdw==", "unauthenticated"),
        ("Bearer ", "unauthenticated"),
        ("Bearer a b", "unauthenticated"),
    ] {
        let e = c.authenticate(&headers(&[value]), None).unwrap_err();
        assert_eq!(e.code(), code, "{value}");
        assert!(!e.to_string().contains("tgadm_"), "never echoed: {e}");
    }
    let two = headers(&[&format!("Bearer {OPS}"), &format!("Bearer {OPS}")]);
    assert_eq!(
        c.authenticate(&two, None).unwrap_err().code(),
        "invalid_token"
    );
    let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN + 1));
    assert_eq!(
        c.authenticate(&headers(&[&long]), None).unwrap_err().code(),
        "invalid_token"
    );
}

#[test]
fn a_sent_token_decides_even_with_a_certificate() {
    let c = credentials();
    let admin_cert = cert(&["admin.example.org"]);
    let e = c
        .authenticate(&headers(&["Bearer tgadm_wrong"]), Some(&admin_cert))
        .unwrap_err();
    assert_eq!(e.code(), "invalid_token");
    let caller = c
        .authenticate(&HeaderMap::new(), Some(&admin_cert))
        .unwrap();
    assert_eq!(caller.actor, "cert:admin.example.org");
    assert_eq!(caller.role, Role::Admin);
}

#[test]
fn certificates_authenticate_by_san() {
    let c = credentials();
    let none = HeaderMap::new();
    let ops = c
        .authenticate(&none, Some(&cert(&["spiffe://example.org/ops"])))
        .unwrap();
    assert_eq!(ops.actor, "cert:spiffe://example.org/ops");
    // The highest role among the SANs wins.
    let both = cert(&["spiffe://example.org/ops", "ADMIN.example.org"]);
    assert_eq!(
        c.authenticate(&none, Some(&both)).unwrap().role,
        Role::Admin
    );
    let e = c
        .authenticate(&none, Some(&cert(&["spiffe://example.org/OPS"])))
        .unwrap_err();
    assert_eq!(e.code(), "unauthenticated");
    assert_eq!(
        c.authenticate(&none, Some(&cert(&[]))).unwrap_err().code(),
        "unauthenticated"
    );
    assert_eq!(
        c.authenticate(&none, None).unwrap_err().code(),
        "unauthenticated"
    );
}

#[test]
fn san_matching() {
    assert!(san_matches(
        "spiffe://example.org/a",
        "spiffe://example.org/a"
    ));
    assert!(!san_matches(
        "spiffe://example.org/a",
        "spiffe://example.org/A"
    ));
    assert!(!san_matches(
        "spiffe://example.org/a",
        "spiffe://example.org/a/b"
    ));
    assert!(san_matches("ops.example.org", "OPS.Example.org"));
    assert!(!san_matches("ops.example.org", "ops.example.org.evil"));
}

#[test]
fn roles_are_ordered_and_each_includes_the_ones_before() {
    assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    let viewer = Caller {
        actor: "v".into(),
        role: Role::Viewer,
    };
    assert!(viewer.require(Role::Viewer).is_ok());
    let e = viewer.require(Role::Operator).unwrap_err();
    assert_eq!(e.code(), "forbidden");
    assert!(e.to_string().contains("needs role operator"), "{e}");
    let admin = Caller {
        actor: "a".into(),
        role: Role::Admin,
    };
    for role in [Role::Viewer, Role::Operator, Role::Admin] {
        assert!(admin.require(role).is_ok());
    }
}

#[test]
fn no_credentials_fail_closed_with_a_hint() {
    let empty = Credentials::new(&Admin::default());
    assert!(empty.is_empty());
    let e = empty
        .authenticate(&headers(&["Bearer anything"]), Some(&cert(&["x"])))
        .unwrap_err();
    assert_eq!(e.code(), "unauthenticated");
    assert!(e.to_string().contains("toolgate admin-token"), "{e}");
}
