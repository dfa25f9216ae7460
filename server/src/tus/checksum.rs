//! tus checksum extension: `Upload-Checksum: <algorithm> <base64 digest>` over one PATCH body.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::Digest as _;

/// Algorithms advertised in `Tus-Checksum-Algorithm`.
pub const ALGORITHMS: &str = "sha1,sha256,blake3";

/// The header names an unknown algorithm or carries a malformed digest (400).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChecksumHeaderError(pub String);

/// A digest the client expects, and the running hash that must reproduce it.
pub struct ExpectedChecksum {
    expected: Vec<u8>,
    running: Running,
}

enum Running {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Blake3(Box<blake3::Hasher>),
}

impl ExpectedChecksum {
    /// Parses an `Upload-Checksum` header value.
    pub fn parse(header: &str) -> Result<Self, ChecksumHeaderError> {
        let (algorithm, encoded) = header.trim().split_once(' ').ok_or_else(|| {
            ChecksumHeaderError("Upload-Checksum must be '<algorithm> <base64>'".into())
        })?;
        let expected = STANDARD
            .decode(encoded.trim())
            .map_err(|_| ChecksumHeaderError("Upload-Checksum digest is not base64".into()))?;
        let (running, len) = match algorithm {
            "sha1" => (Running::Sha1(sha1::Sha1::new()), 20),
            "sha256" => (Running::Sha256(sha2::Sha256::new()), 32),
            "blake3" => (Running::Blake3(Box::new(blake3::Hasher::new())), 32),
            other => {
                return Err(ChecksumHeaderError(format!(
                    "unsupported checksum algorithm {other:?}; supported: {ALGORITHMS}"
                )));
            }
        };
        if expected.len() != len {
            return Err(ChecksumHeaderError(format!(
                "a {algorithm} digest has {len} bytes"
            )));
        }
        Ok(ExpectedChecksum { expected, running })
    }

    /// Feeds body bytes.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.running {
            Running::Sha1(h) => h.update(data),
            Running::Sha256(h) => h.update(data),
            Running::Blake3(h) => {
                h.update(data);
            }
        }
    }

    /// True if everything fed hashes to the expected digest.
    pub fn matches(&self) -> bool {
        let actual: Vec<u8> = match &self.running {
            Running::Sha1(h) => h.clone().finalize().to_vec(),
            Running::Sha256(h) => h.clone().finalize().to_vec(),
            Running::Blake3(h) => h.finalize().as_bytes().to_vec(),
        };
        actual == self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifies_each_algorithm() -> Result<(), ChecksumHeaderError> {
        let body = b"hello tus";
        let sha1 = STANDARD.encode(sha1::Sha1::digest(body));
        let sha256 = STANDARD.encode(sha2::Sha256::digest(body));
        let b3 = STANDARD.encode(blake3::hash(body).as_bytes());
        for header in [
            format!("sha1 {sha1}"),
            format!("sha256 {sha256}"),
            format!("blake3 {b3}"),
        ] {
            let mut check = ExpectedChecksum::parse(&header)?;
            check.update(&body[..4]);
            check.update(&body[4..]);
            assert!(check.matches(), "{header}");
            check.update(b"!");
            assert!(!check.matches(), "{header} with an extra byte");
        }
        Ok(())
    }

    #[test]
    fn refuses_unknown_algorithms_and_bad_digests() {
        assert!(ExpectedChecksum::parse("md5 AAAA").is_err());
        assert!(ExpectedChecksum::parse("sha1 not-base64!").is_err());
        assert!(ExpectedChecksum::parse("sha1 AAAA").is_err());
        assert!(ExpectedChecksum::parse("sha1").is_err());
    }
}
