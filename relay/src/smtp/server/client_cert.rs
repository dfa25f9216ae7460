//! Client certificates on the inbound side. Microsoft 365 connectors do not do SMTP AUTH: they
//! prove who they are with the certificate they present after STARTTLS. The handshake accepts
//! any certificate, or none, once the client has proved it holds the certificate's key — so a
//! tenant's server with a certificate nobody vouches for still gets TLS and can AUTH — and the
//! chain is verified afterwards against the configured roots. Only a verified chain's DNS
//! names reach the [`super::Gate`].

use std::sync::Arc;

use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls_pki_types::{CertificateDer, UnixTime};

use crate::tls::{ServerTlsError, TrustRoots};

/// Which client certificates count: those that chain to these roots.
#[derive(Debug, Clone)]
pub struct ClientCertPolicy {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl ClientCertPolicy {
    /// Client certificates must chain to `roots` (the WebPKI set: Microsoft's connector
    /// certificates are publicly issued).
    ///
    /// # Errors
    /// The roots cannot make a verifier (none in the set).
    pub fn new(roots: &TrustRoots) -> Result<Self, ServerTlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.store(), provider)
            .build()
            .map_err(|e| ServerTlsError::new(e.to_string()))?;
        Ok(Self { verifier })
    }

    /// The verifier the handshake uses: it asks for a certificate, takes any (or none), and
    /// checks only that the client signed the handshake with the certificate's key.
    pub(crate) fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(AnyCertificate(Arc::clone(&self.verifier)))
    }

    /// The DNS names (subject alternative names, lower case) of `chain`'s leaf when the chain
    /// verifies against the roots now; `None` otherwise.
    pub fn verified_names(&self, chain: &[CertificateDer<'_>]) -> Option<Vec<String>> {
        let (leaf, intermediates) = chain.split_first()?;
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .ok()?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
        let names = parsed
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|name| match name {
                        x509_parser::extensions::GeneralName::DNSName(dns) => {
                            Some(dns.to_ascii_lowercase())
                        }
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(names)
    }
}

/// Whether certificate name `name` falls under `pattern`: equal (ASCII case-insensitive), or
/// `pattern` is `*.suffix` and `name` is exactly one label more than `suffix` (or is the same
/// wildcard, as a certificate may carry it).
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.to_ascii_lowercase(), name.to_ascii_lowercase());
    if pattern == name {
        return true;
    }
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return false;
    };
    name.strip_suffix(suffix)
        .and_then(|head| head.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty() && !label.contains('.') && label != "*")
}

/// Takes any client certificate at the handshake (the chain is judged after it); checks the
/// handshake signatures as the real verifier does.
#[derive(Debug)]
struct AnyCertificate(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_pattern_covers_exactly_one_label() {
        let pattern = "*.mail.protection.outlook.com";
        for name in [
            "hospital-eu.mail.protection.outlook.com",
            "HOSPITAL.Mail.Protection.Outlook.com",
            "*.mail.protection.outlook.com",
        ] {
            assert!(name_matches(pattern, name), "{name}");
        }
        for name in [
            "mail.protection.outlook.com",
            "a.b.mail.protection.outlook.com",
            "evilmail.protection.outlook.com",
            "mail.protection.outlook.com.evil.test",
            ".mail.protection.outlook.com",
            "",
        ] {
            assert!(!name_matches(pattern, name), "{name}");
        }
        assert!(name_matches("relay.partner.test", "Relay.Partner.test"));
        assert!(!name_matches("relay.partner.test", "x.relay.partner.test"));
    }
}
