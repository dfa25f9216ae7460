//! A test certificate authority for the relay's test bed: MX and MTA-STS server certificates
//! that the relay trusts only because it is told to (`FERRY_RELAY_CA_FILE`), plus the broken
//! ones it must refuse — self-signed, for another name, expired.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use time::{Duration, OffsetDateTime};

/// A server certificate and its key, PEM, written to files a server can read.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM).
    pub key_pem: String,
    /// The certificate (DER), to compare fingerprints with.
    pub der: Vec<u8>,
}

impl Leaf {
    /// Writes `<stem>.crt` and `<stem>.key` into `dir`; returns their paths.
    ///
    /// # Errors
    /// The files cannot be written.
    pub fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.crt"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem)?;
        std::fs::write(&key, &self.key_pem)?;
        Ok((cert, key))
    }
}

/// The CA.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

fn leaf_params(names: &[&str]) -> anyhow::Result<CertificateParams> {
    let mut params =
        CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
    if let Some(first) = names.first() {
        params.distinguished_name.push(DnType::CommonName, *first);
    }
    params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + Duration::days(30);
    Ok(params)
}

impl TestCa {
    /// A fresh CA named `Ferry Test CA`.
    ///
    /// # Errors
    /// Key generation or signing fails.
    pub fn new() -> anyhow::Result<Self> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Ferry Test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = OffsetDateTime::now_utc() - Duration::days(2);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(365);
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM): the relay's only trust root in the test bed.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// A certificate for `names`, valid from yesterday for 30 days.
    ///
    /// # Errors
    /// A name is invalid, or signing fails.
    pub fn leaf(&self, names: &[&str]) -> anyhow::Result<Leaf> {
        self.sign(leaf_params(names)?)
    }

    /// A certificate for `names` that expired yesterday.
    ///
    /// # Errors
    /// As [`TestCa::leaf`].
    pub fn expired_leaf(&self, names: &[&str]) -> anyhow::Result<Leaf> {
        let mut params = leaf_params(names)?;
        params.not_before = OffsetDateTime::now_utc() - Duration::days(30);
        params.not_after = OffsetDateTime::now_utc() - Duration::days(1);
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> anyhow::Result<Leaf> {
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

/// A self-signed certificate for `names`: valid dates and names, but no CA vouches for it.
///
/// # Errors
/// As [`TestCa::leaf`].
pub fn self_signed(names: &[&str]) -> anyhow::Result<Leaf> {
    let params = leaf_params(names)?;
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    Ok(Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().to_vec(),
    })
}
