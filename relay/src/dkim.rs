//! DKIM signing (RFC 6376) with `relaxed/relaxed` canonicalization, rsa-sha256 and
//! ed25519-sha256 (RFC 8463), on aws-lc-rs. The relay signs each copy just before sending it,
//! so the bytes signed are the bytes sent.

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Header fields signed when present (From always is: a message without one is not signed).
const SIGNED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// The signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// RSA 2048, PKCS#1 v1.5, SHA-256: what every verifier accepts.
    RsaSha256,
    /// Ed25519 over the SHA-256 hash (RFC 8463): short keys, not yet verified everywhere.
    Ed25519Sha256,
}

impl Algorithm {
    /// The `a=` tag value; also the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RsaSha256 => "rsa-sha256",
            Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// The algorithm a stored name names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "rsa-sha256" => Some(Algorithm::RsaSha256),
            "ed25519-sha256" => Some(Algorithm::Ed25519Sha256),
            _ => None,
        }
    }
}

/// Why a key cannot be made or used.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// Generating or parsing the key failed.
    #[error("the DKIM key is unusable: {0}")]
    Key(String),
    /// The message has no From header.
    #[error("the message has no From header")]
    NoFrom,
    /// Signing failed.
    #[error("signing failed")]
    Sign,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A tenant's key for one domain and selector.
pub struct SigningKey {
    /// `d=`.
    pub domain: String,
    /// `s=`.
    pub selector: String,
    pair: Pair,
}

/// A new key pair and its PKCS#8 encoding (what is stored, sealed).
pub fn generate(algorithm: Algorithm) -> Result<Vec<u8>, DkimError> {
    let fail = |e: &dyn std::fmt::Display| DkimError::Key(e.to_string());
    match algorithm {
        Algorithm::RsaSha256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|e| fail(&e))?;
            let der = pair.as_der().map_err(|e| fail(&e))?;
            Ok(der.as_ref().to_vec())
        }
        Algorithm::Ed25519Sha256 => {
            let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|e| fail(&e))?;
            Ok(doc.as_ref().to_vec())
        }
    }
}

impl SigningKey {
    /// A key from its PKCS#8 encoding.
    ///
    /// # Errors
    /// The bytes are not a key of `algorithm`.
    pub fn from_pkcs8(
        algorithm: Algorithm,
        domain: &str,
        selector: &str,
        pkcs8: &[u8],
    ) -> Result<Self, DkimError> {
        let fail = |e: &dyn std::fmt::Display| DkimError::Key(e.to_string());
        let pair = match algorithm {
            Algorithm::RsaSha256 => Pair::Rsa(RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| fail(&e))?),
            Algorithm::Ed25519Sha256 => {
                Pair::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|e| fail(&e))?)
            }
        };
        Ok(Self {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_owned(),
            pair,
        })
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Rsa(_) => Algorithm::RsaSha256,
            Pair::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }

    /// Where the public key is published.
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The TXT record to publish at [`SigningKey::dns_name`].
    ///
    /// # Errors
    /// The public key cannot be encoded.
    pub fn dns_record(&self) -> Result<String, DkimError> {
        let (k, public) = match &self.pair {
            Pair::Rsa(pair) => {
                let spki = pair
                    .public_key()
                    .as_der()
                    .map_err(|e| DkimError::Key(e.to_string()))?;
                ("rsa", STANDARD.encode(spki.as_ref()))
            }
            Pair::Ed25519(pair) => ("ed25519", STANDARD.encode(pair.public_key().as_ref())),
        };
        Ok(format!("v=DKIM1; k={k}; p={public}"))
    }

    /// `message` (CRLF line ends) with a `DKIM-Signature` header in front, signed at `now`
    /// (Unix seconds).
    ///
    /// # Errors
    /// No From header, or signing failed.
    pub fn sign(&self, message: &[u8], now: i64) -> Result<Vec<u8>, DkimError> {
        let (head, body) = split(message);
        let fields = header_fields(head);
        let mut signed_names = Vec::new();
        let mut canonical_headers = Vec::new();
        for name in SIGNED_HEADERS {
            // Every instance, bottom-up, as a verifier will pick them.
            for field in fields.iter().rev().filter(|f| field_name(f) == *name) {
                signed_names.push(*name);
                canonical_headers.extend_from_slice(relaxed_header(field).as_bytes());
            }
        }
        if !signed_names.contains(&"from") {
            return Err(DkimError::NoFrom);
        }
        let body_hash = STANDARD.encode(digest::digest(&digest::SHA256, &relaxed_body(body)));
        let unsigned = format!(
            "DKIM-Signature: v=1; a={}; c=relaxed/relaxed; d={}; s={};\r\n t={}; h={};\r\n bh={};\r\n b=",
            self.algorithm().as_str(),
            self.domain,
            self.selector,
            now,
            signed_names.join(":"),
            body_hash,
        );
        let mut input = canonical_headers;
        let own = relaxed_header(&unsigned);
        input.extend_from_slice(own.trim_end_matches("\r\n").as_bytes());
        let signature = match &self.pair {
            Pair::Rsa(pair) => {
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), &input, &mut out)
                    .map_err(|_| DkimError::Sign)?;
                out
            }
            Pair::Ed25519(pair) => {
                let hash = digest::digest(&digest::SHA256, &input);
                pair.sign(hash.as_ref()).as_ref().to_vec()
            }
        };
        let mut out = Vec::with_capacity(message.len() + unsigned.len() + 400);
        out.extend_from_slice(unsigned.as_bytes());
        let encoded = STANDARD.encode(signature);
        for (i, chunk) in encoded.as_bytes().chunks(72).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n ");
            }
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(message);
        Ok(out)
    }
}

/// (header block including its last CRLF, body after the empty line).
fn split(message: &[u8]) -> (&[u8], &[u8]) {
    match message.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => (&message[..at + 2], &message[at + 4..]),
        None => (message, &[]),
    }
}

/// Each header field with its continuation lines, CRLFs kept.
fn header_fields(head: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(head);
    let mut fields: Vec<String> = Vec::new();
    for line in text.split_inclusive("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push_str(line);
            }
        } else if !line.trim().is_empty() {
            fields.push(line.to_owned());
        }
    }
    fields
}

fn field_name(field: &str) -> String {
    field
        .split_once(':')
        .map_or("", |(name, _)| name)
        .trim()
        .to_ascii_lowercase()
}

/// RFC 6376 §3.4.2: lower-case name, unfolded, whitespace runs as one space, none around the
/// colon or at the end; CRLF-terminated.
fn relaxed_header(field: &str) -> String {
    let (name, value) = field.split_once(':').unwrap_or((field, ""));
    let unfolded = value.replace("\r\n", "");
    let value = unfolded
        .split([' ', '\t'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    format!("{}:{}\r\n", name.trim().to_ascii_lowercase(), value)
}

/// RFC 6376 §3.4.4: whitespace runs as one space, none at line ends, no empty lines at the
/// end, CRLF after the last line of a non-empty body.
fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(body);
    let mut lines: Vec<String> = text
        .split("\r\n")
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            let mut space = false;
            for c in line.chars() {
                if c == ' ' || c == '\t' {
                    space = true;
                } else {
                    if space {
                        out.push(' ');
                        space = false;
                    }
                    out.push(c);
                }
            }
            out
        })
        .collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_canonicalization_follows_rfc_6376_examples() {
        // RFC 6376 §3.4.5's example.
        assert_eq!(relaxed_header("A: X\r\n"), "a:X\r\n");
        assert_eq!(relaxed_header("B : Y\t\r\n\tZ  \r\n"), "b:Y Z\r\n");
        assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
        assert_eq!(relaxed_body(b""), b"");
        assert_eq!(relaxed_body(b"no newline"), b"no newline\r\n");
    }

    #[test]
    fn a_signature_names_its_key_and_headers_and_needs_a_from() -> Result<(), DkimError> {
        for algorithm in [Algorithm::RsaSha256, Algorithm::Ed25519Sha256] {
            let key =
                SigningKey::from_pkcs8(algorithm, "Hospital.test", "s1", &generate(algorithm)?)?;
            assert!(key.dns_record()?.starts_with("v=DKIM1; k="));
            assert_eq!(key.dns_name(), "s1._domainkey.hospital.test");
            let signed = key.sign(b"From: a@hospital.test\r\nSubject: x\r\n\r\nbody\r\n", 1)?;
            let text = String::from_utf8_lossy(&signed);
            assert!(text.starts_with("DKIM-Signature: v=1; a="), "{text}");
            assert!(text.contains("d=hospital.test; s=s1;"));
            assert!(text.contains("h=from:subject;"));
            assert!(text.ends_with("From: a@hospital.test\r\nSubject: x\r\n\r\nbody\r\n"));
            assert!(matches!(
                key.sign(b"Subject: x\r\n\r\nbody\r\n", 1),
                Err(DkimError::NoFrom)
            ));
        }
        Ok(())
    }
}
