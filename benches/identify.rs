//! The identify stage's cost per call: verifying a token per algorithm (a
//! cache miss pays this once per token), and a verified-token cache hit (what
//! every later call with the same token pays).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use jsonwebtoken::Algorithm;
use serde_json::json;

use toolgate::identify::cache::TokenCache;
use toolgate::identify::keys::{KeySet, Mode};
use toolgate::identify::testkit::{Signer, jwks};
use toolgate::identify::verify::{Rules, verify};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "https://tools.example.com/mcp";
const NOW: u64 = 1_700_000_000;

fn signers() -> Vec<(&'static str, Signer)> {
    vec![
        ("RS256", Signer::rsa("rs256", Algorithm::RS256)),
        ("PS256", Signer::rsa("ps256", Algorithm::PS256)),
        ("ES256", Signer::ec("es256", Algorithm::ES256)),
        ("ES384", Signer::ec("es384", Algorithm::ES384)),
        ("EdDSA", Signer::ed("eddsa")),
    ]
}

fn claims() -> serde_json::Value {
    json!({"iss": ISSUER, "sub": "agent-7", "aud": AUDIENCE, "iat": NOW - 10, "exp": NOW + 600,
           "scope": "tools:call", "act": {"sub": "spiffe://example.org/agent"}})
}

fn verify_per_algorithm(c: &mut Criterion) {
    let signers = signers();
    let refs: Vec<&Signer> = signers.iter().map(|(_, s)| s).collect();
    let (keys, _) = KeySet::from_jwks(&jwks(&refs, Some("sig")), &Mode::OAuth).expect("jwks");
    let rules = Rules::new(ISSUER, Mode::OAuth);
    let mut g = c.benchmark_group("verify");
    for (name, signer) in &signers {
        let token = signer.token(&claims());
        verify(&token, &rules, &keys, AUDIENCE, NOW).expect("valid token");
        g.bench_function(*name, |b| {
            b.iter(|| verify(black_box(&token), &rules, &keys, AUDIENCE, NOW).expect("valid"))
        });
    }
    g.finish();
}

fn cache(c: &mut Criterion) {
    let signer = Signer::ec("es256", Algorithm::ES256);
    let (keys, _) = KeySet::from_jwks(&jwks(&[&signer], Some("sig")), &Mode::OAuth).expect("jwks");
    let rules = Rules::new(ISSUER, Mode::OAuth);
    let token = signer.token(&claims());
    let identity = verify(&token, &rules, &keys, AUDIENCE, NOW).expect("valid");
    let cache = TokenCache::new(100_000);
    cache.insert(&token, 1, identity.clone(), NOW + 600);
    let mut g = c.benchmark_group("token_cache");
    g.bench_function("hit", |b| {
        b.iter(|| black_box(cache.get(black_box(&token), 1, NOW)).expect("cached"))
    });
    // A miss: look up, verify, insert — the first call with a new token.
    let fresh: Vec<String> = (0..1024)
        .map(|i| {
            signer.token(
                &json!({"iss": ISSUER, "sub": format!("agent-{i}"), "aud": AUDIENCE,
                                       "iat": NOW - 10, "exp": NOW + 600}),
            )
        })
        .collect();
    let mut i = 0usize;
    g.bench_function("miss_verify_insert_es256", |b| {
        b.iter(|| {
            let token = &fresh[i % fresh.len()];
            i += 1;
            if cache.get(token, 2, NOW).is_none() {
                let identity = verify(token, &rules, &keys, AUDIENCE, NOW).expect("valid");
                cache.insert(token, 3, identity, NOW + 600);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, verify_per_algorithm, cache);
criterion_main!(benches);
