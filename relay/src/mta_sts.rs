//! MTA-STS (RFC 8461). This module is the data: the `_mta-sts.<domain>` TXT record that announces a policy
//! and names its `id`, the policy document served at
//! `https://mta-sts.<domain>/.well-known/mta-sts.txt`, and whether an MX host is one the
//! policy allows, without I/O. [`fetch`] gets a policy over HTTPS (no redirects, 64 KB cap) and
//! [`discover`] decides, with the cache by `id`, which policy holds for a domain now.
//!
//! Parsing is strict where a lenient reading could weaken delivery: a record or document that
//! is not exactly what the RFC describes is an error, and the caller treats it as "no usable
//! policy" — which still requires STARTTLS with a WebPKI-valid certificate (RELAY.md), never
//! plaintext.

pub mod discover;
pub mod fetch;

/// Longest `max_age` a policy may ask for (RFC 8461 §3.2: about a year).
pub const MAX_AGE_LIMIT: u64 = 31_557_600;
/// Largest policy document accepted (RFC 8461 §3.3).
pub const MAX_POLICY_BYTES: usize = 64 * 1024;

/// Why a record or policy is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MtaStsError {
    /// Several TXT records announce MTA-STS for one domain (RFC 8461 §3.1: then none counts).
    #[error("more than one MTA-STS TXT record")]
    SeveralRecords,
    /// The TXT record is not `v=STSv1; id=…`.
    #[error("the MTA-STS TXT record is malformed: {0}")]
    Record(&'static str),
    /// The policy document is larger than [`MAX_POLICY_BYTES`].
    #[error("the policy is larger than {MAX_POLICY_BYTES} bytes")]
    TooLarge,
    /// The policy document breaks the format; says how.
    #[error("the policy is malformed: {0}")]
    Policy(&'static str),
}

/// The announcement in DNS: its `id` changes whenever the policy does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// 1–32 letters and digits.
    pub id: String,
}

/// Reads the TXT records of `_mta-sts.<domain>` (each record's strings already joined).
/// Records that do not start with `v=STSv1` are someone else's and ignored; `Ok(None)`: the
/// domain announces no policy.
///
/// # Errors
/// `SeveralRecords`, or `Record` for an announcement that is malformed.
pub fn parse_record(txt_records: &[String]) -> Result<Option<Record>, MtaStsError> {
    let mut ours = txt_records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"));
    let Some(record) = ours.next() else {
        return Ok(None);
    };
    if ours.next().is_some() {
        return Err(MtaStsError::SeveralRecords);
    }
    let mut fields = record.split(';').map(str::trim).filter(|f| !f.is_empty());
    if fields.next() != Some("v=STSv1") {
        return Err(MtaStsError::Record("v=STSv1 must come first"));
    }
    let mut id = None;
    for field in fields {
        let (key, value) = field
            .split_once('=')
            .ok_or(MtaStsError::Record("a field without '='"))?;
        if key == "id" {
            if id.is_some() {
                return Err(MtaStsError::Record("two ids"));
            }
            let valid =
                (1..=32).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric());
            if !valid {
                return Err(MtaStsError::Record("id must be 1-32 letters and digits"));
            }
            id = Some(value.to_owned());
        }
    }
    let id = id.ok_or(MtaStsError::Record("no id"))?;
    Ok(Some(Record { id }))
}

/// What a policy asks of senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Deliver only to listed MX hosts, over TLS with a valid certificate.
    Enforce,
    /// Report failures, but do not block delivery on them.
    Testing,
    /// The domain withdrew its policy.
    None,
}

/// A parsed policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Its mode.
    pub mode: Mode,
    /// Seconds it may be cached (at most [`MAX_AGE_LIMIT`]).
    pub max_age: u64,
    /// MX patterns, lower case: `mail.example.com` or `*.example.com` (one label).
    pub mx: Vec<String>,
}

/// Reads a policy document (the body of a 200 response).
///
/// # Errors
/// `TooLarge`, or `Policy` naming what is wrong: not UTF-8, `version` missing or not
/// `STSv1`, `mode` or `max_age` missing, repeated or invalid, no `mx` while the mode is not
/// `none`, or an `mx` that is not a host name or a `*.` pattern.
pub fn parse_policy(body: &[u8]) -> Result<Policy, MtaStsError> {
    if body.len() > MAX_POLICY_BYTES {
        return Err(MtaStsError::TooLarge);
    }
    let text = std::str::from_utf8(body).map_err(|_| MtaStsError::Policy("not UTF-8"))?;
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once(':')
            .ok_or(MtaStsError::Policy("a line without ':'"))?;
        let value = value.trim();
        match key.trim() {
            "version" => set_once(&mut version, value, "version twice")?,
            "mode" => set_once(&mut mode, value, "mode twice")?,
            "max_age" => set_once(&mut max_age, value, "max_age twice")?,
            "mx" => mx.push(mx_pattern(value)?),
            _ => {} // RFC 8461 §3.2: unknown fields are ignored
        }
    }
    if version != Some("STSv1") {
        return Err(MtaStsError::Policy("version must be STSv1"));
    }
    let mode = match mode {
        Some("enforce") => Mode::Enforce,
        Some("testing") => Mode::Testing,
        Some("none") => Mode::None,
        _ => return Err(MtaStsError::Policy("mode must be enforce, testing or none")),
    };
    let max_age = max_age
        .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or(MtaStsError::Policy("max_age must be a number of seconds"))?
        .min(MAX_AGE_LIMIT);
    if mx.is_empty() && mode != Mode::None {
        return Err(MtaStsError::Policy("no mx"));
    }
    Ok(Policy { mode, max_age, mx })
}

/// A field that may appear once; `twice` is the error if it already did.
fn set_once<'a>(
    slot: &mut Option<&'a str>,
    value: &'a str,
    twice: &'static str,
) -> Result<(), MtaStsError> {
    match slot.replace(value) {
        Some(_) => Err(MtaStsError::Policy(twice)),
        None => Ok(()),
    }
}

/// An `mx` value, checked and lower-cased.
fn mx_pattern(value: &str) -> Result<String, MtaStsError> {
    let host = value.strip_prefix("*.").unwrap_or(value);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        return Err(MtaStsError::Policy("an mx is not a host name or *.pattern"));
    }
    Ok(value.to_ascii_lowercase())
}

impl Policy {
    /// Whether the policy lists `mx_host` (an MX record's target; case and a trailing dot do
    /// not matter). `*.example.com` covers exactly one more label: `mail.example.com`, not
    /// `example.com` and not `a.mail.example.com` (RFC 8461 §4.1).
    pub fn allows(&self, mx_host: &str) -> bool {
        let host = mx_host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }
}

#[cfg(test)]
mod tests;
