//! Format v1 of stored objects: the plaintext cut into 64 KiB segments, each sealed with
//! AES-256-GCM under the file's data key as `nonce (12) ‖ ciphertext ‖ tag (16)`, back to back,
//! the last segment always shorter than 64 KiB (possibly empty) so truncation is detected.
//!
//! Also the arithmetic that maps plaintext lengths and byte ranges to stored bytes, and the
//! sealing of an unfinished upload's partial tail kept in the database.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::CryptoError;

/// Plaintext bytes per segment (every segment but the last holds exactly this many).
pub const SEGMENT_PLAINTEXT: usize = 65_536;
/// Bytes of the random nonce at the start of each stored segment.
pub const NONCE_LEN: usize = 12;
/// Bytes of the GCM tag at the end of each stored segment.
pub const TAG_LEN: usize = 16;
/// Stored bytes added to each segment's plaintext.
pub const SEGMENT_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
/// Stored size of a full segment, and the upper bound of any stored segment.
pub const STORED_SEGMENT_MAX: usize = SEGMENT_PLAINTEXT + SEGMENT_OVERHEAD;

const S: u64 = SEGMENT_PLAINTEXT as u64;
const STORED_S: u64 = STORED_SEGMENT_MAX as u64;
const SEGMENT_DOMAIN: &[u8; 8] = b"ferry/v1";
const TAIL_DOMAIN: &[u8; 13] = b"ferry/v1/tail";
const SEGMENT_AAD_LEN: usize = SEGMENT_DOMAIN.len() + 16 + 8 + 1;
const TAIL_AAD_LEN: usize = TAIL_DOMAIN.len() + 16 + 8;

/// The per-file data key: 32 random bytes, zeroized on drop, Debug redacted.
///
/// It exists in clear only in memory; the database keeps it wrapped by the tenant's key
/// (see [`super::TenantKek`]).
pub struct Dek(Zeroizing<[u8; 32]>);

impl Dek {
    /// Draws a fresh key from the system random generator.
    ///
    /// Fails with [`CryptoError::Random`] if the generator fails.
    pub fn generate() -> Result<Dek, CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(key.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Dek(key))
    }

    /// Takes a key from raw bytes (an unwrapped key, a test vector).
    ///
    /// Fails with [`CryptoError::BadKey`] unless `b` is exactly 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Dek, CryptoError> {
        let bytes: [u8; 32] = b
            .try_into()
            .map_err(|_| CryptoError::BadKey("a data key must be 32 bytes"))?;
        Ok(Dek(Zeroizing::new(bytes)))
    }

    /// The raw key, for wrapping. Never log or persist it in clear.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for Dek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dek(..)")
    }
}

/// Seals and opens the segments of one file.
///
/// Built once per file (key schedule done once) and shared freely: it is `Send + Sync`.
pub struct SegmentCipher {
    key: LessSafeKey,
    file_id: [u8; 16],
}

impl std::fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCipher")
            .field("file_id", &Uuid::from_bytes(self.file_id))
            .finish_non_exhaustive()
    }
}

impl SegmentCipher {
    /// Prepares the AES key schedule for the file `file_id` sealed with `dek`.
    ///
    /// Fails with [`CryptoError::BadKey`] only if the crypto library refuses the key.
    pub fn new(dek: &Dek, file_id: Uuid) -> Result<Self, CryptoError> {
        let key = UnboundKey::new(&AES_256_GCM, dek.as_bytes())
            .map_err(|_| CryptoError::BadKey("AES-256-GCM refused the data key"))?;
        Ok(SegmentCipher {
            key: LessSafeKey::new(key),
            file_id: *file_id.as_bytes(),
        })
    }

    fn segment_aad(&self, index: u64, last: bool) -> [u8; SEGMENT_AAD_LEN] {
        let mut aad = [0u8; SEGMENT_AAD_LEN];
        let (domain, rest) = aad.split_at_mut(SEGMENT_DOMAIN.len());
        domain.copy_from_slice(SEGMENT_DOMAIN);
        let (id, rest) = rest.split_at_mut(16);
        id.copy_from_slice(&self.file_id);
        let (idx, flag) = rest.split_at_mut(8);
        idx.copy_from_slice(&index.to_be_bytes());
        flag[0] = u8::from(last);
        aad
    }

    fn tail_aad(&self, index: u64) -> [u8; TAIL_AAD_LEN] {
        let mut aad = [0u8; TAIL_AAD_LEN];
        let (domain, rest) = aad.split_at_mut(TAIL_DOMAIN.len());
        domain.copy_from_slice(TAIL_DOMAIN);
        let (id, idx) = rest.split_at_mut(16);
        id.copy_from_slice(&self.file_id);
        idx.copy_from_slice(&index.to_be_bytes());
        aad
    }

    /// Appends `nonce ‖ ciphertext ‖ tag` to `out`, under a random nonce.
    fn seal_append(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        let start = out.len();
        out.resize(start + plaintext.len() + SEGMENT_OVERHEAD, 0);
        let sealed = self.seal_to_slice(aad, plaintext, &mut out[start..]);
        if sealed.is_err() {
            out.truncate(start);
        }
        sealed
    }

    /// Writes `nonce ‖ ciphertext ‖ tag` into `out` (exactly `plaintext.len() + 28` bytes),
    /// under a random nonce, encrypting straight from `plaintext`: the plaintext is read once
    /// and never copied first.
    fn seal_to_slice(
        &self,
        aad: &[u8],
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        if out.len() != plaintext.len() + SEGMENT_OVERHEAD {
            return Err(CryptoError::Malformed(
                "the output must be the plaintext plus nonce and tag",
            ));
        }
        let (nonce_out, sealed) = out.split_at_mut(NONCE_LEN);
        aws_lc_rs::rand::fill(nonce_out).map_err(|_| CryptoError::Random)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce_out)
            .map_err(|_| CryptoError::Malformed("a nonce must be 12 bytes"))?;
        let (ciphertext, tag) = sealed.split_at_mut(plaintext.len());
        self.key
            .seal_out_of_place_scatter(nonce, Aad::from(aad), plaintext, ciphertext, &[], tag)
            .map_err(|_| {
                // Nothing half-written may pass for a segment.
                ciphertext.fill(0);
                CryptoError::Malformed("AES-GCM refused to seal the input")
            })
    }

    /// Verifies and decrypts `nonce ‖ ciphertext ‖ tag` in place.
    fn open_slice<'a>(
        &self,
        aad: &[u8],
        stored: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let (nonce, sealed) = stored.split_at_mut(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Authentication)?;
        self.key
            .open_in_place(nonce, Aad::from(aad), sealed)
            .map_err(|_| CryptoError::Authentication)
    }

    /// Appends nonce ‖ ciphertext ‖ tag of segment `index` to `out` (random nonce from
    /// `aws_lc_rs::rand`), encrypting from `plaintext` straight into `out`.
    ///
    /// AAD = `b"ferry/v1" ‖ file id (16) ‖ index (u64 BE) ‖ last (u8: 1 or 0)`.
    /// Fails with [`CryptoError::Malformed`] (and leaves `out` untouched) if `plaintext` is longer
    /// than [`SEGMENT_PLAINTEXT`], if a full-size segment is marked `last` (the format's last
    /// segment is always shorter, possibly empty), or if a shorter segment is not marked `last`;
    /// with [`CryptoError::Random`] if no nonce could be drawn.
    pub fn seal_into(
        &self,
        index: u64,
        last: bool,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        check_segment_len(plaintext.len(), last)?;
        self.seal_append(&self.segment_aad(index, last), plaintext, out)
    }

    /// Like [`SegmentCipher::seal_into`], into `out` of exactly `plaintext.len() + 28` bytes
    /// (a slot of a reused buffer: nothing is allocated or zeroed per segment).
    ///
    /// Fails as `seal_into` does, and with [`CryptoError::Malformed`] if `out` has another
    /// length.
    pub fn seal_to(
        &self,
        index: u64,
        last: bool,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<(), CryptoError> {
        check_segment_len(plaintext.len(), last)?;
        self.seal_to_slice(&self.segment_aad(index, last), plaintext, out)
    }

    /// Verifies and decrypts one stored segment in place; returns the plaintext sub-slice.
    ///
    /// Fails with [`CryptoError::Malformed`] if `stored` cannot be a segment at that position
    /// (shorter than nonce + tag, longer than [`STORED_SEGMENT_MAX`], a full segment marked
    /// `last` or a short one not marked `last`), and with [`CryptoError::Authentication`] on any
    /// other mismatch (tampered bytes, wrong key, file id, index or `last`). On failure the
    /// contents of `stored` are unspecified.
    pub fn open_in_place<'a>(
        &self,
        index: u64,
        last: bool,
        stored: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let plain_len =
            stored
                .len()
                .checked_sub(SEGMENT_OVERHEAD)
                .ok_or(CryptoError::Malformed(
                    "stored segment shorter than nonce and tag",
                ))?;
        check_segment_len(plain_len, last)?;
        self.open_slice(&self.segment_aad(index, last), stored)
    }

    /// Seals the partial tail of an unfinished upload (< 64 KiB of plaintext), kept in the
    /// database row until it fills a segment.
    ///
    /// Same layout as a segment but AAD = `b"ferry/v1/tail" ‖ file id ‖ index (u64 BE)`, so a
    /// tail can never be confused with a stored segment. Fails with [`CryptoError::Malformed`]
    /// if `plaintext` is [`SEGMENT_PLAINTEXT`] bytes or longer (a full segment must be stored),
    /// with [`CryptoError::Random`] if no nonce could be drawn.
    pub fn seal_tail(&self, index: u64, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if plaintext.len() >= SEGMENT_PLAINTEXT {
            return Err(CryptoError::Malformed(
                "a tail must be shorter than a segment",
            ));
        }
        let mut out = Vec::with_capacity(plaintext.len() + SEGMENT_OVERHEAD);
        self.seal_append(&self.tail_aad(index), plaintext, &mut out)?;
        Ok(out)
    }

    /// Opens a tail sealed by [`SegmentCipher::seal_tail`] for segment `index` of this file.
    ///
    /// Fails with [`CryptoError::Malformed`] on an impossible length and with
    /// [`CryptoError::Authentication`] on any mismatch (tampering, other file, other index).
    pub fn open_tail(&self, index: u64, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < SEGMENT_OVERHEAD {
            return Err(CryptoError::Malformed(
                "sealed tail shorter than nonce and tag",
            ));
        }
        if sealed.len() >= STORED_SEGMENT_MAX {
            return Err(CryptoError::Malformed("sealed tail longer than a segment"));
        }
        let mut buf = sealed.to_vec();
        let plain_len = self.open_slice(&self.tail_aad(index), &mut buf)?.len();
        buf.copy_within(NONCE_LEN..NONCE_LEN + plain_len, 0);
        buf.truncate(plain_len);
        Ok(buf)
    }
}

fn check_segment_len(len: usize, last: bool) -> Result<(), CryptoError> {
    if len > SEGMENT_PLAINTEXT {
        Err(CryptoError::Malformed("segment longer than 64 KiB"))
    } else if last && len == SEGMENT_PLAINTEXT {
        Err(CryptoError::Malformed(
            "a full segment cannot be the last one",
        ))
    } else if !last && len != SEGMENT_PLAINTEXT {
        Err(CryptoError::Malformed("only the last segment may be short"))
    } else {
        Ok(())
    }
}

/// Number of stored segments for a plaintext length: len / 64 KiB + 1 (the last one shorter,
/// possibly empty). Cannot fail.
pub fn segment_count(plaintext_len: u64) -> u64 {
    plaintext_len / S + 1
}

/// Stored object length for a plaintext length (plaintext + 28 per segment). Cannot fail for
/// any length an object store can hold (saturates instead of overflowing near `u64::MAX`).
pub fn stored_len(plaintext_len: u64) -> u64 {
    plaintext_len.saturating_add(segment_count(plaintext_len) * SEGMENT_OVERHEAD as u64)
}

/// The plaintext length of a `stored`-byte object: the inverse of [`stored_len`], for objects
/// kept whole (a sealed key, a small sealed record). `None` when no plaintext length seals to
/// exactly `stored` bytes.
pub fn plaintext_len_of(stored: u64) -> Option<u64> {
    let full = stored / STORED_S;
    let last = (stored % STORED_S).checked_sub(SEGMENT_OVERHEAD as u64)?;
    Some(full * S + last)
}

/// Which stored bytes hold plaintext bytes `[start, end]` (inclusive) of a file of
/// `plaintext_len` bytes: segments `first..=last` at stored bytes `stored_start..stored_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentSpan {
    /// Index of the first segment to read.
    pub first: u64,
    /// Index of the last segment to read (inclusive).
    pub last: u64,
    /// Offset in the object of the first stored byte to read.
    pub stored_start: u64,
    /// Offset in the object just past the last stored byte to read (exclusive).
    pub stored_end: u64,
}

/// Maps plaintext bytes `[start, end_inclusive]` to the stored segments holding them.
///
/// The caller guarantees `start <= end_inclusive < plaintext_len`; otherwise the answer is
/// meaningless (but the function never panics).
pub fn span_for_range(plaintext_len: u64, start: u64, end_inclusive: u64) -> SegmentSpan {
    let first = start / S;
    let last = end_inclusive / S;
    let (last_plain, _) = segment_plain_len(plaintext_len, last);
    SegmentSpan {
        first,
        last,
        stored_start: first.saturating_mul(STORED_S),
        stored_end: last
            .saturating_mul(STORED_S)
            .saturating_add((last_plain + SEGMENT_OVERHEAD) as u64),
    }
}

/// Plaintext length of segment `index` in a file of `plaintext_len` bytes, and whether it is
/// the last. An index past the last segment gives `(0, false)`.
pub fn segment_plain_len(plaintext_len: u64, index: u64) -> (usize, bool) {
    let last_index = plaintext_len / S;
    if index < last_index {
        (SEGMENT_PLAINTEXT, false)
    } else if index == last_index {
        // Lossless: the remainder is below SEGMENT_PLAINTEXT.
        ((plaintext_len % S) as usize, true)
    } else {
        (0, false)
    }
}

/// Seals a whole plaintext held in memory into an object (the relay's queued messages: small
/// enough to hold, and written in one go).
///
/// Fails with [`CryptoError::Random`] if no nonce could be drawn.
pub fn seal_object(cipher: &SegmentCipher, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let len = plaintext.len() as u64;
    let capacity = usize::try_from(stored_len(len)).unwrap_or(plaintext.len());
    let mut out = Vec::with_capacity(capacity);
    let mut rest = plaintext;
    for index in 0..segment_count(len) {
        let (plain_len, last) = segment_plain_len(len, index);
        let (segment, tail) = rest.split_at(plain_len.min(rest.len()));
        rest = tail;
        cipher.seal_into(index, last, segment, &mut out)?;
    }
    Ok(out)
}

/// Decrypts a whole object (used by tests and tools; the server streams instead).
///
/// Fails with [`CryptoError::Malformed`] if the object's length does not match
/// `plaintext_len` (a missing final segment, trailing bytes) and with
/// [`CryptoError::Authentication`] if any segment fails its tag.
pub fn open_object(
    cipher: &SegmentCipher,
    object: &[u8],
    plaintext_len: u64,
) -> Result<Vec<u8>, CryptoError> {
    let expected = stored_len(plaintext_len);
    let actual = object.len() as u64;
    if actual < expected {
        return Err(CryptoError::Malformed(
            "object truncated (missing final segment)",
        ));
    }
    if actual > expected {
        return Err(CryptoError::Malformed(
            "trailing bytes after the final segment",
        ));
    }
    let capacity = usize::try_from(plaintext_len)
        .map_err(|_| CryptoError::Malformed("object too large for memory"))?;
    let mut plaintext = Vec::with_capacity(capacity);
    let mut scratch = Vec::with_capacity(STORED_SEGMENT_MAX.min(object.len()));
    let mut rest = object;
    for index in 0..segment_count(plaintext_len) {
        let (plain_len, last) = segment_plain_len(plaintext_len, index);
        let (stored, tail) =
            rest.split_at_checked(plain_len + SEGMENT_OVERHEAD)
                .ok_or(CryptoError::Malformed(
                    "object truncated (missing final segment)",
                ))?;
        rest = tail;
        scratch.clear();
        scratch.extend_from_slice(stored);
        plaintext.extend_from_slice(cipher.open_in_place(index, last, &mut scratch)?);
    }
    Ok(plaintext)
}
