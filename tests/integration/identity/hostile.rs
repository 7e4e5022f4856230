//! Hostile and broken credentials: each is refused before the upstream sees
//! anything, with a challenge that names the failed check and never echoes
//! the token, and each is counted by reason.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;
use crate::common::tokens::{b64, claims, now, signature_of, with};

/// How a case presents its credential.
enum Credential {
    Bearer(String),
    /// Raw `Authorization` header values, in order.
    Headers(Vec<String>),
    /// `?access_token=` only.
    Query(String),
    Nothing,
}

struct Case {
    name: &'static str,
    credential: Credential,
    want: Refused<'static>,
    /// More strings the answer must not contain (besides the token).
    secrets: Vec<String>,
}

fn case(name: &'static str, token: String, want: Refused<'static>) -> Case {
    Case {
        name,
        credential: Credential::Bearer(token),
        want,
        secrets: Vec::new(),
    }
}

macro_rules! bad_id {
    ($why:literal) => {
        Refused::token(
            "bad_spiffe_id",
            concat!("token sub is not a valid SPIFFE ID: ", $why),
        )
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_tokens_are_refused_before_the_upstream() {
    let iss = Issuers::new();
    let up = echo_upstream().await;
    let gw = TestGateway::start(&format!(
        "{}{}{}",
        server(),
        iss.toml,
        route(
            "hostile",
            "/mcp",
            &up.url("/mcp"),
            Some("issuers = [\"spire\", \"idp\"]")
        ),
    ))
    .await;
    // The default audience: public_url + path.
    let aud = format!("{PUBLIC}/mcp");
    let sc = || claims(SPIRE, AGENT, &aud);
    let oc = || claims(IDP, USER, &aud);
    let t = now();

    let good = iss.spire.sign(&sc());
    let (head, rest) = good.split_once('.').unwrap();
    let sig = signature_of(&good);
    let tampered_payload = format!(
        "{head}.{}.{sig}",
        b64(with(sc(), json!({"sub": "spiffe://example.org/admin"})).to_string())
    );
    let mut raw_sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    raw_sig[10] ^= 0x01;
    let tampered_sig = format!(
        "{head}.{}.{}",
        rest.split_once('.').unwrap().0,
        b64(raw_sig)
    );
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": "spire-ec"}).to_string()),
        b64(sc().to_string())
    );
    let spire_pem = iss.spire.public_pem();
    let idp_pem = iss.idp.public_pem();
    let spire_header = |extra: Value| with(iss.spire.header(), extra);
    let spiffe_sub = |sub: &str| iss.spire.sign(&with(sc(), json!({"sub": sub})));

    let bad_sig = || Refused::token("bad_signature", "token signature does not verify");
    let unknown_kid = || Refused::token("unknown_kid", "token kid names no known key");
    let alg = || {
        Refused::token(
            "alg_not_allowed",
            "token alg is not allowed for this issuer",
        )
    };
    let header_field = || {
        Refused::token(
            "header_field_not_allowed",
            "token header has a field or typ that is not allowed",
        )
    };
    let malformed = || {
        Refused::token(
            "malformed",
            "token is not three base64url segments with a JSON header and payload",
        )
    };
    let not_bearer = || {
        Refused::request(
            "not_bearer",
            "the Authorization header must be a single Bearer token",
        )
    };

    let mut cases = vec![
        case("alg none", none, alg()),
        case(
            "HS256 signed with the SPIFFE issuer's public key PEM",
            Key::hs256("spire-ec", spire_pem.as_bytes()).sign(&sc()),
            alg(),
        ),
        case(
            "HS256 signed with the OAuth issuer's public key PEM",
            Key::hs256("idp-ec", idp_pem.as_bytes()).sign(&oc()),
            alg(),
        ),
        case(
            "unknown kid",
            Key::es256("nobody").sign(&sc()),
            unknown_kid(),
        ),
        Case {
            secrets: vec!["etc/passwd".into()],
            ..case(
                "kid path traversal",
                iss.spire
                    .sign_with(&spire_header(json!({"kid": "../../etc/passwd"})), &sc()),
                unknown_kid(),
            )
        },
        Case {
            secrets: vec!["OR 1=1".into()],
            ..case(
                "kid SQL injection",
                iss.spire
                    .sign_with(&spire_header(json!({"kid": "' OR 1=1 --"})), &sc()),
                unknown_kid(),
            )
        },
        case(
            "expired",
            iss.spire
                .sign(&with(sc(), json!({"iat": t - 900, "exp": t - 600}))),
            Refused::token("expired", "token has expired"),
        ),
        case(
            "nbf in the future",
            iss.spire.sign(&with(sc(), json!({"nbf": t + 600}))),
            Refused::token("not_yet_valid", "token is not valid yet (nbf)"),
        ),
        case(
            "wrong iss",
            iss.spire
                .sign(&with(sc(), json!({"iss": "https://evil.test"}))),
            Refused::token(
                "untrusted_issuer",
                "token issuer is not trusted on this route",
            ),
        ),
        case(
            "wrong aud",
            iss.spire
                .sign(&with(sc(), json!({"aud": "https://gw.test/other"}))),
            Refused::token("wrong_audience", "token aud does not include this audience"),
        ),
        case(
            "missing aud",
            iss.spire.sign(&with(sc(), json!({"aud": null}))),
            Refused::token("missing_audience", "token has no aud claim"),
        ),
        case(
            "missing exp",
            iss.spire.sign(&with(sc(), json!({"exp": null}))),
            Refused::token("missing_exp", "token has no exp claim"),
        ),
        case(
            "lifetime over max_lifetime",
            iss.spire
                .sign(&with(sc(), json!({"iat": t, "exp": t + 7200}))),
            Refused::token("lifetime_too_long", "token lifetime is longer than allowed"),
        ),
        case(
            "no kid",
            iss.spire
                .sign_with(&json!({"alg": "ES256", "typ": "JWT"}), &sc()),
            Refused::token("missing_kid", "token header has no kid"),
        ),
        case(
            "signed with the other issuer's key",
            iss.idp.sign(&sc()),
            unknown_kid(),
        ),
        case(
            "alg ES512 (not supported)",
            iss.spire
                .sign_with(&spire_header(json!({"alg": "ES512"})), &sc()),
            alg(),
        ),
        case(
            "repeated sub claim",
            iss.spire.sign_raw(
                iss.spire.header().to_string().as_bytes(),
                format!(
                    r#"{{"iss":"{SPIRE}","sub":"{AGENT}","aud":"{aud}","exp":{},"sub":"spiffe://example.org/admin"}}"#,
                    t + 300
                )
                .as_bytes(),
            ),
            malformed(),
        ),
        case(
            "repeated alg header",
            iss.spire.sign_raw(
                br#"{"alg":"ES256","kid":"spire-ec","alg":"none"}"#,
                sc().to_string().as_bytes(),
            ),
            malformed(),
        ),
        case(
            "iss not a string",
            iss.spire.sign(&with(sc(), json!({"iss": 42}))),
            malformed(),
        ),
        case(
            "exp not a number",
            iss.spire
                .sign(&with(sc(), json!({"exp": "tomorrow"}))),
            Refused::token("invalid_claim", "token claim exp has the wrong type"),
        ),
        case(
            "aud an object",
            iss.spire
                .sign(&with(sc(), json!({"aud": {"aud": aud}}))),
            Refused::token("invalid_claim", "token claim aud has the wrong type"),
        ),
        case("tampered payload", tampered_payload, bad_sig()),
        case("tampered signature", tampered_sig, bad_sig()),
        case(
            "SPIFFE ID with a port",
            spiffe_sub("spiffe://example.org:8443/agent"),
            bad_id!("trust domain contains a port"),
        ),
        case(
            "SPIFFE ID with a query",
            spiffe_sub("spiffe://example.org/agent?admin=1"),
            bad_id!("SPIFFE ID contains a query"),
        ),
        case(
            "SPIFFE ID with an uppercase trust domain",
            spiffe_sub("spiffe://Example.org/agent"),
            bad_id!("trust domain contains uppercase letters"),
        ),
        case(
            "SPIFFE ID naming only a trust domain",
            spiffe_sub("spiffe://example.org"),
            bad_id!("SPIFFE ID names a trust domain, not a workload (it has no path)"),
        ),
        case(
            "SPIFFE ID with an empty trust domain",
            spiffe_sub("spiffe:///agent"),
            bad_id!("trust domain is empty"),
        ),
        case(
            "SPIFFE ID in another trust domain",
            spiffe_sub("spiffe://evil.org/agent"),
            Refused::token(
                "trust_domain_not_allowed",
                "token SPIFFE ID is outside the allowed trust domains",
            ),
        ),
        case(
            "key with use sig in SPIFFE mode",
            iss.spire_sig.sign(&sc()),
            unknown_kid(),
        ),
        case(
            "RSA key named by an ES256 token",
            iss.spire
                .sign_with(&spire_header(json!({"kid": "spire-rsa"})), &sc()),
            Refused::token(
                "key_alg_mismatch",
                "the key for this token does not fit its alg",
            ),
        ),
        case(
            "jku header field in SPIFFE mode",
            iss.spire.sign_with(
                &spire_header(json!({"jku": "https://evil.test/jwks.json"})),
                &sc(),
            ),
            header_field(),
        ),
        case(
            "typ at+jwt in SPIFFE mode",
            iss.spire
                .sign_with(&spire_header(json!({"typ": "at+jwt"})), &sc()),
            header_field(),
        ),
        case(
            "crit header field in OAuth mode",
            iss.idp
                .sign_with(&with(iss.idp.header(), json!({"crit": ["exp"]})), &oc()),
            header_field(),
        ),
        case(
            "OAuth token without sub",
            iss.idp.sign(&with(oc(), json!({"sub": null}))),
            Refused::token("missing_subject", "token has no sub claim"),
        ),
        case("not a JWT", "not-a-jwt".into(), malformed()),
        case(
            "32 KiB token",
            format!("eyJ{}", "A".repeat(32 * 1024)),
            Refused::token("token_too_large", "token is larger than 8192 bytes"),
        ),
        Case {
            name: "token only in the query string",
            credential: Credential::Query(iss.spire.sign(&sc())),
            want: Refused::request(
                "token_in_query",
                "tokens in the query string are not accepted; send Authorization: Bearer",
            ),
            secrets: Vec::new(),
        },
        Case {
            name: "no token at all",
            credential: Credential::Nothing,
            want: Refused {
                error: None,
                ..Refused::token("missing_token", "no bearer token")
            },
            secrets: Vec::new(),
        },
        Case {
            name: "Basic credentials",
            credential: Credential::Headers(vec!["Basic dXNlcjpwYXNzd29yZA==".into()]),
            want: not_bearer(),
            secrets: vec!["dXNlcjpwYXNzd29yZA".into()],
        },
        Case {
            name: "two Authorization headers",
            credential: Credential::Headers(vec![bearer(&good), bearer(&good)]),
            want: not_bearer(),
            secrets: vec![good.clone()],
        },
        Case {
            name: "two tokens in one header",
            credential: Credential::Headers(vec![format!("Bearer {good} {good}")]),
            want: not_bearer(),
            secrets: vec![good.clone()],
        },
    ];

    let md = metadata_url("/mcp");
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    let mut failures = Vec::new();
    for case in cases.drain(..) {
        let body = serde_json::to_vec(&tools_list(7)).unwrap();
        let mut headers: Vec<(&str, String)> = common::MCP_HEADERS
            .iter()
            .map(|(k, v)| (*k, (*v).to_owned()))
            .collect();
        let mut url = gw.url("/mcp");
        let mut secrets = case.secrets.clone();
        match &case.credential {
            Credential::Bearer(token) => {
                headers.push(("authorization", bearer(token)));
                secrets.push(token.clone());
                secrets.push(signature_of(token).to_owned());
            }
            Credential::Headers(values) => {
                headers.extend(values.iter().map(|v| ("authorization", v.clone())));
            }
            Credential::Query(token) => {
                url.push_str(&format!("?access_token={token}"));
                secrets.push(token.clone());
                secrets.push(signature_of(token).to_owned());
            }
            Credential::Nothing => {}
        }
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = common::send(Method::POST, &url, &headers, body).await;
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            assert_refused(&r, &md, case.want, &secrets);
        }));
        if let Err(panic) = outcome {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            failures.push(format!("{}: {why}", case.name));
        }
        *counts.entry(case.want.reason).or_default() += 1;
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(up.seen().is_empty(), "a refused call reached the upstream");

    let text = metrics(&gw).await;
    for (reason, n) in &counts {
        let line = format!("{} {n}", auth_failures(reason, "hostile"));
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in /metrics:\n{}",
            text.lines()
                .filter(|l| l.starts_with("toolgate_auth"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    // The control: the same route takes good tokens from both issuers.
    let r = call(&gw.url("/mcp"), &good).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(&gw.url("/mcp"), &iss.idp.sign(&oc())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = call(&gw.url("/mcp"), &iss.spire_rsa.sign(&sc())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(up.seen().len(), 3);
}

/// RFC 6750 §2: a client MUST NOT send its token by more than one method.
/// A token in the query string next to a good `Authorization` header must
/// not travel on to the upstream (refused with `invalid_request`, or at
/// least stripped): the caller's token is never forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_in_the_query_next_to_a_header_is_not_forwarded() {
    let iss = Issuers::new();
    let up = echo_upstream().await;
    let gw = TestGateway::start(&format!(
        "{}{}{}",
        server(),
        iss.toml,
        route("q", "/mcp", &up.url("/mcp"), Some("issuers = [\"spire\"]")),
    ))
    .await;
    let token = iss.svid(AGENT, &format!("{PUBLIC}/mcp"));
    let url = gw.url(&format!("/mcp?access_token={token}"));
    let r = call(&url, &token).await;
    let leaked = up
        .seen()
        .iter()
        .any(|s| s.uri.to_string().contains(signature_of(&token)));
    assert!(
        !leaked,
        "the caller's token reached the upstream in the query string (status {})",
        r.status
    );
}
