//! The CLI against an https admin listener: trusted through `--ca-file`,
//! refused (exit 1, a connection error) without it.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

use crate::common::process::{OPERATOR_TOKEN, ServeDir, toolgate};

/// A fresh CA's PEM and a certificate for 127.0.0.1 it signed (cert, key).
fn pki() -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "toolgate ops test CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    leaf.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn cli_trusts_an_https_admin_listener_through_ca_file() {
    let pem_dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki();
    let path = |name: &str| pem_dir.path().join(name);
    std::fs::write(path("ca.pem"), ca).unwrap();
    std::fs::write(path("admin.crt"), cert).unwrap();
    std::fs::write(path("admin.key"), key).unwrap();
    let dir = ServeDir::with(&format!(
        "[admin.tls]\ncert_file = {}\nkey_file = {}\n",
        toml::Value::String(path("admin.crt").display().to_string()),
        toml::Value::String(path("admin.key").display().to_string()),
    ));
    let server = dir.start();
    let url = format!("https://{}", server.admin);
    let env = [("TOOLGATE_ADMIN_TOKEN", OPERATOR_TOKEN)];
    let ca_file = path("ca.pem").display().to_string();

    let run = toolgate(
        &["task", "list", "--admin-url", &url, "--ca-file", &ca_file],
        &env,
    )
    .await;
    assert_eq!(run.ok(), "no tasks\n");

    // The system roots do not know the test CA.
    let run = toolgate(&["task", "list", "--admin-url", &url], &env).await;
    assert_eq!(run.code(), Some(1), "{run:?}");
    assert!(
        run.stderr
            .starts_with("error: cannot reach the admin API at ")
            && run.stderr.contains("certificate"),
        "{}",
        run.stderr
    );

    // A CA file that is not there is a usage error: nothing is sent.
    let run = toolgate(
        &[
            "task",
            "list",
            "--admin-url",
            &url,
            "--ca-file",
            "/nonexistent/ca.pem",
        ],
        &env,
    )
    .await;
    assert_eq!(run.code(), Some(2), "{run:?}");
    assert!(
        run.stderr.starts_with("error: --ca-file: "),
        "{}",
        run.stderr
    );
}
