//! Size limit, `peek_issuer`, rejection labels and texts, `Rules` debug output.

use super::*;

#[test]
fn oversized_token_is_refused_quickly() {
    let fx = fixture();
    let verified = |token: &str| verify(token, &fx.spiffe, &fx.spiffe_keys, AUDIENCE, NOW);
    // Refused before any parsing, and so whatever it holds: decoding this
    // one would refuse it as malformed (a one-character signature is not
    // base64url) ...
    let huge = format!(
        "{}.{}.{}",
        "e".repeat(32 * 1024),
        "e".repeat(32 * 1024),
        "e"
    );
    assert_eq!(verified(&huge), Err(Rejection::TooLarge));
    assert_eq!(peek_issuer(&huge), Err(Rejection::TooLarge));
    // ... and verifying this one would accept it: a well-signed token just
    // past the limit, one padding byte longer than one that verifies.
    let padded = |n: usize| {
        let claims = with(agent_claims(), json!({"pad": "x".repeat(n)}));
        fx.es256.token(&claims)
    };
    let pads: Vec<usize> = (0..MAX_TOKEN_BYTES).collect();
    let over = pads.partition_point(|&n| padded(n).len() <= MAX_TOKEN_BYTES);
    assert!(verified(&padded(over - 1)).is_ok(), "at the limit");
    assert_eq!(verified(&padded(over)), Err(Rejection::TooLarge));
    assert_eq!(peek_issuer(&padded(over)), Err(Rejection::TooLarge));

    // And at the cost of a length check: 1,000 refusals take well under a
    // millisecond in a debug build, 1,000 base64 decodings of the token
    // about 0.7 s. The best of a few rounds is kept, so that a machine too
    // busy to run this thread for 200 ms once does not fail the test.
    let round = || {
        let start = Instant::now();
        for _ in 0..1000 {
            assert_eq!(verified(&huge), Err(Rejection::TooLarge));
        }
        start.elapsed()
    };
    let mut best = round();
    for _ in 1..5 {
        if best < Duration::from_millis(200) {
            break;
        }
        best = best.min(round());
    }
    assert!(best < Duration::from_millis(200), "{best:?}");
}

#[test]
fn peek_issuer_reads_iss_without_verifying() {
    let fx = fixture();
    let token = fx.es256.token(&agent_claims());
    assert_eq!(peek_issuer(&token).as_deref(), Ok(SPIFFE_ISSUER));
    let no_iss = fx.es256.token(&with(agent_claims(), json!({"iss": null})));
    assert_eq!(peek_issuer(&no_iss), Err(Rejection::MissingIssuer));
    assert_eq!(peek_issuer("a.b"), Err(Rejection::Malformed));
    assert_eq!(peek_issuer("e30.e30.x.y"), Err(Rejection::Malformed));
    assert_eq!(
        peek_issuer(&format!("e30.{}.", enc("[]"))),
        Err(Rejection::Malformed)
    );
    let twice = format!("e30.{}.", enc(r#"{"iss":"a","iss":"b"}"#));
    assert_eq!(peek_issuer(&twice), Err(Rejection::Malformed));
}

#[test]
fn rejection_codes_and_descriptions_are_safe() {
    let all = [
        Rejection::TooLarge,
        Rejection::Malformed,
        Rejection::AlgNotAllowed,
        Rejection::HeaderFieldNotAllowed,
        Rejection::MissingKid,
        Rejection::UnknownKid,
        Rejection::NoKeys,
        Rejection::KeyAlgMismatch,
        Rejection::BadSignature,
        Rejection::MissingExp,
        Rejection::Expired,
        Rejection::NotYetValid,
        Rejection::MissingIssuer,
        Rejection::WrongIssuer,
        Rejection::UntrustedIssuer,
        Rejection::MissingAudience,
        Rejection::WrongAudience,
        Rejection::LifetimeTooLong,
        Rejection::MissingClaim("te\"nant\\x".into()),
        Rejection::InvalidClaim("a b\"".into()),
        Rejection::BadSpiffeId(spiffe::Error::Port),
        Rejection::TrustDomainNotAllowed,
        Rejection::MissingSubject,
        Rejection::BadDelegation,
    ];
    let mut codes = std::collections::HashSet::new();
    for rejection in &all {
        let code = rejection.code();
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
        assert!(codes.insert(code), "duplicate code {code}");
        let text = rejection.description();
        assert!(!text.is_empty() && text.bytes().all(|b| (b' '..=b'~').contains(&b)));
        assert!(!text.contains(['"', '\\']), "{text}");
    }
    assert_eq!(
        Rejection::BadSpiffeId(spiffe::Error::Port).description(),
        "token sub is not a valid SPIFFE ID: trust domain contains a port"
    );
    assert!(Rejection::UnknownKid.wants_key_refresh() && Rejection::NoKeys.wants_key_refresh());
    assert!(!Rejection::BadSignature.wants_key_refresh());
}

#[test]
fn rules_debug_redacts_the_secret() {
    let mut rules = Rules::new(OAUTH_ISSUER, Mode::OAuth);
    rules.hs_secret = Some(b"hunter2hunter2".to_vec());
    let text = format!("{rules:?}");
    assert!(
        text.contains("<redacted>") && !text.contains("hunter2"),
        "{text}"
    );
}
