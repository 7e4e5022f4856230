//! Fuzzing the identify stage: bearer tokens (header, claims, delegation,
//! SPIFFE IDs) and JWKS documents.

use std::sync::OnceLock;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::identify::Identity;
use crate::identify::keys::{KeySet, Mode};
use crate::identify::spiffe::SpiffeId;
use crate::identify::testkit::Signer;
use crate::identify::verify::{self, Rules};

const NOW: u64 = 1_700_000_000;
const AUDIENCE: &str = "https://gw.example/mcp";
const ISSUER: &str = "https://issuer.example";
const HS_SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-32b";

/// Keys and rules every input is verified with.
struct Fixture {
    es256: Signer,
    spiffe_keys: KeySet,
    spiffe: Rules,
    oauth_keys: KeySet,
    oauth: Rules,
    hmac: Rules,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let es256 = Signer::ec("ec-1", Algorithm::ES256);
        let rsa = Signer::rsa("rsa-1", Algorithm::RS256);
        let spiffe_mode = Mode::Spiffe {
            trust_domains: vec!["example.org".into()],
        };
        let jwks = crate::identify::testkit::jwks(&[&es256, &rsa], Some("jwt-svid"));
        let (spiffe_keys, _) = KeySet::from_jwks(&jwks, &spiffe_mode).expect("JWKS");
        let jwks = crate::identify::testkit::jwks(&[&es256, &rsa], None);
        let (oauth_keys, _) = KeySet::from_jwks(&jwks, &Mode::OAuth).expect("JWKS");
        let mut spiffe = Rules::new(ISSUER, spiffe_mode);
        spiffe.max_lifetime = Some(Duration::from_secs(3600));
        spiffe.task_claim = Some("task_id".into());
        let mut oauth = Rules::new(ISSUER, Mode::OAuth);
        oauth.required_claims = vec!["client_id".into()];
        oauth.selected_claims = vec!["client_id".into(), "tenant".into()];
        let mut hmac = Rules::new(ISSUER, Mode::OAuth);
        hmac.algorithms = vec![Algorithm::HS256];
        hmac.hs_secret = Some(HS_SECRET.to_vec());
        hmac.task_claim = Some("task_id".into());
        hmac.selected_claims = vec!["tenant".into()];
        Fixture {
            es256,
            spiffe_keys,
            spiffe,
            oauth_keys,
            oauth,
            hmac,
        }
    })
}

/// A token. The first byte picks how the rest is used:
///
/// - even: the rest is the token as sent. No input carries a signature
///   the fixture's keys (made fresh in each process) accept, so nothing
///   verifies — in SPIFFE or OAuth mode, with asymmetric keys;
/// - odd: the rest is a JOSE header and a payload (two JSON values, or the
///   bytes split at the first NUL), signed for real — ES256 for SPIFFE
///   rules (bit 1 set) or HS256 with the issuer's shared secret — so the
///   header and claim checks run. What verifies obeys its rules.
pub fn jwt(data: &[u8]) {
    let [mode, rest @ ..] = data else {
        return;
    };
    let f = fixture();
    if mode % 2 == 0 {
        let token = String::from_utf8_lossy(rest);
        let _ = verify::peek_issuer(&token);
        for (rules, keys) in [(&f.spiffe, &f.spiffe_keys), (&f.oauth, &f.oauth_keys)] {
            let verified = verify::verify(&token, rules, keys, AUDIENCE, NOW);
            assert!(verified.is_err(), "an unsigned token verified");
            if let Err(rejection) = verified {
                let text = rejection.description();
                assert!(!text.contains('"') && !text.contains('\\'));
                let _ = (rejection.code(), rejection.wants_key_refresh());
            }
        }
        return;
    }
    let (header, payload) = split_two(rest);
    let spiffe = mode & 2 != 0;
    let (token, rules, keys) = if spiffe {
        (
            f.es256.token_raw(header, payload),
            &f.spiffe,
            &f.spiffe_keys,
        )
    } else {
        let signer = Signer::hmac(HS_SECRET, Algorithm::HS256);
        (signer.token_raw(header, payload), &f.hmac, &KeySet::empty())
    };
    match verify::verify(&token, rules, keys, AUDIENCE, NOW) {
        Ok(Identity::Workload(w)) => {
            assert!(w.audience.iter().any(|a| a == AUDIENCE));
            assert_eq!(w.issuer, ISSUER);
            assert!(NOW < w.expires_at.saturating_add(rules.leeway.as_secs()));
            assert!(w.claims.keys().all(|k| rules.selected_claims.contains(k)));
            if spiffe {
                let id = w.spiffe.as_ref().expect("a SPIFFE identity");
                assert_eq!(id.trust_domain, "example.org");
                assert!(!id.path.is_empty(), "a workload, not a trust domain");
                assert_eq!(SpiffeId::workload(&w.subject).as_ref(), Ok(id));
            } else {
                assert!(!w.subject.is_empty());
            }
            let wire = Identity::Workload(w.clone());
            let _: serde_json::Value =
                serde_json::from_str(wire.wire_json().get()).expect("identity JSON");
        }
        Ok(Identity::Anonymous) => panic!("a verified token is a workload"),
        Err(rejection) => {
            assert!(!rejection.description().contains('"'));
        }
    }
}

/// Two JSON values in a row, or the bytes split at the first NUL.
fn split_two(data: &[u8]) -> (&[u8], &[u8]) {
    let mut values = serde_json::Deserializer::from_slice(data).into_iter::<serde_json::Value>();
    if values.next().is_some_and(|v| v.is_ok()) {
        let at = values.byte_offset();
        return (&data[..at], &data[at..]);
    }
    match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[]),
    }
}

/// A JWKS document, read in both modes: every key kept is findable by its
/// `kid`, and SPIFFE mode keeps no more keys than OAuth mode.
pub fn jwks(data: &[u8]) {
    let spiffe_mode = Mode::Spiffe {
        trust_domains: vec!["example.org".into()],
    };
    let spiffe = KeySet::from_jwks(data, &spiffe_mode);
    let oauth = KeySet::from_jwks(data, &Mode::OAuth);
    assert_eq!(
        spiffe.is_ok(),
        oauth.is_ok(),
        "the document is one or the other"
    );
    if let (Ok((spiffe, _)), Ok((oauth, skipped))) = (spiffe, oauth) {
        // A key SPIFFE mode keeps, OAuth mode keeps under the same kid.
        assert!(spiffe.len() <= oauth.len());
        assert!(skipped.iter().all(|why| !why.is_empty()));
        let doc: serde_json::Value = serde_json::from_slice(data).expect("parsed once already");
        let keys = doc["keys"].as_array().into_iter().flatten();
        let kid =
            |key: &serde_json::Value| key.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        let svid_kids: Vec<String> = keys
            .clone()
            .filter(|key| key.get("use").and_then(|u| u.as_str()) == Some("jwt-svid"))
            .filter_map(kid)
            .collect();
        for kid in keys.filter_map(kid) {
            if spiffe.contains_kid(&kid) {
                assert!(
                    svid_kids.contains(&kid),
                    "only jwt-svid keys count for SPIFFE"
                );
                assert!(oauth.contains_kid(&kid));
            }
        }
    }
}
