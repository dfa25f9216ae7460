//! rustls for both ends of the bench, with the relay's provider (aws-lc-rs) named
//! explicitly: the crate graph holds more than one provider, so rustls cannot pick one.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, ensure};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The contents of a PEM file, naming it when it cannot be read.
pub(crate) fn read_pem(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The sink's STARTTLS: a PEM certificate chain and key.
pub(crate) fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(cert_pem).collect::<Result<Vec<_>, _>>()?;
    ensure!(!chain.is_empty(), "no certificate in the PEM");
    let key = PrivateKeyDer::from_pem_slice(key_pem)?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// The submitter's TLS: the relay's certificate must chain to the roots in `ca_pem` and name
/// the relay, as a tenant's mail server set to `smtp_tls_security_level = secure` checks.
pub(crate) fn client_config(ca_pem: &[u8]) -> anyhow::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert?)?;
    }
    ensure!(!roots.is_empty(), "no certificate in the trust roots");
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
