//! What an upload's real work costs on this host, one core: AES-256-GCM sealing of 64 KiB
//! segments (aws-lc-rs, as the server), BLAKE3 of 64 KiB segments (the `blake3` crate, one
//! thread, as the server's tree hashing), CRC-32 (`crc32fast`), and a plain memory copy. The
//! upload's server CPU per GiB is reported as a multiple of the first three (issue 18: the
//! bar is ≤ 1.5×), measured in the same run as the upload, since the figures move with the host.

use std::hint::black_box;
use std::time::Instant;

use anyhow::{Context, Result};
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

/// The server's segment size.
const SEGMENT: usize = 64 * 1024;
const GIB: f64 = (1u64 << 30) as f64;

/// Seconds per GiB of each primitive, the best of the repeats.
#[derive(Debug, Clone, Copy)]
pub struct PrimitiveCosts {
    /// AES-256-GCM seal, 64 KiB segments, tag separate (one core).
    pub aes_256_gcm: f64,
    /// BLAKE3 of each 64 KiB segment (one thread).
    pub blake3: f64,
    /// CRC-32 (IEEE).
    pub crc32: f64,
    /// A memory copy (`copy_from_slice` between two buffers larger than the caches).
    pub memcpy: f64,
}

impl PrimitiveCosts {
    /// What the upload must do per GiB: seal, hash, CRC.
    pub fn real_work(&self) -> f64 {
        self.aes_256_gcm + self.blake3 + self.crc32
    }

    /// One JSON object, seconds per GiB.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "aes_256_gcm_s_per_gib": round(self.aes_256_gcm),
            "blake3_s_per_gib": round(self.blake3),
            "crc32_s_per_gib": round(self.crc32),
            "memcpy_s_per_gib": round(self.memcpy),
            "real_work_s_per_gib": round(self.real_work()),
        })
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Seconds per GiB of `work` over `buffer_bytes` bytes, run until `total` bytes were processed;
/// the best of `repeats` (the least disturbed by the rest of the machine).
fn best_s_per_gib(repeats: u32, total: usize, buffer_bytes: usize, mut work: impl FnMut()) -> f64 {
    let rounds = total.div_ceil(buffer_bytes).max(1);
    (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..rounds {
                work();
            }
            start.elapsed().as_secs_f64() * GIB / (rounds * buffer_bytes) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// Measures every primitive over `total` bytes (a buffer of 64 MiB reused), best of `repeats`.
pub fn measure(total: usize, repeats: u32) -> Result<PrimitiveCosts> {
    const BUFFER: usize = 64 << 20;
    let mut data = vec![0u8; BUFFER];
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes()[7];
    }
    let key = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &[7u8; 32])
            .ok()
            .context("an AES-256-GCM key")?,
    );
    let mut counter = 0u64;
    let aes = best_s_per_gib(repeats, total, BUFFER, || {
        for segment in data.chunks_mut(SEGMENT) {
            counter += 1;
            let mut nonce = [0u8; 12];
            nonce[4..].copy_from_slice(&counter.to_be_bytes());
            let tag = key.seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(counter.to_be_bytes()),
                segment,
            );
            black_box(tag.ok());
        }
    });
    let blake3 = best_s_per_gib(repeats, total, BUFFER, || {
        for segment in data.chunks(SEGMENT) {
            black_box(blake3::hash(segment));
        }
    });
    let crc32 = best_s_per_gib(repeats, total, BUFFER, || {
        black_box(crc32fast::hash(&data));
    });
    let mut copy = vec![0u8; BUFFER];
    let memcpy = best_s_per_gib(repeats, total, BUFFER, || {
        copy.copy_from_slice(black_box(&data));
        black_box(&copy);
    });
    Ok(PrimitiveCosts {
        aes_256_gcm: aes,
        blake3,
        crc32,
        memcpy,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_primitive_takes_a_positive_finite_time() -> Result<()> {
        let costs = measure(8 << 20, 1)?;
        for (name, cost) in [
            ("aes", costs.aes_256_gcm),
            ("blake3", costs.blake3),
            ("crc32", costs.crc32),
            ("memcpy", costs.memcpy),
        ] {
            assert!(cost.is_finite() && cost > 0.0, "{name}: {cost}");
        }
        let json = costs.to_json();
        assert!(
            json["real_work_s_per_gib"]
                .as_f64()
                .is_some_and(|w| w > 0.0)
        );
        Ok(())
    }
}
