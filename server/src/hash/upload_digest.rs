//! Everything an upload's bytes are digested into as they stream: the BLAKE3 tree (the file's
//! identity, shown to recipients) and the CRC-32 (what the ZIP headers of "download all" carry,
//! so the archive's every byte is known before it is sent). Both cover exactly the full
//! segments pushed and are persisted together between PATCH requests, so neither ever
//! re-reads old data.

use super::{HashStateError, TreeHasher};

/// Encoding 2: `2 (u8) ‖ CRC-32 so far (u32 BE) ‖ TreeHasher encoding`. Encoding 1 is a bare
/// `TreeHasher` state, written before CRC-32 was kept: such an upload finishes with no CRC.
const ENCODING_V2: u8 = 2;

/// The digests of a whole file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileDigests {
    /// BLAKE3 of the file (equals `b3sum`).
    pub blake3: blake3::Hash,
    /// CRC-32 (IEEE, as ZIP and `zlib.crc32`) of the file; `None` when its upload began
    /// before the CRC was kept (computed once when an archive first needs it).
    pub crc32: Option<u32>,
}

/// The digest state of an upload in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadDigest {
    tree: TreeHasher,
    /// CRC-32 of the full segments so far; `None` for a state restored from encoding 1.
    crc32: Option<u32>,
}

impl Default for UploadDigest {
    fn default() -> Self {
        UploadDigest {
            tree: TreeHasher::new(),
            crc32: Some(0),
        }
    }
}

/// CRC-32 of `crc`'s bytes followed by `data`.
pub fn crc32_extend(crc: u32, data: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new_with_initial(crc);
    hasher.update(data);
    hasher.finalize()
}

impl UploadDigest {
    /// A fresh upload's state. Cannot fail.
    pub fn new() -> Self {
        Self::default()
    }

    /// Digests the next full segment (see [`TreeHasher::push_segment`], whose errors this
    /// returns, leaving the state unchanged).
    pub fn push_segment(&mut self, segment: &[u8]) -> Result<(), HashStateError> {
        self.tree.push_segment(segment)?;
        if let Some(crc) = &mut self.crc32 {
            *crc = crc32_extend(*crc, segment);
        }
        Ok(())
    }

    /// Full segments digested so far. Cannot fail.
    pub fn segments(&self) -> u64 {
        self.tree.segments()
    }

    /// The whole file's digests given its final tail (see [`TreeHasher::finalize`] for the
    /// errors). Does not change the state.
    pub fn finalize(&self, tail: &[u8]) -> Result<FileDigests, HashStateError> {
        Ok(FileDigests {
            blake3: self.tree.finalize(tail)?,
            crc32: self.crc32.map(|crc| crc32_extend(crc, tail)),
        })
    }

    /// The versioned encoding the database keeps. Cannot fail.
    pub fn to_bytes(&self) -> Vec<u8> {
        let tree = self.tree.to_bytes();
        match self.crc32 {
            Some(crc) => {
                let mut out = Vec::with_capacity(5 + tree.len());
                out.push(ENCODING_V2);
                out.extend_from_slice(&crc.to_be_bytes());
                out.extend_from_slice(&tree);
                out
            }
            // A state without CRC stays in the encoding it came in.
            None => tree,
        }
    }

    /// Restores a state written by [`UploadDigest::to_bytes`] or, without CRC, by
    /// [`TreeHasher::to_bytes`]. Fails with [`HashStateError::Malformed`]; never panics.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HashStateError> {
        match bytes.split_first() {
            Some((&ENCODING_V2, rest)) => {
                let (crc, tree) = rest
                    .split_first_chunk::<4>()
                    .ok_or(HashStateError::Malformed("truncated CRC-32"))?;
                Ok(UploadDigest {
                    tree: TreeHasher::from_bytes(tree)?,
                    crc32: Some(u32::from_be_bytes(*crc)),
                })
            }
            _ => Ok(UploadDigest {
                tree: TreeHasher::from_bytes(bytes)?,
                crc32: None,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::crypto::SEGMENT_PLAINTEXT as SEG;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    /// Feeds `input` with a save and restore after every segment, as PATCH requests do.
    fn digest_resumed(input: &[u8]) -> FileDigests {
        let mut state = UploadDigest::new();
        let full = input.len() / SEG * SEG;
        for segment in input[..full].chunks_exact(SEG) {
            state.push_segment(segment).unwrap();
            state = UploadDigest::from_bytes(&state.to_bytes()).unwrap();
        }
        state.finalize(&input[full..]).unwrap()
    }

    #[test]
    fn resumed_digests_equal_those_of_the_whole_file() {
        for len in [0, 1, SEG - 1, SEG, SEG + 1, 3 * SEG, 3 * SEG + 4321] {
            let input = data(len);
            let got = digest_resumed(&input);
            assert_eq!(got.blake3, blake3::hash(&input), "{len}");
            assert_eq!(got.crc32, Some(crc32fast::hash(&input)), "{len}");
        }
        // The known check value of CRC-32/ISO-HDLC (the ZIP and zlib CRC).
        let nine = UploadDigest::new().finalize(b"123456789").unwrap();
        assert_eq!(nine.crc32, Some(0xCBF4_3926));
    }

    #[test]
    fn a_state_from_before_crc32_finishes_without_one() {
        let input = data(2 * SEG + 10);
        let mut tree = TreeHasher::new();
        tree.push_segment(&input[..SEG]).unwrap();
        let mut state = UploadDigest::from_bytes(&tree.to_bytes()).unwrap();
        state.push_segment(&input[SEG..2 * SEG]).unwrap();
        assert_eq!(state.to_bytes()[0], 1, "stays in the encoding it came in");
        let got = state.finalize(&input[2 * SEG..]).unwrap();
        assert_eq!((got.blake3, got.crc32), (blake3::hash(&input), None));
    }

    #[test]
    fn malformed_states_are_refused() {
        for bad in [
            &[][..],
            &[2],
            &[2, 0, 0, 0, 0],
            &[2, 0, 0, 0, 0, 9],
            &[3, 0],
        ] {
            assert!(UploadDigest::from_bytes(bad).is_err(), "{bad:?}");
        }
    }
}
