//! `Range` / `If-Range` for single byte ranges (RFC 9110 §14).

/// What to send for a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// The whole representation (no range, an ignored range, or a stale `If-Range`).
    Full,
    /// Bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416: the range lies outside the representation.
    Unsatisfiable,
}

/// Decides how to answer `range` given `if_range` and the current strong `etag`.
/// Syntactically invalid or multi-part ranges are ignored (the whole file is sent), which
/// RFC 9110 permits and every client handles.
pub fn decide(range: Option<&str>, if_range: Option<&str>, etag: &str, len: u64) -> RangeDecision {
    let Some(range) = range else {
        return RangeDecision::Full;
    };
    if let Some(validator) = if_range
        && validator.trim() != etag
    {
        return RangeDecision::Full;
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return RangeDecision::Full;
    };
    if spec.contains(',') {
        return RangeDecision::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeDecision::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        let Ok(suffix) = last.parse::<u64>() else {
            return RangeDecision::Full;
        };
        if suffix == 0 || len == 0 {
            return RangeDecision::Unsatisfiable;
        }
        return RangeDecision::Partial {
            start: len.saturating_sub(suffix),
            end: len - 1,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeDecision::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => end,
            _ => return RangeDecision::Full,
        }
    };
    if start >= len {
        return RangeDecision::Unsatisfiable;
    }
    RangeDecision::Partial {
        start,
        end: end.min(len - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::RangeDecision::{Full, Partial, Unsatisfiable};
    use super::decide;

    const TAG: &str = "\"abc\"";

    #[test]
    fn single_ranges() {
        assert_eq!(decide(None, None, TAG, 10), Full);
        assert_eq!(
            decide(Some("bytes=0-0"), None, TAG, 10),
            Partial { start: 0, end: 0 }
        );
        assert_eq!(
            decide(Some("bytes=9-"), None, TAG, 10),
            Partial { start: 9, end: 9 }
        );
        assert_eq!(
            decide(Some("bytes=3-100"), None, TAG, 10),
            Partial { start: 3, end: 9 }
        );
        assert_eq!(
            decide(Some("bytes=-4"), None, TAG, 10),
            Partial { start: 6, end: 9 }
        );
        assert_eq!(
            decide(Some("bytes=-40"), None, TAG, 10),
            Partial { start: 0, end: 9 }
        );
    }

    #[test]
    fn unsatisfiable_and_ignored_ranges() {
        assert_eq!(decide(Some("bytes=10-"), None, TAG, 10), Unsatisfiable);
        assert_eq!(decide(Some("bytes=-0"), None, TAG, 10), Unsatisfiable);
        assert_eq!(decide(Some("bytes=0-0"), None, TAG, 0), Unsatisfiable);
        assert_eq!(decide(Some("bytes=5-2"), None, TAG, 10), Full);
        assert_eq!(decide(Some("items=0-1"), None, TAG, 10), Full);
        assert_eq!(decide(Some("bytes=0-1,3-4"), None, TAG, 10), Full);
    }

    #[test]
    fn if_range_with_a_stale_validator_sends_everything() {
        assert_eq!(
            decide(Some("bytes=0-1"), Some(TAG), TAG, 10),
            Partial { start: 0, end: 1 }
        );
        assert_eq!(decide(Some("bytes=0-1"), Some("\"old\""), TAG, 10), Full);
        assert_eq!(
            decide(
                Some("bytes=0-1"),
                Some("Wed, 21 Oct 2015 07:28:00 GMT"),
                TAG,
                10
            ),
            Full
        );
    }
}
