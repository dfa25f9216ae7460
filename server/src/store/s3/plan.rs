//! How an upload's object is cut into S3 multipart parts.
//!
//! Every part but the last holds exactly `k` stored segments, with
//! `k = min(max(1024, ⌈n / 10000⌉), 81885)` for an upload of `n` segments (DESIGN.md, "Object
//! storage"): 64 MiB parts normally, never more than 10,000 parts, never a part over S3's
//! 5 GiB limit. Equal parts keep stores that refuse unequal parts happy (Cloudflare R2), and
//! because a part is only ever uploaded full, an interrupted PATCH can never burn a part number
//! (the failure behind tusd#1247). The plan is fixed at creation from the largest size the
//! upload may reach, so it never changes while the upload grows.

use crate::crypto::segment::{STORED_SEGMENT_MAX, segment_count};

/// Fewest segments in a part: 64 MiB of plaintext.
pub const MIN_PART_SEGMENTS: u64 = 1024;
/// Most segments in a part: 81,885 × 65,564 B stays under S3's 5 GiB part limit.
pub const MAX_PART_SEGMENTS: u64 = 81_885;
/// S3's limit on parts per multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's largest part (5 GiB).
pub const MAX_PART_BYTES: u64 = 5 << 30;
/// S3's smallest part but the last (5 MiB).
pub const MIN_PART_BYTES: u64 = 5 << 20;

/// The upload cannot fit in 10,000 parts of at most 5 GiB.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{plaintext_len} bytes exceed the largest object the store can hold ({max} bytes)")]
pub struct TooLarge {
    /// The size asked for.
    pub plaintext_len: u64,
    /// The largest plaintext length any plan can hold.
    pub max: u64,
}

/// The part size of one upload, in stored segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    segments_per_part: u64,
}

impl PartPlan {
    /// The plan for an upload that may reach `max_plaintext_len` bytes (its `Upload-Length`,
    /// or under deferred length the largest size it is allowed to reach).
    pub fn for_len(max_plaintext_len: u64) -> Result<Self, TooLarge> {
        let segments = segment_count(max_plaintext_len);
        let k = segments
            .div_ceil(MAX_PARTS)
            .clamp(MIN_PART_SEGMENTS, MAX_PART_SEGMENTS);
        if segments.div_ceil(k) > MAX_PARTS {
            return Err(TooLarge {
                plaintext_len: max_plaintext_len,
                max: Self::max_plaintext_len(),
            });
        }
        Ok(PartPlan {
            segments_per_part: k,
        })
    }

    /// A plan restored from the database.
    pub fn from_segments_per_part(k: u64) -> Option<Self> {
        (MIN_PART_SEGMENTS..=MAX_PART_SEGMENTS)
            .contains(&k)
            .then_some(PartPlan {
                segments_per_part: k,
            })
    }

    /// The largest plaintext any plan holds: 10,000 parts of 81,885 full segments (≈ 48.8 TiB),
    /// the last of which must end with the short final segment.
    pub fn max_plaintext_len() -> u64 {
        MAX_PARTS * MAX_PART_SEGMENTS * crate::crypto::segment::SEGMENT_PLAINTEXT as u64 - 1
    }

    /// Stored segments per part (all parts but the last).
    pub fn segments_per_part(&self) -> u64 {
        self.segments_per_part
    }

    /// Bytes of a full part.
    pub fn part_bytes(&self) -> u64 {
        self.segments_per_part * STORED_SEGMENT_MAX as u64
    }

    /// The 1-based part number that holds stored segment `index`.
    pub fn part_number(&self, index: u64) -> u64 {
        index / self.segments_per_part + 1
    }

    /// Full parts among the first `segments` stored segments.
    pub fn full_parts(&self, segments: u64) -> u64 {
        segments / self.segments_per_part
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::segment::{SEGMENT_PLAINTEXT, stored_len};

    const TIB: u64 = 1 << 40;

    /// Sizes of every part of a complete object of `len` plaintext bytes.
    fn part_sizes(plan: PartPlan, len: u64) -> Vec<u64> {
        let total = stored_len(len);
        let full = plan.part_bytes();
        let mut sizes = vec![full; (total / full) as usize];
        if !total.is_multiple_of(full) {
            sizes.push(total % full);
        }
        sizes
    }

    fn assert_within_s3_bounds(len: u64) {
        let plan = PartPlan::for_len(len).expect("fits");
        let sizes = part_sizes(plan, len);
        assert!(
            sizes.len() as u64 <= MAX_PARTS,
            "{len}: {} parts",
            sizes.len()
        );
        let (last, rest) = sizes.split_last().expect("at least one part");
        for size in rest {
            assert!(
                (MIN_PART_BYTES..=MAX_PART_BYTES).contains(size),
                "{len}: part of {size}"
            );
            assert_eq!(
                *size,
                plan.part_bytes(),
                "{len}: every part but the last is full"
            );
        }
        assert!(
            *last <= MAX_PART_BYTES && *last > 0,
            "{len}: last part {last}"
        );
    }

    #[test]
    fn a_five_tib_upload_fits_in_ten_thousand_parts() {
        let plan = PartPlan::for_len(5 * TIB).expect("5 TiB fits");
        assert_eq!(plan.segments_per_part(), 8389);
        assert!(plan.part_bytes() < MAX_PART_BYTES);
        assert_eq!(part_sizes(plan, 5 * TIB).len(), 10_000);
        assert_within_s3_bounds(5 * TIB);
    }

    #[test]
    fn ordinary_uploads_use_64_mib_parts() {
        for len in [0, 1, 65_536, 100 << 20, 1 << 30, 600 << 30] {
            let plan = PartPlan::for_len(len).expect("fits");
            assert_eq!(plan.segments_per_part(), MIN_PART_SEGMENTS, "{len}");
            assert_eq!(plan.part_bytes(), 1024 * 65_564);
            assert_within_s3_bounds(len);
        }
    }

    #[test]
    fn every_size_up_to_the_ceiling_stays_within_bounds() {
        let max = PartPlan::max_plaintext_len();
        assert_eq!(max, 53_664_153_599_999); // ≈ 48.8 TiB
        for len in [TIB, 10 * TIB, 48 * TIB, max - 1, max] {
            assert_within_s3_bounds(len);
        }
        let plan = PartPlan::for_len(max).expect("the ceiling fits");
        assert_eq!(plan.segments_per_part(), MAX_PART_SEGMENTS);
        assert!(plan.part_bytes() <= MAX_PART_BYTES);
        let err = PartPlan::for_len(max + 1).expect_err("past the ceiling");
        assert_eq!(err.max, max);
        assert!(PartPlan::for_len(u64::MAX).is_err());
    }

    #[test]
    fn part_numbers_follow_segments() {
        let plan = PartPlan::for_len(1 << 30).expect("fits");
        assert_eq!(plan.part_number(0), 1);
        assert_eq!(plan.part_number(1023), 1);
        assert_eq!(plan.part_number(1024), 2);
        assert_eq!(plan.full_parts(2047), 1);
        assert_eq!(plan.full_parts(2048), 2);
        assert_eq!(PartPlan::from_segments_per_part(1023), None);
        assert_eq!(PartPlan::from_segments_per_part(1024), Some(plan));
        assert!(SEGMENT_PLAINTEXT as u64 * 1024 == 64 << 20);
    }
}
