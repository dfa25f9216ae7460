//! Deterministic, seekable pseudo-random bytes.
//!
//! A load generator must send the same bytes again after a disconnect (resuming from whatever
//! offset the server kept) and must know the BLAKE3 of every file without holding it in
//! memory. [`Source`] gives byte `i` of stream `(seed, stream)` as a pure function of the
//! three: every 8-byte word is SplitMix64's output for its index, so any range can be
//! generated on its own, at a few GB/s per core.

/// SplitMix64's increment (the golden ratio in 64 bits).
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64's output function: a bijective mix of one 64-bit word.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One deterministic byte stream, identified by a seed and a stream number (for example the
/// seed of a run and the index of a file in it).
#[derive(Clone, Copy, Debug)]
pub struct Source {
    key: u64,
}

impl Source {
    /// The stream `stream` of seed `seed`. Different pairs give unrelated streams.
    pub fn new(seed: u64, stream: u64) -> Self {
        Source {
            key: mix(seed ^ mix(stream.wrapping_add(1).wrapping_mul(GOLDEN))),
        }
    }

    /// The little-endian word that holds bytes `8 * index .. 8 * index + 8`.
    fn word(&self, index: u64) -> [u8; 8] {
        mix(self.key.wrapping_add(index.wrapping_mul(GOLDEN))).to_le_bytes()
    }

    /// Fills `buf` with the bytes at `offset .. offset + buf.len()`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut index = offset / 8;
        let skip = (offset % 8) as usize;
        let mut rest = buf;
        if skip != 0 {
            let word = self.word(index);
            let n = (8 - skip).min(rest.len());
            rest[..n].copy_from_slice(&word[skip..skip + n]);
            rest = &mut rest[n..];
            index += 1;
        }
        let mut words = rest.chunks_exact_mut(8);
        for chunk in &mut words {
            chunk.copy_from_slice(&self.word(index));
            index += 1;
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let word = self.word(index);
            let n = tail.len();
            tail.copy_from_slice(&word[..n]);
        }
    }

    /// The BLAKE3 of the first `len` bytes, generated in 1 MiB pieces.
    pub fn blake3(&self, len: u64) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut offset = 0;
        while offset < len {
            let n = (len - offset).min(buf.len() as u64) as usize;
            self.fill(offset, &mut buf[..n]);
            hasher.update(&buf[..n]);
            offset += n as u64;
        }
        hasher.finalize()
    }
}

/// A small pseudo-random generator (SplitMix64) for the load generator's choices: which
/// requests pause or disconnect, where, and for how long. Seeded, so a run can be repeated.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator for stream `stream` of seed `seed`.
    pub fn new(seed: u64, stream: u64) -> Self {
        Rng {
            state: Source::new(seed ^ 0x5eed, stream).key,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix(self.state)
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `true` with probability `p` (never for `p <= 0`, always for `p >= 1`).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A uniform integer in `[0, n)`, or `0` for `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// A uniform duration in `[low, high]`.
    pub fn between(
        &mut self,
        low: std::time::Duration,
        high: std::time::Duration,
    ) -> std::time::Duration {
        low + high.saturating_sub(low).mul_f64(self.unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_range_equals_the_same_slice_of_the_whole() {
        let source = Source::new(7, 3);
        let mut whole = vec![0u8; 4099];
        source.fill(0, &mut whole);
        for (start, len) in [(0, 1), (1, 7), (3, 8), (5, 21), (8, 8), (13, 0), (4000, 99)] {
            let mut part = vec![0u8; len];
            source.fill(start as u64, &mut part);
            assert_eq!(part, whole[start..start + len], "range {start}+{len}");
        }
    }

    #[test]
    fn streams_and_seeds_differ() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        let mut c = [0u8; 64];
        Source::new(1, 0).fill(0, &mut a);
        Source::new(1, 1).fill(0, &mut b);
        Source::new(2, 0).fill(0, &mut c);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
    }

    #[test]
    fn blake3_matches_a_one_shot_hash() {
        let source = Source::new(42, 9);
        let len = (1 << 20) + 12345;
        let mut whole = vec![0u8; len];
        source.fill(0, &mut whole);
        assert_eq!(source.blake3(len as u64), blake3::hash(&whole));
    }
}
