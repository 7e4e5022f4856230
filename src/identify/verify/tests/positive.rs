//! Tokens that must verify, and what the identity then says.

use super::*;

fn oauth_fixture() -> (Fixture, KeySet) {
    let fx = fixture();
    let keys = key_set(&[&fx.rsa, &fx.es256], Some("sig"), &Mode::OAuth);
    (fx, keys)
}

#[test]
fn every_algorithm_verifies_in_the_modes_it_belongs_to() {
    let rsa_algs = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ];
    let es256 = Signer::ec("ec-256", Algorithm::ES256);
    let es384 = Signer::ec("ec-384", Algorithm::ES384);
    let ed = Signer::ed("ed-1");
    let rsa: Vec<Signer> = rsa_algs
        .iter()
        .map(|alg| Signer::rsa("rsa-1", *alg))
        .collect();
    let spiffe_keys = key_set(&[&rsa[0], &es256, &es384], Some("jwt-svid"), &spiffe_mode());
    let oauth_keys = key_set(&[&rsa[0], &es256, &es384, &ed], None, &Mode::OAuth);
    let spiffe_rules = Rules::new(SPIFFE_ISSUER, spiffe_mode());
    let oauth_rules = Rules::new(OAUTH_ISSUER, Mode::OAuth);
    for signer in rsa.iter().chain([&es256, &es384, &ed]) {
        let oauth = verify(
            &signer.token(&claims(OAUTH_ISSUER, "user-1")),
            &oauth_rules,
            &oauth_keys,
            AUDIENCE,
            NOW,
        );
        let oauth = workload(oauth.unwrap_or_else(|e| panic!("{:?} oauth: {e:?}", signer.alg)));
        assert_eq!(
            (oauth.subject.as_str(), oauth.spiffe.as_ref()),
            ("user-1", None)
        );
        if signer.alg == Algorithm::EdDSA {
            continue;
        }
        let token = signer.token(&spiffe_claims("spiffe://example.org/ns/prod/agent"));
        let svid = verify(&token, &spiffe_rules, &spiffe_keys, AUDIENCE, NOW)
            .unwrap_or_else(|e| panic!("{:?} spiffe: {e:?}", signer.alg));
        assert_eq!(svid.subject(), "spiffe://example.org/ns/prod/agent");
        let id = workload(svid).spiffe.clone().expect("SPIFFE ID");
        assert_eq!(
            (id.trust_domain.as_str(), id.path.as_str()),
            ("example.org", "/ns/prod/agent")
        );
    }
}

#[test]
fn identity_carries_delegation_scopes_selected_claims_and_task() {
    let (fx, keys) = oauth_fixture();
    let mut rules = fx.oauth.clone();
    rules.selected_claims = vec!["tenant".into(), "missing".into(), "sub".into()];
    rules.task_claim = Some("task".into());
    let token = fx.rsa.token(&with(
        claims(OAUTH_ISSUER, "alice"),
        json!({
            "aud": ["other", AUDIENCE],
            "scope": "tools:read  tools:write",
            "scp": ["ignored"],
            "tenant": {"id": 7},
            "secret_stuff": "never copied",
            "task": "task-42",
            "act": {"sub": "agent-a", "act": {"sub": "orchestrator", "act": {"sub": "root-svc"}}},
        }),
    ));
    let w = workload(verify(&token, &rules, &keys, AUDIENCE, NOW).expect("verifies"));
    assert_eq!(w.subject, "alice");
    assert_eq!(w.issuer, OAUTH_ISSUER);
    assert_eq!(w.audience, ["other", AUDIENCE]);
    assert_eq!(w.scopes, ["tools:read", "tools:write"]);
    assert_eq!(w.expires_at, NOW + 300);
    assert_eq!(w.task_id.as_deref(), Some("task-42"));
    assert_eq!(
        Value::Object(w.claims.clone()),
        json!({"tenant": {"id": 7}, "sub": "alice"})
    );
    assert_eq!(w.delegation.user.as_deref(), Some("alice"));
    assert_eq!(w.delegation.agent.as_deref(), Some("agent-a"));
    assert_eq!(w.delegation.intermediaries, ["orchestrator", "root-svc"]);
}

#[test]
fn no_act_means_no_delegation_and_eight_levels_are_fine() {
    let (fx, keys) = oauth_fixture();
    let plain = fx.es256.token(&claims(OAUTH_ISSUER, "bob"));
    let w = workload(verify(&plain, &fx.oauth, &keys, AUDIENCE, NOW).expect("verifies"));
    assert_eq!(w.delegation, crate::identify::Delegation::default());
    assert!(w.claims.is_empty() && w.scopes.is_empty() && w.task_id.is_none());
    let mut act = json!({"sub": "a8"});
    for level in (1..=7).rev() {
        act = json!({"sub": format!("a{level}"), "act": act});
    }
    let token = fx
        .es256
        .token(&with(claims(OAUTH_ISSUER, "bob"), json!({"act": act})));
    let w = workload(verify(&token, &fx.oauth, &keys, AUDIENCE, NOW).expect("8 levels"));
    assert_eq!(w.delegation.agent.as_deref(), Some("a1"));
    assert_eq!(w.delegation.intermediaries.len(), 7);
}

#[test]
fn scopes_come_from_scp_array_or_string() {
    let (fx, keys) = oauth_fixture();
    for (scp, want) in [
        (json!(["a", "b:c"]), vec!["a", "b:c"]),
        (json!("x y"), vec!["x", "y"]),
    ] {
        let token = fx
            .rsa
            .token(&with(claims(OAUTH_ISSUER, "u"), json!({"scp": scp})));
        let w = workload(verify(&token, &fx.oauth, &keys, AUDIENCE, NOW).expect("verifies"));
        assert_eq!(w.scopes, want);
    }
    let bad = fx
        .rsa
        .token(&with(claims(OAUTH_ISSUER, "u"), json!({"scp": [1]})));
    let got = verify(&bad, &fx.oauth, &keys, AUDIENCE, NOW);
    assert_eq!(got, Err(Rejection::InvalidClaim("scp".into())));
}

#[test]
fn time_checks_use_now_and_leeway() {
    let fx = fixture();
    let (rules, keys) = (&fx.spiffe, &fx.spiffe_keys);
    let at = |changes: Value| fx.rsa.token(&with(agent_claims(), changes));
    for changes in [
        json!({"exp": NOW - 59}),
        json!({"nbf": NOW + 60}),
        json!({"exp": (NOW + 10) as f64 + 0.5}),
        json!({"iat": null}),
    ] {
        let got = verify(&at(changes.clone()), rules, keys, AUDIENCE, NOW);
        assert!(got.is_ok(), "{changes}: {got:?}");
    }
    let mut strict = rules.clone();
    strict.leeway = Duration::ZERO;
    strict.max_lifetime = Some(Duration::from_secs(310));
    assert!(verify(&at(json!({})), &strict, keys, AUDIENCE, NOW).is_ok());
    let late = verify(&at(json!({})), &strict, keys, AUDIENCE, NOW + 300);
    assert_eq!(late, Err(Rejection::Expired));
}

#[test]
fn hs256_works_only_with_a_secret_and_no_public_keys() {
    let fx = fixture();
    let secret = b"0123456789abcdef0123456789abcdef";
    let mut rules = fx.oauth.clone();
    rules.algorithms.push(Algorithm::HS256);
    rules.hs_secret = Some(secret.to_vec());
    let token = Signer::hmac(secret, Algorithm::HS256).token(&claims(OAUTH_ISSUER, "svc"));
    let w = verify(&token, &rules, &KeySet::empty(), AUDIENCE, NOW).expect("HS256 verifies");
    assert_eq!(w.subject(), "svc");
    let forged = Signer::hmac(b"wrong", Algorithm::HS256).token(&claims(OAUTH_ISSUER, "svc"));
    let got = verify(&forged, &rules, &KeySet::empty(), AUDIENCE, NOW);
    assert_eq!(got, Err(Rejection::BadSignature));
    let got = verify(&token, &rules, &fx.oauth_keys, AUDIENCE, NOW);
    assert_eq!(got, Err(Rejection::AlgNotAllowed));
}

#[test]
fn oauth_keys_without_kid_are_tried_for_tokens_without_kid() {
    let mut es = Signer::ec("", Algorithm::ES256);
    es.kid = None;
    let keys = key_set(&[&es], None, &Mode::OAuth);
    let rules = Rules::new(OAUTH_ISSUER, Mode::OAuth);
    let token = es.token(&claims(OAUTH_ISSUER, "u"));
    assert!(verify(&token, &rules, &keys, AUDIENCE, NOW).is_ok());
    let rsa_token = Signer::rsa("", Algorithm::RS256)
        .token_with(&json!({"alg": "RS256"}), &claims(OAUTH_ISSUER, "u"));
    let got = verify(&rsa_token, &rules, &keys, AUDIENCE, NOW);
    assert_eq!(got, Err(Rejection::KeyAlgMismatch));
    let fx = fixture();
    let got = verify(&token, &rules, &fx.oauth_keys, AUDIENCE, NOW);
    assert_eq!(got, Err(Rejection::MissingKid));
}

#[test]
fn a_keys_own_alg_must_match_the_token() {
    let fx = fixture();
    let mut jwk = fx.rsa.jwk();
    jwk["alg"] = json!("RS256");
    let doc = json!({"keys": [jwk]}).to_string();
    let (keys, skipped) = KeySet::from_jwks(doc.as_bytes(), &Mode::OAuth).expect("JWKS");
    assert!(skipped.is_empty());
    let rs = fx.rsa.token(&claims(OAUTH_ISSUER, "u"));
    assert!(verify(&rs, &fx.oauth, &keys, AUDIENCE, NOW).is_ok());
    let ps = Signer::rsa("rsa-1", Algorithm::PS256).token(&claims(OAUTH_ISSUER, "u"));
    let got = verify(&ps, &fx.oauth, &keys, AUDIENCE, NOW);
    assert_eq!(got, Err(Rejection::KeyAlgMismatch));
}
