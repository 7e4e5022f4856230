//! The admin listener over TLS with client certificates: a certificate
//! whose SAN is mapped to a role authenticates as `cert:<san>`; an
//! unmapped, absent or foreign certificate does not.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::admin::{AdminGateway, VIEWER_TOKEN, token_table};

const OPS: &str = "spiffe://example.org/ops";

/// A CA that signs the admin listener's certificate and clients' ones.
struct Pki {
    dir: TempDir,
    ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).unwrap();
        Self {
            dir,
            ca: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The listener's certificate for 127.0.0.1: (cert file, key file).
    fn server(&self) -> (PathBuf, PathBuf) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (
            self.dir.path().join("admin.crt"),
            self.dir.path().join("admin.key"),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A client certificate carrying these URI SANs, signed by this CA.
    fn client_cert(&self, uris: &[&str]) -> (rcgen::Certificate, KeyPair) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "admin client");
        params.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI(Ia5String::try_from(*u).unwrap()))
            .collect();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert, key)
    }

    /// A client configured with a certificate carrying these URI SANs.
    fn client(&self, trust: &Pki, uris: &[&str]) -> rustls::ClientConfig {
        let (cert, key) = self.client_cert(uris);
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        builder(trust)
            .with_client_auth_cert(vec![cert.der().clone()], key)
            .unwrap()
    }

    /// A client certificate with these URI SANs, as PEM files (cert, key).
    fn client_files(&self, uris: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) = self.client_cert(uris);
        let (c, k) = (
            self.dir.path().join("client.crt"),
            self.dir.path().join("client.key"),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// A client without a certificate.
    fn anonymous(&self) -> rustls::ClientConfig {
        builder(self).with_no_client_auth()
    }
}

fn builder(
    trust: &Pki,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    let mut roots = RootCertStore::empty();
    roots.add(trust.ca.clone()).unwrap();
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
}

fn quoted(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// One request; `Err` when the TLS connection itself is refused.
async fn call(
    tls: &rustls::ClientConfig,
    url: &str,
    method: Method,
    token: Option<&str>,
    body: Option<Value>,
) -> Result<(StatusCode, Value), String> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_only()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut req = Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let body = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
    let req = req.body(Full::new(body)).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
        .await
        .expect("an answer or an error within 10s")
        .map_err(|e| format!("{e:?}"))?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("{e:?}"))?
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

async fn tls_gateway(pki: &Pki, require: bool) -> AdminGateway {
    let (cert, key) = pki.server();
    let admin = format!(
        "[admin.tls]\ncert_file = {}\nkey_file = {}\nclient_ca_file = {}\nrequire_client_cert = {require}\n\
         [[admin.clients]]\nsan = \"{OPS}\"\nrole = \"operator\"\n{}",
        quoted(&cert),
        quoted(&key),
        quoted(&pki.ca_file()),
        token_table("viewer", "viewer", VIEWER_TOKEN),
    );
    AdminGateway::start(&admin, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_client_certificate_is_its_role() {
    toolgate::install_crypto_provider();
    let pki = Pki::new("admin CA");
    let gw = tls_gateway(&pki, false).await;
    let url = |p: &str| format!("https://127.0.0.1:{}{p}", gw.admin.port());

    let ops = pki.client(&pki, &[OPS]);
    let (status, me) = call(&ops, &url("/v1/whoami"), Method::GET, None, None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(
        me,
        json!({"actor": format!("cert:{OPS}"), "role": "operator"})
    );
    let task = json!({"agent": "spiffe://example.org/a", "purpose": "p"});
    let (status, created) = call(&ops, &url("/v1/tasks"), Method::POST, None, Some(task))
        .await
        .unwrap();
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["task"]["created_by"], format!("cert:{OPS}"));
    let (status, refused) = call(&ops, &url("/v1/policies/reload"), Method::POST, None, None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["required_role"], "admin");

    // A valid certificate nobody mapped: not a caller.
    let stranger = pki.client(&pki, &["spiffe://example.org/stranger"]);
    let (status, v) = call(&stranger, &url("/v1/whoami"), Method::GET, None, None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"]["code"], "unauthenticated");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("stranger"),
        "{v}"
    );

    // No certificate: only the public endpoints, or a token.
    let anonymous = pki.anonymous();
    let (status, v) = call(&anonymous, &url("/v1/whoami"), Method::GET, None, None)
        .await
        .unwrap();
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("unauthenticated"))
    );
    let (status, _) = call(&anonymous, &url("/healthz"), Method::GET, None, None)
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let (status, me) = call(
        &anonymous,
        &url("/v1/whoami"),
        Method::GET,
        Some(VIEWER_TOKEN),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (status, me["role"].clone()),
        (StatusCode::OK, json!("viewer"))
    );

    // A certificate from another CA never gets past the handshake.
    let other = Pki::new("other CA");
    let foreign = other.client(&pki, &[OPS]);
    let refused = call(&foreign, &url("/v1/whoami"), Method::GET, None, None).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_client_certificate_is_required() {
    toolgate::install_crypto_provider();
    let pki = Pki::new("admin CA");
    let gw = tls_gateway(&pki, true).await;
    let url = format!("https://127.0.0.1:{}/healthz", gw.admin.port());
    let refused = call(
        &pki.anonymous(),
        &url,
        Method::GET,
        Some(VIEWER_TOKEN),
        None,
    )
    .await;
    assert!(
        refused.is_err(),
        "no certificate, no connection: {refused:?}"
    );
    let ops = pki.client(&pki, &[OPS]);
    let (status, _) = call(&ops, &url, Method::GET, None, None).await.unwrap();
    assert_eq!(status, StatusCode::OK);

    // The operator CLI authenticates by certificate too (no token).
    let (cert, key) = pki.client_files(&[OPS]);
    let admin_url = format!("https://127.0.0.1:{}", gw.admin.port());
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_toolgate"))
        .args([
            "task",
            "create",
            "--agent",
            "spiffe://example.org/a",
            "--purpose",
            "p",
            "--json",
        ])
        .args(["--admin-url", &admin_url, "--ca-file"])
        .arg(pki.ca_file())
        .arg("--cert")
        .arg(&cert)
        .arg("--key")
        .arg(&key)
        .env_remove("TOOLGATE_ADMIN_TOKEN")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let created: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(created["task"]["created_by"], format!("cert:{OPS}"));
}
