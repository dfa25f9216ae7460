//! Sizes, rates, durations, percentiles and rounding as the load generator reads and prints
//! them.

use std::time::Duration;

use anyhow::{Context, bail};

/// Parses a byte count: a plain number, or a number with a binary suffix (`K`, `KiB`, `M`,
/// `MiB`, `G`, `GiB`, `T`, `TiB`: powers of 1024) or a decimal one (`kB`, `KB`, `MB`, `GB`,
/// `TB`: powers of 1000). Fractions are allowed (`1.5GiB`). Case-insensitive.
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number
        .parse()
        .with_context(|| format!("not a size: {text:?}"))?;
    let multiplier: f64 = match suffix.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tib" => 1024.0_f64.powi(4),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        other => bail!("unknown size suffix {other:?} in {text:?}"),
    };
    let bytes = number * multiplier;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes < 2f64.powi(63)) {
        bail!("size out of range: {text:?}");
    }
    Ok(bytes.round() as u64)
}

/// Parses a duration: a number with `ms` or `s` (default `s`), e.g. `500ms`, `2s`, `1.5`.
pub fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let text = text.trim();
    let (number, scale) = if let Some(ms) = text.strip_suffix("ms") {
        (ms, 1e-3)
    } else if let Some(s) = text.strip_suffix('s') {
        (s, 1.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .with_context(|| format!("not a duration: {text:?}"))?;
    Duration::try_from_secs_f64(value * scale).with_context(|| format!("bad duration {text:?}"))
}

/// Parses a duration range `MIN-MAX` (for example `500ms-2s`), or one duration for both ends.
pub fn parse_duration_range(text: &str) -> anyhow::Result<(Duration, Duration)> {
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (parse_duration(low)?, parse_duration(high)?),
        None => {
            let d = parse_duration(text)?;
            (d, d)
        }
    };
    if low > high {
        bail!("empty range {text:?}: the minimum exceeds the maximum");
    }
    Ok((low, high))
}

/// Nearest-rank percentile `p` (0–100) of `sorted` (ascending), or `None` if empty.
pub fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A duration in milliseconds, rounded to microseconds.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Megabytes (10^6 bytes) per second, `0` for a zero duration.
pub fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        bytes as f64 / secs / 1e6
    } else {
        0.0
    }
}

/// KiB (as `/proc` reports memory) to MiB with one decimal: finer than RSS moves between runs,
/// coarse enough to read at a glance.
pub fn mib(kib: u64) -> f64 {
    (kib as f64 / 1024.0 * 10.0).round() / 10.0
}

/// Rounds to three decimals: seconds to the millisecond, MB/s to the kB/s, already finer than
/// the noise between runs, so the JSON lines stay short.
pub fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() -> anyhow::Result<()> {
        assert_eq!(parse_size("123")?, 123);
        assert_eq!(parse_size("8MiB")?, 8 << 20);
        assert_eq!(parse_size("8m")?, 8 << 20);
        assert_eq!(parse_size("256KiB")?, 256 << 10);
        assert_eq!(parse_size("1.5GiB")?, 3 << 29);
        assert_eq!(parse_size("2MB")?, 2_000_000);
        assert!(parse_size("3 parsecs").is_err());
        assert!(parse_size("").is_err());
        Ok(())
    }

    #[test]
    fn durations() -> anyhow::Result<()> {
        assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
        assert_eq!(parse_duration("2s")?, Duration::from_secs(2));
        assert_eq!(parse_duration("1.5")?, Duration::from_millis(1500));
        assert_eq!(
            parse_duration_range("500ms-2s")?,
            (Duration::from_millis(500), Duration::from_secs(2))
        );
        assert!(parse_duration_range("3s-1s").is_err());
        Ok(())
    }

    #[test]
    fn percentiles() {
        let v: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&v, 50.0), Some(Duration::from_millis(50)));
        assert_eq!(percentile(&v, 99.0), Some(Duration::from_millis(99)));
        assert_eq!(percentile(&v, 100.0), Some(Duration::from_millis(100)));
        assert_eq!(percentile(&v[..1], 99.0), Some(Duration::from_millis(1)));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn memory_is_binary_mebibytes() {
        assert_eq!(mib(1024), 1.0);
        assert_eq!(mib(1536), 1.5);
        assert_eq!(mib(100_000), 97.7);
    }
}
