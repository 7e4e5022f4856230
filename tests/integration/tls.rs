//! TLS on both sides of the gateway: the main listener (HTTP/1.1 and h2 by
//! ALPN, TLS 1.2+ only) and https upstreams trusted through a route's
//! `upstream_ca_file`. Certificates are made per test with rcgen.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::upstream::{self, FakeUpstream};
use crate::common::{self, TestGateway};

/// A test CA and the files of one leaf certificate it signed.
struct Pki {
    dir: TempDir,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "toolgate test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA cert");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.pem"), cert.pem()).expect("write CA");
        Self {
            dir,
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Issues a server certificate for `names`; returns (cert file, key file).
    fn leaf(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        params.distinguished_name.push(DnType::CommonName, stem);
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        let cert_file = self.dir.path().join(format!("{stem}.crt"));
        let key_file = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("write cert");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        (cert_file, key_file)
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("CA is a valid root");
        roots
    }

    fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> rustls::ClientConfig {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(self.roots())
            .with_no_client_auth()
    }
}

fn toml_path(p: &Path) -> String {
    format!("'{}'", p.display())
}

type TlsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An https-only client trusting the test CA; `h2` offers ALPN h2 and http/1.1,
/// otherwise it offers no ALPN and speaks HTTP/1.1.
fn tls_client(config: rustls::ClientConfig, h2: bool) -> TlsClient {
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only();
    let connector = if h2 {
        builder.enable_all_versions().build()
    } else {
        builder.enable_http1().build()
    };
    Client::builder(TokioExecutor::new()).build(connector)
}

async fn call(client: &TlsClient, url: &str, body: &Value) -> (StatusCode, Version, Value) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(body).expect("json"),
        )))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(5), client.request(req))
        .await
        .expect("answer within 5s")
        .expect("request succeeds");
    let (status, version) = (resp.status(), resp.version());
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
    (status, version, value)
}

fn tools_list(id: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

async fn echo_upstream() -> FakeUpstream {
    FakeUpstream::start(|seen| async move {
        let req: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        upstream::json(
            200,
            &json!({"jsonrpc": "2.0", "id": req["id"], "result": {"tools": []}}),
        )
    })
    .await
}

/// Writes `bytes` and reads until the peer closes (bounded).
async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut out))
        .await
        .expect("the gateway closes the connection within 2s");
    // A reset after the alert is as clean as a FIN.
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    out
}

/// A ClientHello offering at most TLS 1.1 (no supported_versions extension).
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02]; // client_version: TLS 1.1
    body.extend_from_slice(&[0x42; 32]); // random
    body.push(0); // no session id
    // ECDHE-ECDSA/RSA AES-GCM (also TLS 1.2 suites) and two CBC suites.
    body.extend_from_slice(&[0x00, 0x08, 0xc0, 0x2b, 0xc0, 0x2f, 0xc0, 0x13, 0x00, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    let len = u32::try_from(body.len()).expect("small").to_be_bytes();
    let mut handshake = vec![0x01, len[1], len[2], len[3]];
    handshake.extend(body);
    let len = u16::try_from(handshake.len()).expect("small").to_be_bytes();
    let mut record = vec![0x16, 0x03, 0x01, len[0], len[1]];
    record.extend(handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_listener_serves_http1_and_h2_over_tls() {
    toolgate::install_crypto_provider();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("gateway", &["127.0.0.1", "localhost"]);
    let up = echo_upstream().await;
    let gw = TestGateway::start(&format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\n\
         [server.tls]\ncert_file = {}\nkey_file = {}\n\
         [admin]\nbind = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"tls-in\"\npath = \"/mcp\"\nupstream = \"{}\"\ndefault_decision = \"allow\"\n",
        toml_path(&cert),
        toml_path(&key),
        up.url(""),
    ))
    .await;
    let url = format!("https://127.0.0.1:{}/mcp", gw.addr.port());
    let all = [&rustls::version::TLS13, &rustls::version::TLS12];

    let h1 = tls_client(pki.client_config(&all), false);
    let (status, version, v) = call(&h1, &url, &tools_list(1)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(version, Version::HTTP_11);
    assert_eq!(v["id"], 1);

    let h2 = tls_client(pki.client_config(&all), true);
    let (status, version, v) = call(&h2, &url, &tools_list(2)).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(version, Version::HTTP_2, "ALPN picks h2 when offered");
    assert_eq!(v["id"], 2);

    // TLS 1.2 alone is accepted too.
    let tls12 = tls_client(pki.client_config(&[&rustls::version::TLS12]), true);
    let (status, _, _) = call(&tls12, &url, &tools_list(3)).await;
    assert_eq!(status, StatusCode::OK);

    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.headers["x-forwarded-proto"], "https");
        assert_eq!(s.headers["host"], up.addr.to_string().as_str());
    }

    // ALPN: a client offering only http/1.1 gets http/1.1.
    let mut config = pki.client_config(&all);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn main_listener_refuses_old_tls_and_plain_http_cleanly() {
    toolgate::install_crypto_provider();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("gateway", &["127.0.0.1"]);
    let up = echo_upstream().await;
    let gw = TestGateway::start(&format!(
        "[server]\nbind = \"127.0.0.1:0\"\ndrain_timeout = \"2s\"\n\
         [server.tls]\ncert_file = {}\nkey_file = {}\n\
         [admin]\nbind = \"127.0.0.1:0\"\n\
         [[routes]]\nname = \"tls-in\"\npath = \"/mcp\"\nupstream = \"{}\"\ndefault_decision = \"allow\"\n",
        toml_path(&cert),
        toml_path(&key),
        up.url(""),
    ))
    .await;

    // TLS 1.1 only: a fatal alert (rustls says handshake_failure), then the
    // connection closes.
    let reply = raw_exchange(gw.addr, &tls11_client_hello()).await;
    assert!(reply.len() >= 7, "expected a TLS alert, got {reply:?}");
    assert_eq!(reply[0], 0x15, "an alert record: {reply:?}");
    assert_eq!(reply[5], 2, "fatal: {reply:?}");
    assert!(
        [40, 70].contains(&reply[6]),
        "handshake_failure or protocol_version: {reply:?}"
    );
    assert_eq!(reply.len(), 7, "nothing after the alert: {reply:?}");

    // Plain HTTP on the TLS port: no HTTP answer, the connection just closes.
    let reply = raw_exchange(
        gw.addr,
        b"POST /mcp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    .await;
    assert!(
        !reply.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // A plain-HTTP client gets an error, not a hang.
    let plain = tokio::time::timeout(
        Duration::from_secs(2),
        common::client().request(
            Request::post(format!("http://{}/mcp", gw.addr))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        ),
    )
    .await
    .expect("plain HTTP fails within 2s");
    assert!(plain.is_err(), "{plain:?}");

    assert!(up.seen().is_empty());
    // The listener is unharmed.
    let client = tls_client(pki.client_config(&[&rustls::version::TLS13]), true);
    let url = format!("https://127.0.0.1:{}/mcp", gw.addr.port());
    let (status, _, _) = call(&client, &url, &tools_list(9)).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstream_is_trusted_only_through_its_ca_file() {
    toolgate::install_crypto_provider();
    let pki = Pki::new();
    let (cert, key) = pki.leaf("upstream", &["127.0.0.1"]);
    let server = toolgate::listener::tls::server_config(&toolgate::config::ServerTls {
        cert_file: cert,
        key_file: key,
    })
    .expect("upstream TLS config");
    let up = FakeUpstream::start_tls(server, |seen| async move {
        let req: Value = serde_json::from_slice(&seen.body).unwrap_or_default();
        upstream::json(
            200,
            &json!({"jsonrpc": "2.0", "id": req["id"], "result": {"tools": []}}),
        )
    })
    .await;
    let port = up.addr.port();
    let ca = toml_path(&pki.ca_file());
    let gw = TestGateway::start(&format!(
        "[[routes]]\nname = \"pinned\"\npath = \"/pinned\"\nupstream = \"https://127.0.0.1:{port}/mcp\"\n\
         upstream_ca_file = {ca}\ndefault_decision = \"allow\"\n\
         [[routes]]\nname = \"wrong-name\"\npath = \"/wrong-name\"\nupstream = \"https://localhost:{port}/mcp\"\n\
         upstream_ca_file = {ca}\ndefault_decision = \"allow\"\n\
         [[routes]]\nname = \"system\"\npath = \"/system\"\nupstream = \"https://127.0.0.1:{port}/mcp\"\n\
         default_decision = \"allow\"\n",
    ))
    .await;

    let r = common::post_mcp(&gw.url("/pinned"), &[], &tools_list(1)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["id"], 1);
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri.path(), "/mcp");
    assert_eq!(seen[0].headers["x-forwarded-proto"], "http");

    for (path, name) in [("/system", "system"), ("/wrong-name", "wrong-name")] {
        let r = common::post_mcp(&gw.url(path), &[], &tools_list(2)).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{name}: {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["code"], "upstream_unavailable", "{v}");
        assert_eq!(v["error"]["route"], name);
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains("certificate"), "{name}: {message}");
    }
    assert_eq!(
        up.seen().len(),
        1,
        "no request crossed an untrusted connection"
    );
}
