use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

mod api;
mod positive;
mod support;

use support::*;

struct Case {
    name: &'static str,
    token: String,
    rules: Rules,
    keys: KeySet,
    want: Rejection,
}

fn case(name: &'static str, token: String, rules: &Rules, keys: &KeySet, want: Rejection) -> Case {
    let (rules, keys) = (rules.clone(), keys.clone());
    Case {
        name,
        token,
        rules,
        keys,
        want,
    }
}

fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in cases {
        let got = verify(&case.token, &case.rules, &case.keys, AUDIENCE, NOW);
        if got.as_ref().err() != Some(&case.want) {
            failures.push(format!("{}: want {:?}, got {got:?}", case.name, case.want));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_tokens_get_the_exact_rejection() {
    use spiffe::Error as Id;
    let fx = fixture();
    let (rsa, sp, oa) = (&fx.rsa, &fx.spiffe, &fx.oauth);
    let spiffe = |name, token, want| case(name, token, sp, &fx.spiffe_keys, want);
    let oauth = |name, token, want| case(name, token, oa, &fx.oauth_keys, want);
    let good = rsa.token(&agent_claims());
    let (head, rest) = good.split_once('.').expect("token has dots");
    let (_, sig) = rest.split_once('.').expect("token has dots");
    let tampered_payload = format!(
        "{head}.{}.{sig}",
        enc(with(agent_claims(), json!({"sub": "spiffe://example.org/admin"})).to_string())
    );
    let mut raw_sig = URL_SAFE_NO_PAD.decode(sig).expect("signature is base64url");
    raw_sig[10] ^= 0x01;
    let tampered_sig = format!(
        "{head}.{}.{}",
        rest.split_once('.').expect("dot").0,
        enc(raw_sig)
    );
    let none_token = format!(
        "{}.{}.",
        enc(r#"{"alg":"none","typ":"JWT"}"#),
        enc(agent_claims().to_string())
    );
    let pem = rsa_public_pem();
    let confused = Signer::hmac(pem.as_bytes(), Algorithm::HS256);
    let confused_oauth = confused.token(&claims(OAUTH_ISSUER, "user"));
    let mut hs_allowed = oa.clone();
    hs_allowed.algorithms.push(Algorithm::HS256);
    let mut hs_with_pem = hs_allowed.clone();
    hs_with_pem.hs_secret = Some(pem.clone().into_bytes());
    let mut short_lived = sp.clone();
    short_lived.max_lifetime = Some(Duration::from_secs(3600));
    let mut needs_tenant = oa.clone();
    needs_tenant.required_claims = vec!["tenant".into()];
    let sig_only = key_set(&[rsa], Some("sig"), &spiffe_mode());
    let other_key = Signer::ec("ec-1", Algorithm::ES256);
    let header_plus = |field: &str, value: Value| {
        let mut h = rsa.header();
        h[field] = value;
        rsa.token_with(&h, &agent_claims())
    };
    let kid = |kid: &str| {
        let mut h = rsa.header();
        h["kid"] = json!(kid);
        rsa.token_with(&h, &agent_claims())
    };
    let claim = |changes: Value| rsa.token(&with(agent_claims(), changes));
    let sub = |sub: &str| rsa.token(&spiffe_claims(sub));
    let act = |act: Value| rsa.token(&with(claims(OAUTH_ISSUER, "alice"), json!({"act": act})));
    let mut deep = json!({"sub": "agent-9"});
    for level in (1..=8).rev() {
        deep = json!({"sub": format!("agent-{level}"), "act": deep});
    }
    let oauth_claims = claims(OAUTH_ISSUER, "user");
    run(vec![
        spiffe("alg none", none_token.clone(), Rejection::AlgNotAllowed),
        oauth("alg none (oauth)", none_token, Rejection::AlgNotAllowed),
        oauth(
            "HS256 with RSA PEM, default algs",
            confused_oauth.clone(),
            Rejection::AlgNotAllowed,
        ),
        case(
            "HS256 with RSA PEM, HS256 listed, no secret",
            confused_oauth.clone(),
            &hs_allowed,
            &fx.oauth_keys,
            Rejection::AlgNotAllowed,
        ),
        case(
            "HS256 with RSA PEM as secret, asymmetric keys",
            confused_oauth,
            &hs_with_pem,
            &fx.oauth_keys,
            Rejection::AlgNotAllowed,
        ),
        spiffe(
            "HS256 in SPIFFE mode",
            confused.token(&agent_claims()),
            Rejection::AlgNotAllowed,
        ),
        spiffe(
            "EdDSA in SPIFFE mode",
            Signer::ed("ec-1").token(&agent_claims()),
            Rejection::AlgNotAllowed,
        ),
        spiffe(
            "unknown alg ES512",
            header_plus("alg", json!("ES512")),
            Rejection::AlgNotAllowed,
        ),
        spiffe("unknown kid", kid("rsa-2"), Rejection::UnknownKid),
        spiffe(
            "kid path traversal",
            kid("../../etc/passwd"),
            Rejection::UnknownKid,
        ),
        spiffe("kid SQL junk", kid("' OR 1=1 --"), Rejection::UnknownKid),
        oauth(
            "kid SQL junk (oauth)",
            kid("' OR 1=1 --"),
            Rejection::UnknownKid,
        ),
        spiffe(
            "no kid in SPIFFE mode",
            Signer::rsa("x", Algorithm::RS256)
                .token_with(&json!({"alg": "RS256"}), &agent_claims()),
            Rejection::MissingKid,
        ),
        spiffe(
            "kid of an EC key, alg RS256",
            kid("ec-1"),
            Rejection::KeyAlgMismatch,
        ),
        spiffe(
            "P-256 key named, alg ES384",
            Signer::ec("ec-1", Algorithm::ES384).token(&agent_claims()),
            Rejection::KeyAlgMismatch,
        ),
        spiffe(
            "expired",
            claim(json!({"exp": NOW - 61})),
            Rejection::Expired,
        ),
        spiffe(
            "expired at leeway edge",
            claim(json!({"exp": NOW - 60})),
            Rejection::Expired,
        ),
        spiffe(
            "nbf in the future",
            claim(json!({"nbf": NOW + 61})),
            Rejection::NotYetValid,
        ),
        spiffe(
            "wrong iss",
            claim(json!({"iss": "https://evil.example"})),
            Rejection::WrongIssuer,
        ),
        spiffe(
            "missing iss",
            claim(json!({"iss": null})),
            Rejection::MissingIssuer,
        ),
        spiffe(
            "wrong aud",
            claim(json!({"aud": ["other", "svc"]})),
            Rejection::WrongAudience,
        ),
        spiffe(
            "missing aud",
            claim(json!({"aud": null})),
            Rejection::MissingAudience,
        ),
        spiffe(
            "empty aud array",
            claim(json!({"aud": []})),
            Rejection::MissingAudience,
        ),
        spiffe(
            "missing exp",
            claim(json!({"exp": null})),
            Rejection::MissingExp,
        ),
        oauth(
            "missing exp (oauth)",
            rsa.token(&with(oauth_claims.clone(), json!({"exp": null}))),
            Rejection::MissingExp,
        ),
        spiffe(
            "exp not a number",
            claim(json!({"exp": "tomorrow"})),
            Rejection::InvalidClaim("exp".into()),
        ),
        case(
            "lifetime over max",
            claim(json!({"exp": NOW + 7200, "iat": NOW})),
            &short_lived,
            &fx.spiffe_keys,
            Rejection::LifetimeTooLong,
        ),
        case(
            "lifetime over max, iat in the future",
            claim(json!({"iat": NOW + 90_000, "exp": NOW + 90_060})),
            &short_lived,
            &fx.spiffe_keys,
            Rejection::LifetimeTooLong,
        ),
        spiffe(
            "tampered payload",
            tampered_payload,
            Rejection::BadSignature,
        ),
        spiffe("tampered signature", tampered_sig, Rejection::BadSignature),
        spiffe(
            "signed by another key under a known kid",
            other_key.token(&agent_claims()),
            Rejection::BadSignature,
        ),
        spiffe(
            "RSA key, header says PS256, signed RS256",
            rsa.token_with(&json!({"alg": "PS256", "kid": "rsa-1"}), &agent_claims()),
            Rejection::BadSignature,
        ),
        spiffe(
            "SPIFFE id with port",
            sub("spiffe://example.org:8443/agent"),
            Rejection::BadSpiffeId(Id::Port),
        ),
        spiffe(
            "SPIFFE id with query",
            sub("spiffe://example.org/agent?admin=1"),
            Rejection::BadSpiffeId(Id::Query),
        ),
        spiffe(
            "SPIFFE id uppercase trust domain",
            sub("spiffe://Example.org/agent"),
            Rejection::BadSpiffeId(Id::UppercaseTrustDomain),
        ),
        spiffe(
            "SPIFFE id of a trust domain, naming no workload",
            sub("spiffe://example.org"),
            Rejection::BadSpiffeId(Id::NoWorkload),
        ),
        spiffe(
            "SPIFFE id empty trust domain",
            sub("spiffe:///agent"),
            Rejection::BadSpiffeId(Id::EmptyTrustDomain),
        ),
        spiffe(
            "SPIFFE id not spiffe scheme",
            sub("https://example.org/agent"),
            Rejection::BadSpiffeId(Id::Scheme),
        ),
        spiffe(
            "SPIFFE sub missing",
            claim(json!({"sub": null})),
            Rejection::BadSpiffeId(Id::Empty),
        ),
        spiffe(
            "wrong trust domain",
            sub("spiffe://evil.org/agent"),
            Rejection::TrustDomainNotAllowed,
        ),
        case(
            "key with use sig in SPIFFE mode",
            good.clone(),
            sp,
            &sig_only,
            Rejection::NoKeys,
        ),
        case(
            "no keys at all",
            good.clone(),
            sp,
            &KeySet::empty(),
            Rejection::NoKeys,
        ),
        spiffe(
            "64 KiB token",
            format!("{good}{}", "A".repeat(64 * 1024)),
            Rejection::TooLarge,
        ),
        spiffe(
            "jku header",
            header_plus("jku", json!("https://evil.example/jwks")),
            Rejection::HeaderFieldNotAllowed,
        ),
        spiffe(
            "x5u header",
            header_plus("x5u", json!("https://evil.example/cert")),
            Rejection::HeaderFieldNotAllowed,
        ),
        spiffe(
            "crit header",
            header_plus("crit", json!(["exp"])),
            Rejection::HeaderFieldNotAllowed,
        ),
        spiffe(
            "jwk header",
            header_plus("jwk", rsa.jwk()),
            Rejection::HeaderFieldNotAllowed,
        ),
        spiffe(
            "typ at+jwt",
            header_plus("typ", json!("at+jwt")),
            Rejection::HeaderFieldNotAllowed,
        ),
        oauth(
            "crit header (oauth)",
            header_plus("crit", json!(["b64"])),
            Rejection::HeaderFieldNotAllowed,
        ),
        spiffe(
            "two segments",
            format!("{head}.{}", enc("{}")),
            Rejection::Malformed,
        ),
        spiffe("four segments", format!("{good}.x"), Rejection::Malformed),
        spiffe(
            "not base64url",
            good.replacen('.', ".*", 1),
            Rejection::Malformed,
        ),
        spiffe(
            "padded base64",
            format!("{head}=.{rest}"),
            Rejection::Malformed,
        ),
        spiffe(
            "header not JSON",
            format!("{}.{rest}", enc("not json")),
            Rejection::Malformed,
        ),
        spiffe(
            "payload not JSON",
            rsa.token_raw(rsa.header().to_string().as_bytes(), b"[1]"),
            Rejection::Malformed,
        ),
        spiffe(
            "repeated claim",
            rsa.token_raw(
                rsa.header().to_string().as_bytes(),
                br#"{"sub":"spiffe://example.org/a","sub":"spiffe://example.org/b"}"#,
            ),
            Rejection::Malformed,
        ),
        oauth(
            "oauth sub missing",
            rsa.token(&with(oauth_claims.clone(), json!({"sub": null}))),
            Rejection::MissingSubject,
        ),
        case(
            "required claim missing",
            rsa.token(&oauth_claims),
            &needs_tenant,
            &fx.oauth_keys,
            Rejection::MissingClaim("tenant".into()),
        ),
        oauth(
            "act not an object",
            act(json!("agent")),
            Rejection::BadDelegation,
        ),
        oauth(
            "act without sub",
            act(json!({"client_id": "x"})),
            Rejection::BadDelegation,
        ),
        oauth("act nested 9 deep", act(deep), Rejection::BadDelegation),
    ]);
}
