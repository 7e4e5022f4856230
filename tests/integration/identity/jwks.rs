//! JWKS over HTTPS: keys rotate without a restart (an unknown `kid` refetches
//! once, rate-limited), a failing JWKS server leaves the last good keys in
//! place, refresh follows `Cache-Control: max-age` and `spiffe_refresh_hint`,
//! and an issuer whose JWKS was never reachable refuses with a reason.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::*;
use crate::common::tokens::claims;
use crate::common::upstream::closed_port;

/// A test CA, and a server certificate it issued for the IP 127.0.0.1.
pub(crate) struct Pki {
    dir: TempDir,
    server: Arc<rustls::ServerConfig>,
}

impl Pki {
    pub(crate) fn new() -> Self {
        toolgate::install_crypto_provider();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "toolgate JWKS test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca_cert = ca.self_signed(&ca_key).expect("CA cert");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write CA");
        let issuer = Issuer::new(ca, ca_key);

        let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        // rcgen turns a name that parses as an IP address into an IP SAN,
        // which is what an https://127.0.0.1 URL is checked against.
        assert_eq!(
            leaf.subject_alt_names,
            vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))]
        );
        leaf.distinguished_name.push(DnType::CommonName, "jwks");
        leaf.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("leaf key");
        let cert = leaf.signed_by(&key, &issuer).expect("leaf cert");
        let (cert_file, key_file) = (dir.path().join("jwks.crt"), dir.path().join("jwks.key"));
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        let server = toolgate::listener::tls::server_config(&toolgate::config::ServerTls {
            cert_file,
            key_file,
        })
        .expect("JWKS server TLS config");
        Self { dir, server }
    }

    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// What the JWKS server answers: a document (with an optional
/// `Cache-Control`) or, with `None`, a 500.
#[derive(Clone, Default)]
pub(crate) struct Served {
    pub(crate) doc: Option<Value>,
    pub(crate) cache_control: Option<&'static str>,
    /// Served as-is with a 200 instead of `doc` (garbage, to see it refused).
    pub(crate) raw: Option<&'static str>,
}

pub(crate) type Shared = Arc<Mutex<Served>>;

/// An HTTPS JWKS server answering each path from its entry in `docs`.
pub(crate) async fn jwks_server(pki: &Pki, docs: Vec<(&'static str, Shared)>) -> FakeUpstream {
    FakeUpstream::start_tls(Arc::clone(&pki.server), move |seen| {
        jwks_answer(served(&docs, &seen))
    })
    .await
}

/// [`jwks_server`] on a listener the test already has (one that has held
/// the port of a stopped one, to bring it back).
pub(crate) fn jwks_server_on(
    pki: &Pki,
    listener: tokio::net::TcpListener,
    docs: Vec<(&'static str, Shared)>,
) -> FakeUpstream {
    FakeUpstream::start_tls_on(listener, Arc::clone(&pki.server), move |seen| {
        jwks_answer(served(&docs, &seen))
    })
}

/// What `docs` says to serve for the path of `seen`.
fn served(docs: &[(&'static str, Shared)], seen: &upstream::Seen) -> Served {
    docs.iter()
        .find(|(path, _)| *path == seen.uri.path())
        .map(|(_, s)| s.lock().unwrap().clone())
        .unwrap_or_default()
}

async fn jwks_answer(served: Served) -> http::Response<toolgate::Body> {
    if let Some(raw) = served.raw {
        return upstream::with_type(200, "application/json", raw);
    }
    match served.doc {
        None => upstream::with_type(500, "text/plain", "JWKS unavailable\n"),
        Some(doc) => {
            let mut resp = upstream::json(200, &doc);
            if let Some(cc) = served.cache_control {
                resp.headers_mut()
                    .insert("cache-control", cc.parse().unwrap());
            }
            resp
        }
    }
}

fn fetches(server: &FakeUpstream, path: &str) -> usize {
    server
        .seen()
        .iter()
        .filter(|s| s.uri.path() == path)
        .count()
}

/// A SPIFFE issuer fetching its JWT-SVID bundle from `url`, refetching
/// at most every 200 ms.
pub(crate) fn url_issuer(name: &str, url: &str, ca: Option<&Path>, refresh: &str) -> String {
    url_issuer_limited(name, url, ca, refresh, Duration::from_millis(200))
}

/// [`url_issuer`] with `min_refresh_interval = min_refresh`.
fn url_issuer_limited(
    name: &str,
    url: &str,
    ca: Option<&Path>,
    refresh: &str,
    min_refresh: Duration,
) -> String {
    let mut out = format!(
        "\n[[issuers]]\nname = \"{name}\"\nissuer = \"{SPIRE}\"\nmode = \"spiffe\"\n\
         trust_domains = [\"example.org\"]\njwks_url = \"{url}\"\n\
         refresh_interval = \"{refresh}\"\nmin_refresh_interval = \"{}ms\"\n",
        min_refresh.as_millis()
    );
    if let Some(ca) = ca {
        out.push_str(&format!("jwks_ca_file = {}\n", toml_path(ca)));
    }
    out
}

pub(crate) fn svid_jwks(keys: &[&Key]) -> Value {
    let keys: Vec<(&Key, Option<&str>)> = keys.iter().map(|k| (*k, Some("jwt-svid"))).collect();
    tokens::jwks(&keys)
}

pub(crate) fn jwks_fetches(issuer: &str, result: &str) -> String {
    format!("toolgate_jwks_fetches_total{{issuer=\"{issuer}\",result=\"{result}\"}}")
}

/// The rotation test's `min_refresh_interval`: longer than a few calls
/// take on a loaded machine, so that calls made one after another fall in
/// one interval and may refetch at most once.
const MIN_REFRESH: Duration = Duration::from_secs(2);
/// Longer than [`MIN_REFRESH`]: the next unknown kid may refetch.
const PAST_MIN_REFRESH: Duration = Duration::from_millis(2250);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_over_https_and_survive_a_failing_jwks_server() {
    let pki = Pki::new();
    let (a, b, c) = (
        Key::es256("key-a"),
        Key::es256("key-b"),
        Key::es256("key-c"),
    );
    let served: Shared = Arc::new(Mutex::new(Served {
        doc: Some(svid_jwks(&[&a])),
        cache_control: None,
        raw: None,
    }));
    let origin = jwks_server(&pki, vec![("/jwks", Arc::clone(&served))]).await;
    let up = echo_upstream().await;
    let url = format!("https://127.0.0.1:{}/jwks", origin.addr.port());
    let gw = TestGateway::start(&format!(
        "{}{}{}",
        server(),
        url_issuer_limited("rot", &url, Some(&pki.ca_file()), "60s", MIN_REFRESH),
        route("rot", "/mcp", &up.url("/mcp"), Some("issuers = [\"rot\"]")),
    ))
    .await;
    let aud = format!("{PUBLIC}/mcp");
    let svid = |key: &Key| key.sign(&claims(SPIRE, AGENT, &aud));
    let unknown_kid = Refused::token("unknown_kid", "token kid names no known key");
    let md = metadata_url("/mcp");

    // Start-up fetched key A over TLS, trusting only the test CA.
    assert_eq!(fetches(&origin, "/jwks"), 1);
    assert_eq!(common::metric(&gw, &jwks_fetches("rot", "ok")).await, 1.0);
    assert_eq!(
        common::metric(&gw, "toolgate_issuer_keys{issuer=\"rot\"}").await,
        1.0
    );
    let token_a = svid(&a);
    let r = call(&gw.url("/mcp"), &token_a).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // Rotate to key B: its first token refetches once and is accepted.
    served.lock().unwrap().doc = Some(svid_jwks(&[&b]));
    tokio::time::sleep(PAST_MIN_REFRESH).await;
    let r = call(&gw.url("/mcp"), &svid(&b)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(fetches(&origin, "/jwks"), 2, "one refetch for the new kid");
    // Key A is gone: even its already-verified (cached) token is refused.
    let r = call(&gw.url("/mcp"), &token_a).await;
    assert_refused(&r, &md, unknown_kid, &[&token_a]);
    // Unknown kids cannot make the gateway hammer the JWKS server.
    let before = fetches(&origin, "/jwks");
    for _ in 0..5 {
        let r = call(&gw.url("/mcp"), &svid(&c)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert!(
        fetches(&origin, "/jwks") <= before + 1,
        "refetches are rate-limited by min_refresh_interval"
    );

    // The JWKS server serves a bundle with no usable key (only `use: sig`
    // in SPIFFE mode): an error, and B's keys are kept.
    served.lock().unwrap().doc = Some(tokens::jwks(&[(&c, Some("sig"))]));
    tokio::time::sleep(PAST_MIN_REFRESH).await;
    let errors = common::metric(&gw, &jwks_fetches("rot", "error")).await;
    let r = call(&gw.url("/mcp"), &svid(&c)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert_eq!(
        common::metric(&gw, &jwks_fetches("rot", "error")).await,
        errors + 1.0
    );
    let r = call(&gw.url("/mcp"), &svid(&b)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "last good keys kept: {}",
        r.text()
    );

    // The JWKS server fails: B's keys are kept.
    served.lock().unwrap().doc = None;
    tokio::time::sleep(PAST_MIN_REFRESH).await;
    let errors = common::metric(&gw, &jwks_fetches("rot", "error")).await;
    let before = fetches(&origin, "/jwks");
    let token_c = svid(&c);
    let r = call(&gw.url("/mcp"), &token_c).await;
    assert_refused(&r, &md, unknown_kid, &[&token_c]);
    assert_eq!(
        fetches(&origin, "/jwks"),
        before + 1,
        "the unknown kid refetched"
    );
    assert_eq!(
        common::metric(&gw, &jwks_fetches("rot", "error")).await,
        errors + 1.0
    );
    let r = call(&gw.url("/mcp"), &svid(&b)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "last good keys kept: {}",
        r.text()
    );
    assert_eq!(
        common::metric(&gw, "toolgate_issuer_keys{issuer=\"rot\"}").await,
        1.0
    );

    // The JWKS server is gone altogether: still B's keys.
    drop(origin);
    tokio::time::sleep(PAST_MIN_REFRESH).await;
    let errors = common::metric(&gw, &jwks_fetches("rot", "error")).await;
    let r = call(&gw.url("/mcp"), &svid(&c)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    assert!(common::metric(&gw, &jwks_fetches("rot", "error")).await > errors);
    let r = call(&gw.url("/mcp"), &svid(&b)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "last good keys kept: {}",
        r.text()
    );
    assert_eq!(up.seen().len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_jwks_leaves_the_issuer_without_keys_but_the_gateway_up() {
    let dead = closed_port();
    let up = echo_upstream().await;
    let gw = TestGateway::start(&format!(
        "{}{}{}",
        server(),
        url_issuer("dead", &format!("https://{}/jwks", dead.addr), None, "1s"),
        route(
            "dead",
            "/mcp",
            &up.url("/mcp"),
            Some("issuers = [\"dead\"]")
        ),
    ))
    .await;
    let key = Key::es256("k1");
    let token = key.sign(&claims(SPIRE, AGENT, &format!("{PUBLIC}/mcp")));
    let r = call(&gw.url("/mcp"), &token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    let description = r.json()["error"]["message"].as_str().unwrap().to_owned();
    let prefix = "issuer dead has no usable keys (request failed: ";
    assert!(
        description.starts_with(prefix) && description.ends_with(')'),
        "{description}"
    );
    assert!(
        description.to_lowercase().contains("connect"),
        "says why: {description}"
    );
    assert_refused(
        &r,
        &metadata_url("/mcp"),
        Refused::token("no_keys", &description),
        &[&token],
    );
    assert!(up.seen().is_empty());

    let text = metrics(&gw).await;
    assert!(
        text.lines()
            .any(|l| l == "toolgate_issuer_keys{issuer=\"dead\"} 0"),
        "{text}"
    );
    assert!(common::metric(&gw, &jwks_fetches("dead", "error")).await >= 1.0);
    assert_eq!(
        common::metric(&gw, &auth_failures("no_keys", "dead")).await,
        1.0
    );
}

/// `Cache-Control: max-age` and `spiffe_refresh_hint` shorten the refresh
/// interval (here from 60 s to 1 s); without them the JWKS is not refetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_follows_max_age_and_the_spiffe_refresh_hint() {
    let pki = Pki::new();
    let key = Key::es256("k1");
    let doc = svid_jwks(&[&key]);
    let mut hinted = doc.clone();
    hinted["spiffe_refresh_hint"] = json!(1);
    let shared = |doc: Value, cache_control| {
        Arc::new(Mutex::new(Served {
            doc: Some(doc),
            cache_control,
            raw: None,
        }))
    };
    let origin = jwks_server(
        &pki,
        vec![
            (
                "/max-age",
                shared(doc.clone(), Some("public, max-age=1, must-revalidate")),
            ),
            ("/hint", shared(hinted, None)),
            ("/plain", shared(doc, None)),
        ],
    )
    .await;
    let up = echo_upstream().await;
    let base = format!("https://127.0.0.1:{}", origin.addr.port());
    let ca = pki.ca_file();
    let gw = TestGateway::start(&format!(
        "{}{}{}{}{}",
        server(),
        url_issuer("max-age", &format!("{base}/max-age"), Some(&ca), "60s"),
        url_issuer("hint", &format!("{base}/hint"), Some(&ca), "60s"),
        url_issuer("plain", &format!("{base}/plain"), Some(&ca), "60s"),
        route(
            "r",
            "/mcp",
            &up.url("/mcp"),
            Some("issuers = [\"max-age\"]")
        ),
    ))
    .await;
    for path in ["/max-age", "/hint", "/plain"] {
        assert_eq!(fetches(&origin, path), 1, "{path}: fetched at start-up");
    }
    // Refetched after about a second (given up to 5 s on a loaded machine);
    // by then the plain one, 60 s from its next fetch, is not.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while (fetches(&origin, "/max-age") < 2 || fetches(&origin, "/hint") < 2)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        fetches(&origin, "/max-age") >= 2,
        "refetched after max-age=1"
    );
    assert!(
        fetches(&origin, "/hint") >= 2,
        "refetched after the 1 s hint"
    );
    assert_eq!(fetches(&origin, "/plain"), 1, "not before refresh_interval");
    let token = key.sign(&claims(SPIRE, AGENT, &format!("{PUBLIC}/mcp")));
    let r = call(&gw.url("/mcp"), &token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}
