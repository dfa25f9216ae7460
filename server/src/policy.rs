//! Tenant policy: how long shares live and what senders may do, set by the tenant's admins
//! within Ferry's own limits (no file lives longer than 90 days).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Retention when the sender asks for none and the tenant's policy does not say.
pub const DEFAULT_RETENTION_DAYS: u32 = 14;
/// The hard ceiling: no file lives longer than this.
pub const MAX_RETENTION_DAYS: u32 = 90;
/// How long an unfinished upload lives after its last byte.
pub const UNFINISHED_TTL: time::Duration = time::Duration::hours(24);

/// Most recipient domains one policy may list.
const MAX_DOMAINS: usize = 1000;

/// The largest download limit a policy may set (more is no limit in practice; leave it out).
pub const MAX_DOWNLOADS_LIMIT: u32 = 1_000_000;

/// The longest the relay may keep retrying a recipient it cannot reach securely, in hours: a
/// week (RFC 5321 §4.5.4.1 suggests giving up after 4–5 days).
pub const MAX_RELAY_HOLD_HOURS: u32 = 168;

/// A tenant's policy, as stored and as the admin API shows it. Unknown fields are refused
/// (`additionalProperties: false` in the OpenAPI schema), so a limit Ferry does not enforce
/// yet can never be stored as if it were.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Retention of a share whose sender asks for none, in days (1–`max_days`).
    #[schema(minimum = 1, maximum = 90, example = 14)]
    pub default_days: u32,
    /// The longest retention a sender may ask for, in days (1–90).
    #[schema(minimum = 1, maximum = 90, example = 90)]
    pub max_days: u32,
    /// The largest upload, in bytes (at most the store's limit); `None`: only the store's own
    /// limit.
    #[schema(minimum = 1)]
    pub max_upload_bytes: Option<u64>,
    /// Domains recipients must be at, matched exactly (stored lowercase, sorted, without
    /// duplicates); `None`: any.
    #[schema(max_items = 1000, example = json!(["klinik.de"]))]
    pub allowed_recipient_domains: Option<Vec<String>>,
    /// How many times each file of a share may be downloaded (a download: a response that
    /// serves the file's first byte; resuming further on does not count), 1–1,000,000;
    /// `None`: no limit.
    #[schema(minimum = 1, maximum = 1_000_000)]
    pub max_downloads_per_file: Option<u32>,
    /// How long the relay retries a recipient it cannot reach securely before the sender gets
    /// a delivery status report, in hours (1–168); `None`: the deployment's
    /// (`FERRY_RELAY_HOLD_SECONDS`, 2 days).
    #[schema(minimum = 1, maximum = 168)]
    #[serde(default)]
    pub relay_hold_hours: Option<u32>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default_days: DEFAULT_RETENTION_DAYS,
            max_days: MAX_RETENTION_DAYS,
            max_upload_bytes: None,
            allowed_recipient_domains: None,
            max_downloads_per_file: None,
            relay_hold_hours: None,
        }
    }
}

/// Why a policy was refused; the message names the rule and its limit.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidPolicy(pub String);

impl Policy {
    /// Checks the policy against Ferry's limits (`store_max`: the largest upload the store can
    /// hold) and normalises its domains (lowercase, sorted, no duplicates).
    pub fn validated(mut self, store_max: u64) -> Result<Policy, InvalidPolicy> {
        if !(1..=MAX_RETENTION_DAYS).contains(&self.max_days) {
            return Err(InvalidPolicy(format!(
                "max_days must be between 1 and {MAX_RETENTION_DAYS} (Ferry keeps no file \
                 longer than {MAX_RETENTION_DAYS} days); got {}",
                self.max_days
            )));
        }
        if !(1..=self.max_days).contains(&self.default_days) {
            return Err(InvalidPolicy(format!(
                "default_days must be between 1 and max_days ({}); got {}",
                self.max_days, self.default_days
            )));
        }
        if let Some(max) = self.max_upload_bytes
            && !(1..=store_max).contains(&max)
        {
            return Err(InvalidPolicy(format!(
                "max_upload_bytes must be between 1 and {store_max} (the store's limit); got {max}"
            )));
        }
        if let Some(limit) = self.max_downloads_per_file
            && !(1..=MAX_DOWNLOADS_LIMIT).contains(&limit)
        {
            return Err(InvalidPolicy(format!(
                "max_downloads_per_file must be between 1 and {MAX_DOWNLOADS_LIMIT} (leave it \
                 out for no limit); got {limit}"
            )));
        }
        if let Some(hours) = self.relay_hold_hours
            && !(1..=MAX_RELAY_HOLD_HOURS).contains(&hours)
        {
            return Err(InvalidPolicy(format!(
                "relay_hold_hours must be between 1 and {MAX_RELAY_HOLD_HOURS} (leave it out for \
                 the deployment's); got {hours}"
            )));
        }
        if let Some(domains) = self.allowed_recipient_domains.as_mut() {
            if domains.len() > MAX_DOMAINS {
                return Err(InvalidPolicy(format!(
                    "allowed_recipient_domains may list at most {MAX_DOMAINS} domains"
                )));
            }
            for domain in domains.iter_mut() {
                *domain = domain.trim().to_ascii_lowercase();
                if !valid_domain(domain) {
                    return Err(InvalidPolicy(format!(
                        "{domain:?} in allowed_recipient_domains is not a domain name"
                    )));
                }
            }
            domains.sort();
            domains.dedup();
        }
        Ok(self)
    }

    /// The retention of a share whose sender asked for `requested` days (at least 1): the
    /// policy's default if none, never more than its maximum.
    pub fn retention_days(&self, requested: Option<u32>) -> u32 {
        requested
            .unwrap_or(self.default_days)
            .min(self.max_days)
            .max(1)
    }

    /// Whether mail may go to `address` (already checked to be an address).
    pub fn allows_recipient(&self, address: &str) -> bool {
        let Some(domains) = &self.allowed_recipient_domains else {
            return true;
        };
        address
            .rsplit_once('@')
            .is_some_and(|(_, domain)| domains.iter().any(|d| d.eq_ignore_ascii_case(domain)))
    }
}

/// Whether `domain` (lower case) is a host name: labels of letters, digits and inner hyphens,
/// at least two. The one rule for recipient domains and the relay's sender domains.
pub(crate) fn valid_domain(domain: &str) -> bool {
    domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced_and_named() {
        let store_max = 1 << 40;
        let too_long = Policy {
            max_days: 91,
            ..Policy::default()
        };
        let refused = too_long
            .validated(store_max)
            .err()
            .map(|e| e.0)
            .unwrap_or_default();
        assert!(refused.contains("90"), "{refused}");
        let default_above_max = Policy {
            default_days: 30,
            max_days: 7,
            ..Policy::default()
        };
        assert!(default_above_max.validated(store_max).is_err());
        let too_big = Policy {
            max_upload_bytes: Some(store_max + 1),
            ..Policy::default()
        };
        assert!(too_big.validated(store_max).is_err());
        let bad_domain = Policy {
            allowed_recipient_domains: Some(vec!["not a domain".into()]),
            ..Policy::default()
        };
        assert!(bad_domain.validated(store_max).is_err());
        let no_downloads = Policy {
            max_downloads_per_file: Some(0),
            ..Policy::default()
        };
        assert!(no_downloads.validated(store_max).is_err());
        let too_many = Policy {
            max_downloads_per_file: Some(MAX_DOWNLOADS_LIMIT + 1),
            ..Policy::default()
        };
        assert!(too_many.validated(store_max).is_err());
        for hours in [0, MAX_RELAY_HOLD_HOURS + 1] {
            let hold = Policy {
                relay_hold_hours: Some(hours),
                ..Policy::default()
            };
            assert!(hold.validated(store_max).is_err(), "{hours}");
        }
    }

    /// The OpenAPI schema's literal bounds (utoipa takes no constants) are Ferry's limits.
    #[test]
    fn the_schema_states_the_limits() -> Result<(), serde_json::Error> {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Policy::schema())?;
        let days = u64::from(MAX_RETENTION_DAYS);
        for field in ["default_days", "max_days"] {
            assert_eq!(schema["properties"][field]["maximum"], days, "{field}");
            assert_eq!(schema["properties"][field]["minimum"], 1, "{field}");
        }
        assert_eq!(
            schema["properties"]["allowed_recipient_domains"]["maxItems"], MAX_DOMAINS,
            "{schema}"
        );
        assert_eq!(
            schema["properties"]["max_downloads_per_file"]["maximum"], MAX_DOWNLOADS_LIMIT,
            "{schema}"
        );
        assert_eq!(
            schema["properties"]["relay_hold_hours"]["maximum"], MAX_RELAY_HOLD_HOURS,
            "{schema}"
        );
        assert_eq!(schema["additionalProperties"], false, "{schema}");
        Ok(())
    }

    #[test]
    fn retention_is_clamped_and_domains_normalised() -> Result<(), InvalidPolicy> {
        let policy = Policy {
            default_days: 7,
            max_days: 30,
            max_upload_bytes: Some(1000),
            allowed_recipient_domains: Some(vec![" Klinik.DE".into(), "klinik.de".into()]),
            max_downloads_per_file: Some(3),
            relay_hold_hours: Some(4),
        }
        .validated(1 << 40)?;
        assert_eq!(policy.retention_days(None), 7);
        assert_eq!(policy.retention_days(Some(365)), 30);
        assert_eq!(policy.retention_days(Some(3)), 3);
        assert_eq!(
            policy.allowed_recipient_domains,
            Some(vec!["klinik.de".to_owned()])
        );
        assert!(policy.allows_recipient("dr.x@KLINIK.de"));
        assert!(!policy.allows_recipient("x@klinik.de.evil.eu"));
        Ok(())
    }
}
