//! TLS for the outbound side: which roots a certificate must chain to (the WebPKI set, or a
//! file of roots — the test CA in the test bed), and the facts about a peer's certificate that
//! go into the proof record.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest;
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Serialize;

/// Why trust roots could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The file could not be read or holds no usable certificate.
    #[error("cannot use trust roots from {path}: {reason}")]
    File {
        /// The file named by `FERRY_RELAY_CA_FILE`.
        path: String,
        /// Why.
        reason: String,
    },
}

/// The roots every MX and MTA-STS certificate must chain to.
#[derive(Clone)]
pub struct TrustRoots(Arc<RootCertStore>);

impl TrustRoots {
    /// Mozilla's set, as `webpki-roots` carries it: the same for every deployment, independent of
    /// what the host has installed.
    pub fn webpki() -> Self {
        let store = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        Self(Arc::new(store))
    }

    /// Only the certificates in a PEM file (`FERRY_RELAY_CA_FILE`: a private CA, the test bed).
    ///
    /// # Errors
    /// The file is unreadable, holds no certificate, or one that is not a usable root.
    pub fn from_pem_file(path: &Path) -> Result<Self, TrustError> {
        let fail = |reason: String| TrustError::File {
            path: path.display().to_string(),
            reason,
        };
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| fail(e.to_string()))? {
            let cert = cert.map_err(|e| fail(e.to_string()))?;
            store.add(cert).map_err(|e| fail(e.to_string()))?;
        }
        if store.is_empty() {
            return Err(fail("no certificate in the file".to_owned()));
        }
        Ok(Self(Arc::new(store)))
    }

    /// The store itself, for a verifier of client certificates.
    pub(crate) fn store(&self) -> Arc<RootCertStore> {
        Arc::clone(&self.0)
    }

    /// A client configuration that verifies the peer's chain and name against these roots
    /// (TLS 1.2 or 1.3; rustls offers nothing weaker).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map(|builder| {
                builder
                    .with_root_certificates(Arc::clone(&self.0))
                    .with_no_client_auth()
            });
        // The default provider supports the default versions; this cannot fail.
        match config {
            Ok(config) => Arc::new(config),
            Err(e) => unreachable!("aws-lc-rs lacks TLS 1.2/1.3: {e}"),
        }
    }
}

/// What the proof record says about the certificate an MX presented.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateFacts {
    /// SHA-256 of the leaf certificate's DER, hex (what `openssl x509 -fingerprint -sha256`
    /// shows, without colons).
    pub leaf_sha256: String,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo, hex (what a DANE 3 1 1 record pins).
    pub spki_sha256: String,
    /// The issuer's distinguished name (RFC 4514).
    pub issuer: String,
    /// The subject's distinguished name.
    pub subject: String,
    /// Validity start, RFC 3339.
    pub not_before: String,
    /// Validity end, RFC 3339.
    pub not_after: String,
}

impl CertificateFacts {
    /// Reads the leaf. A certificate rustls accepted always parses; `None` only for bytes that
    /// are not X.509.
    pub fn of(leaf_der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).ok()?;
        let rfc3339 = |t: x509_parser::time::ASN1Time| {
            time::OffsetDateTime::from_unix_timestamp(t.timestamp())
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default()
        };
        Some(Self {
            leaf_sha256: sha256_hex(leaf_der),
            spki_sha256: sha256_hex(cert.tbs_certificate.subject_pki.raw),
            issuer: cert.issuer().to_string(),
            subject: cert.subject().to_string(),
            not_before: rfc3339(cert.validity().not_before),
            not_after: rfc3339(cert.validity().not_after),
        })
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, bytes))
}

/// Why the inbound side's certificate cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the relay's TLS certificate: {0}")]
pub struct ServerTlsError(String);

impl ServerTlsError {
    pub(crate) fn new(reason: String) -> Self {
        Self(reason)
    }
}

/// The STARTTLS configuration of the inbound side from a PEM certificate chain and key.
///
/// # Errors
/// The PEM holds no certificate or no usable key, or they do not match.
pub fn server_config(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
    server_config_with(cert_pem, key_pem, None)
}

/// [`server_config`] that also asks the client for a certificate (taken if it has none, judged
/// after the handshake by `client_certs`: Microsoft 365 connectors prove themselves so).
///
/// # Errors
/// As [`server_config`].
pub fn server_config_with(
    cert_pem: &[u8],
    key_pem: &[u8],
    client_certs: Option<&crate::smtp::server::ClientCertPolicy>,
) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
    let fail = |e: &dyn std::fmt::Display| ServerTlsError(e.to_string());
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(&e))?;
    if chain.is_empty() {
        return Err(ServerTlsError("no certificate in the PEM".to_owned()));
    }
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| fail(&e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(&e))?;
    let builder = match client_certs {
        Some(policy) => builder.with_client_cert_verifier(policy.handshake_verifier()),
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| fail(&e))?;
    Ok(Arc::new(config))
}

/// A self-signed certificate and key (PEM) for `hostname`: for development only (the sending
/// mail server must then be told not to verify, which production must never need).
///
/// # Errors
/// Key generation or signing failed.
pub fn self_signed_pem(hostname: &str) -> Result<(String, String), ServerTlsError> {
    let fail = |e: rcgen::Error| ServerTlsError(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let params = rcgen::CertificateParams::new(vec![hostname.to_owned()]).map_err(fail)?;
    let cert = params.self_signed(&key).map_err(fail)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// [`server_config`] of a fresh [`self_signed_pem`].
///
/// # Errors
/// As those two.
pub fn self_signed_server(hostname: &str) -> Result<Arc<rustls::ServerConfig>, ServerTlsError> {
    let (cert, key) = self_signed_pem(hostname)?;
    server_config(cert.as_bytes(), key.as_bytes())
}
