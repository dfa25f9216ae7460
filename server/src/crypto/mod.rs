//! Encryption at rest: the v1 object format (AES-256-GCM segments of 64 KiB, see
//! `shared/DESIGN.md`, "Encrypted object format (v1)") and the key hierarchy
//! (master key → tenant key-encryption key → per-file data key).
//!
//! Everything here is synchronous and allocation-light; callers stream segments through
//! [`SegmentCipher`] and keep only wrapped data keys in the database.

pub mod keys;
pub mod segment;

#[cfg(test)]
mod tests;

pub use keys::{AuditKey, MasterKey, TenantKek};
pub use segment::{
    Dek, NONCE_LEN, SEGMENT_OVERHEAD, SEGMENT_PLAINTEXT, STORED_SEGMENT_MAX, SegmentCipher,
    SegmentSpan, TAG_LEN, open_object, plaintext_len_of, segment_count, segment_plain_len,
    span_for_range, stored_len,
};

/// Why an encryption, decryption or key operation failed.
///
/// Callers should treat [`CryptoError::Authentication`] and [`CryptoError::Malformed`] on
/// stored data as corruption or tampering (never retry with the same bytes), and
/// [`CryptoError::Random`] as a fatal platform problem.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// A stored segment or wrapped key failed authentication (tampered, wrong key, wrong position).
    #[error("authentication failed: data tampered with, wrong key or wrong position")]
    Authentication,
    /// Stored bytes have an impossible length (shorter than nonce+tag, object not matching the
    /// plaintext length, missing final segment).
    #[error("malformed encrypted data: {0}")]
    Malformed(&'static str),
    /// Key material had the wrong size or encoding.
    #[error("bad key material: {0}")]
    BadKey(&'static str),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
}
