//! The resumable plaintext BLAKE3 of an upload (see `shared/DESIGN.md`, "Integrity (BLAKE3)").
//!
//! Each full 64 KiB segment contributes one subtree chaining value at its input offset, merged
//! lazily on a small stack exactly like `blake3::Hasher` merges chunks; the stack and the segment
//! count are persisted between PATCH requests, so finishing an upload never re-reads old data.
//! The result equals `blake3::hash` (and `b3sum`) of the whole file.

use blake3::hazmat::{
    ChainingValue, HasherExt, Mode, merge_subtrees_non_root, merge_subtrees_root,
};

use crate::crypto::SEGMENT_PLAINTEXT;

#[cfg(test)]
mod tests;
mod upload_digest;

pub use upload_digest::{FileDigests, UploadDigest, crc32_extend};

const S: u64 = SEGMENT_PLAINTEXT as u64;
/// Segment counts at or above this would overflow a u64 byte offset.
const MAX_SEGMENTS: u64 = u64::MAX / S;
const ENCODING_V1: u8 = 1;
const CV_LEN: usize = 32;

/// Why a hash state could not be advanced, finished or restored.
#[derive(Debug, thiserror::Error)]
pub enum HashStateError {
    /// [`TreeHasher::push_segment`] got something other than a full segment.
    #[error("a segment must be exactly {SEGMENT_PLAINTEXT} bytes, got {0}")]
    SegmentLength(usize),
    /// [`TreeHasher::finalize`] got a tail of a full segment or more (push it first).
    #[error("the final tail must be shorter than {SEGMENT_PLAINTEXT} bytes, got {0}")]
    TailLength(usize),
    /// The input would exceed 2^64 bytes.
    #[error("input too long for BLAKE3 offsets")]
    TooLong,
    /// [`TreeHasher::from_bytes`] got bytes that no `to_bytes` produced.
    #[error("malformed hash state: {0}")]
    Malformed(&'static str),
}

/// Resumable plaintext BLAKE3 over 64 KiB segments; persisted between PATCH requests.
///
/// Cheap to clone (a few dozen bytes per TiB of input) and deterministic to encode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeHasher {
    /// Full segments pushed so far.
    segments: u64,
    /// `blake3::hash` of segment 0, the root when the file is exactly one segment.
    first_root: Option<[u8; 32]>,
    /// Chaining values of complete subtrees, left to right, lazily merged: after `n >= 1`
    /// segments it holds `popcount(n - 1) + 1` entries.
    stack: Vec<ChainingValue>,
}

/// Stack length after `segments` pushes (the invariant of lazy merging).
fn expected_stack_len(segments: u64) -> usize {
    match segments {
        0 => 0,
        n => (n - 1).count_ones() as usize + 1,
    }
}

/// Merges the stack down to `popcount(total)` entries, as before appending subtree `total`.
fn merge_before_push(stack: &mut Vec<ChainingValue>, total: u64) {
    let keep = (total.count_ones() as usize).max(1);
    while stack.len() > keep {
        let (Some(right), Some(left)) = (stack.pop(), stack.pop()) else {
            break; // unreachable: the loop keeps at least two entries
        };
        stack.push(merge_subtrees_non_root(&left, &right, Mode::Hash));
    }
}

impl TreeHasher {
    /// An empty state (no segment yet). Cannot fail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next FULL segment (exactly [`SEGMENT_PLAINTEXT`] bytes, at input offset
    /// `segments() * 64 KiB`): computes its subtree chaining value and merges lazily.
    ///
    /// Fails (leaving the state unchanged) with [`HashStateError::SegmentLength`] if
    /// `segment.len() != SEGMENT_PLAINTEXT`, or [`HashStateError::TooLong`] past 2^64 bytes.
    pub fn push_segment(&mut self, segment: &[u8]) -> Result<(), HashStateError> {
        if segment.len() != SEGMENT_PLAINTEXT {
            return Err(HashStateError::SegmentLength(segment.len()));
        }
        if self.segments >= MAX_SEGMENTS {
            return Err(HashStateError::TooLong);
        }
        let mut hasher = blake3::Hasher::new();
        hasher.set_input_offset(self.segments * S);
        hasher.update(segment);
        let cv = hasher.finalize_non_root();
        if self.segments == 0 {
            // A file of exactly one segment has it as its root: remember that hash now.
            self.first_root = Some(*hasher.finalize().as_bytes());
        }
        merge_before_push(&mut self.stack, self.segments);
        self.stack.push(cv);
        self.segments += 1;
        Ok(())
    }

    /// Full segments pushed so far. Cannot fail.
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// The file's BLAKE3 given the final tail (< 64 KiB, possibly empty). Equals
    /// `blake3::hash(whole file)`. Does not change the state.
    ///
    /// Fails with [`HashStateError::TailLength`] if `tail` is a full segment or longer, and with
    /// [`HashStateError::Malformed`] if the state is inconsistent (cannot happen for states built
    /// by `push_segment` or accepted by `from_bytes`).
    pub fn finalize(&self, tail: &[u8]) -> Result<blake3::Hash, HashStateError> {
        if tail.len() >= SEGMENT_PLAINTEXT {
            return Err(HashStateError::TailLength(tail.len()));
        }
        if self.segments == 0 {
            return Ok(blake3::hash(tail));
        }
        let mut stack = self.stack.clone();
        if tail.is_empty() {
            if self.segments == 1 {
                return self.first_root.map(blake3::Hash::from_bytes).ok_or(
                    HashStateError::Malformed("missing the first segment's hash"),
                );
            }
        } else {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(self.segments * S);
            hasher.update(tail);
            merge_before_push(&mut stack, self.segments);
            stack.push(hasher.finalize_non_root());
        }
        let mut right = stack
            .pop()
            .ok_or(HashStateError::Malformed("empty chaining value stack"))?;
        loop {
            let Some(left) = stack.pop() else {
                return Err(HashStateError::Malformed("chaining value stack too short"));
            };
            if stack.is_empty() {
                return Ok(merge_subtrees_root(&left, &right, Mode::Hash));
            }
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
        }
    }

    /// Compact versioned byte encoding for the database:
    /// `1 (u8) ‖ segments (u64 BE) ‖ [hash of segment 0 ‖ stack CVs, 32 bytes each]`. Cannot fail.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 8 + CV_LEN * (1 + self.stack.len()));
        out.push(ENCODING_V1);
        out.extend_from_slice(&self.segments.to_be_bytes());
        if let Some(root) = &self.first_root {
            out.extend_from_slice(root);
        }
        for cv in &self.stack {
            out.extend_from_slice(cv);
        }
        out
    }

    /// Restores a state written by [`TreeHasher::to_bytes`].
    ///
    /// Fails with [`HashStateError::Malformed`] on an unknown version, a wrong length for the
    /// segment count, or an impossible segment count; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HashStateError> {
        let (&version, rest) = bytes
            .split_first()
            .ok_or(HashStateError::Malformed("empty"))?;
        if version != ENCODING_V1 {
            return Err(HashStateError::Malformed("unknown version"));
        }
        let (count, rest) = rest
            .split_first_chunk::<8>()
            .ok_or(HashStateError::Malformed("truncated segment count"))?;
        let segments = u64::from_be_bytes(*count);
        if segments > MAX_SEGMENTS {
            return Err(HashStateError::Malformed("impossible segment count"));
        }
        if segments == 0 {
            return if rest.is_empty() {
                Ok(Self::new())
            } else {
                Err(HashStateError::Malformed("trailing bytes"))
            };
        }
        let (cvs, remainder) = rest.as_chunks::<CV_LEN>();
        if !remainder.is_empty() || cvs.len() != 1 + expected_stack_len(segments) {
            return Err(HashStateError::Malformed(
                "length does not match the segment count",
            ));
        }
        let (first_root, stack) = cvs.split_first().ok_or(HashStateError::Malformed(
            "missing the first segment's hash",
        ))?;
        Ok(TreeHasher {
            segments,
            first_root: Some(*first_root),
            stack: stack.to_vec(),
        })
    }
}
