//! Accept stage: the listeners' TLS settings (rustls, TLS 1.2+, ALPN h2 and
//! http/1.1), and for the admin listener client certificates verified
//! against its CA file, whose subject alternative names name the caller.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::extensions::GeneralName;

use crate::config::{AdminTls, ServerTls};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read certificate file {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("certificate file {0} holds no certificate")]
    NoCert(PathBuf),
    #[error("cannot read private key file {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("certificate and key do not fit together: {0}")]
    Mismatch(rustls::Error),
    #[error("client CA file {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// Builds the main listener's TLS config from PEM files.
pub fn server_config(tls: &ServerTls) -> Result<Arc<ServerConfig>, Error> {
    build(&tls.cert_file, &tls.key_file, None)
}

/// Builds the admin listener's TLS config: with `client_ca_file`, client
/// certificates are verified against it (and required if
/// `require_client_cert`); a presented certificate that does not verify
/// fails the handshake.
pub fn admin_server_config(tls: &AdminTls) -> Result<Arc<ServerConfig>, Error> {
    let verifier = match &tls.client_ca_file {
        None => None,
        Some(path) => Some(client_verifier(path, tls.require_client_cert)?),
    };
    build(&tls.cert_file, &tls.key_file, verifier)
}

fn build(
    cert_file: &Path,
    key_file: &Path,
    verifier: Option<Arc<dyn ClientCertVerifier>>,
) -> Result<Arc<ServerConfig>, Error> {
    let certs = load_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| Error::Key {
        path: key_file.to_path_buf(),
        reason: e.to_string(),
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(Error::Mismatch)?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(Error::Mismatch)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn client_verifier(path: &Path, required: bool) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    let ca = |reason: String| Error::ClientCa {
        path: path.to_path_buf(),
        reason,
    };
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| ca(e.to_string()))?;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder.build().map_err(|e| ca(e.to_string()))
}

pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::Cert {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::NoCert(path.to_path_buf()));
    }
    Ok(certs)
}

/// The URI and DNS subject alternative names of a (verified) certificate,
/// in the order it lists them; none if it cannot be parsed.
pub fn subject_alt_names(der: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use rcgen::string::Ia5String;
    use rcgen::{CertificateParams, KeyPair, SanType};

    use super::*;

    #[test]
    fn uri_and_dns_sans_are_read_in_order() {
        let mut params = CertificateParams::new(vec!["ops.example.org".to_owned()]).unwrap();
        params.subject_alt_names.push(SanType::URI(
            Ia5String::try_from("spiffe://example.org/ops").unwrap(),
        ));
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.self_signed(&KeyPair::generate().unwrap()).unwrap();
        assert_eq!(
            subject_alt_names(cert.der()),
            ["ops.example.org", "spiffe://example.org/ops"]
        );
        let bare = CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&KeyPair::generate().unwrap())
            .unwrap();
        assert!(subject_alt_names(bare.der()).is_empty());
        assert!(subject_alt_names(&CertificateDer::from(vec![1, 2, 3])).is_empty());
    }
}
