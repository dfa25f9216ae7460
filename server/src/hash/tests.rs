//! Tests of the resumable BLAKE3 tree state against `blake3::hash`.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;

use super::*;

const SEG: usize = SEGMENT_PLAINTEXT;

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// What the upload path does: buffers pieces, pushes full segments, keeps the partial tail,
/// and (optionally) persists and restores the state between pieces.
struct Feeder {
    state: TreeHasher,
    tail: Vec<u8>,
}

impl Feeder {
    fn new() -> Self {
        Feeder {
            state: TreeHasher::new(),
            tail: Vec::new(),
        }
    }

    fn feed(&mut self, piece: &[u8]) {
        self.tail.extend_from_slice(piece);
        let full = self.tail.len() / SEG * SEG;
        for segment in self.tail[..full].chunks_exact(SEG) {
            self.state.push_segment(segment).unwrap();
            assert_eq!(
                self.state.stack.len(),
                expected_stack_len(self.state.segments())
            );
        }
        self.tail.drain(..full);
    }

    fn restart(&mut self) {
        let bytes = self.state.to_bytes();
        let restored = TreeHasher::from_bytes(&bytes).unwrap();
        assert_eq!(restored, self.state);
        self.state = restored;
    }

    fn finish(&self) -> blake3::Hash {
        self.state.finalize(&self.tail).unwrap()
    }
}

fn tree_hash(input: &[u8]) -> blake3::Hash {
    let mut f = Feeder::new();
    f.feed(input);
    f.finish()
}

#[test]
fn matches_blake3_at_edges() {
    let input = data(5 * 1024 * 1024 + 4321, 1);
    for len in [
        0,
        1,
        1023,
        1024,
        1025,
        SEG - 1,
        SEG,
        SEG + 1,
        2 * SEG,
        2 * SEG + 1,
        3 * SEG,
        4 * SEG,
        5 * SEG - 1,
        8 * SEG + 1024,
        4 * 1024 * 1024,
        input.len(),
    ] {
        let slice = &input[..len];
        assert_eq!(tree_hash(slice), blake3::hash(slice), "len {len}");
    }
}

#[test]
fn finalize_does_not_consume_and_can_continue() {
    let input = data(3 * SEG + 10, 2);
    let mut f = Feeder::new();
    f.feed(&input[..SEG + 5]);
    assert_eq!(f.finish(), blake3::hash(&input[..SEG + 5]));
    f.feed(&input[SEG + 5..]);
    assert_eq!(f.finish(), blake3::hash(&input));
    assert_eq!(f.state.segments(), 3);
}

#[test]
fn rejects_bad_lengths() {
    let mut h = TreeHasher::new();
    assert!(matches!(
        h.push_segment(&[0; 10]),
        Err(HashStateError::SegmentLength(10))
    ));
    assert!(matches!(
        h.push_segment(&vec![0; SEG + 1]),
        Err(HashStateError::SegmentLength(_))
    ));
    assert_eq!(h, TreeHasher::new());
    assert!(matches!(
        h.finalize(&vec![0; SEG]),
        Err(HashStateError::TailLength(_))
    ));
}

#[test]
fn encoding_is_compact_and_strict() {
    let mut f = Feeder::new();
    f.feed(&data(7 * SEG, 3));
    let bytes = f.state.to_bytes();
    // 7 segments: stack holds popcount(6) + 1 = 3 CVs, plus segment 0's hash.
    assert_eq!(bytes.len(), 1 + 8 + 32 * 4);
    assert_eq!(
        TreeHasher::from_bytes(&TreeHasher::new().to_bytes()).unwrap(),
        TreeHasher::new()
    );

    let bad = |b: &[u8]| matches!(TreeHasher::from_bytes(b), Err(HashStateError::Malformed(_)));
    assert!(bad(&[]));
    assert!(bad(&[1]));
    assert!(bad(&[1, 0, 0, 0]));
    assert!(bad(&[2, 0, 0, 0, 0, 0, 0, 0, 0]));
    assert!(bad(&[1, 0, 0, 0, 0, 0, 0, 0, 0, 7]));
    assert!(bad(&bytes[..bytes.len() - 1]));
    assert!(bad(&bytes[..bytes.len() - 32]));
    let mut longer = bytes.clone();
    longer.extend_from_slice(&[0; 32]);
    assert!(bad(&longer));
    let mut other_count = bytes.clone();
    other_count[8] = 8; // 8 segments need popcount(7) + 1 = 4 CVs, not 3
    assert!(bad(&other_count));
    let mut huge = vec![1];
    huge.extend_from_slice(&u64::MAX.to_be_bytes());
    huge.extend_from_slice(&vec![0; 32 * 66]);
    assert!(bad(&huge));
}

#[test]
fn stack_stays_small() {
    // The largest file the stack must describe (2^48 - 1 segments) keeps at most 48 CVs;
    // a 1 TiB upload (2^24 segments) at most 25.
    assert_eq!(expected_stack_len(MAX_SEGMENTS), 48);
    assert!(
        (1..=1u64 << 24)
            .step_by(9_973)
            .all(|n| expected_stack_len(n) <= 25)
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_lengths_and_pieces_with_restarts(
        len in 0usize..2 * 1024 * 1024,
        seed in any::<u64>(),
        pieces in prop::collection::vec(1usize..200_000, 1..16),
    ) {
        let input = data(len, seed);
        let mut f = Feeder::new();
        let mut pos = 0;
        for size in pieces.iter().cycle() {
            if pos >= len {
                break;
            }
            let end = (pos + size).min(len);
            f.feed(&input[pos..end]);
            f.restart();
            pos = end;
        }
        prop_assert_eq!(f.finish(), blake3::hash(&input));
    }

    #[test]
    fn from_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(state) = TreeHasher::from_bytes(&bytes) {
            prop_assert_eq!(state.to_bytes(), bytes);
            prop_assert!(state.finalize(b"x").is_ok());
        }
    }

    #[test]
    fn from_bytes_accepts_plausible_states(segments in 1u64..1 << 40, fill in any::<u8>()) {
        let mut bytes = vec![1];
        bytes.extend_from_slice(&segments.to_be_bytes());
        bytes.extend(std::iter::repeat_n(fill, 32 * (1 + expected_stack_len(segments))));
        let state = TreeHasher::from_bytes(&bytes).unwrap();
        prop_assert_eq!(state.segments(), segments);
        prop_assert!(state.finalize(b"").is_ok());
        prop_assert!(state.finalize(b"tail").is_ok());
    }
}
