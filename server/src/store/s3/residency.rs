//! EEA data residency: which S3 regions Ferry accepts, and the start-up check that the bucket
//! really lives in the configured one.
//!
//! The allowlist names regions whose data centres are inside the European Economic Area (EU
//! plus Iceland, Liechtenstein, Norway). Switzerland (`eu-central-2`) and the United Kingdom
//! (`eu-west-2`) are not in the EEA and are refused. Self-hosted stores with their own region
//! names (Garage, Ceph, MinIO) are added by the operator with `FERRY_EEA_REGIONS`, a
//! deliberate, logged statement that those machines stand in the EEA.

/// AWS regions in the EEA.
const AWS_EEA: &[&str] = &[
    "eu-central-1", // Frankfurt
    "eu-west-1",    // Ireland
    "eu-west-3",    // Paris
    "eu-north-1",   // Stockholm
    "eu-south-1",   // Milan
    "eu-south-2",   // Spain
];

/// Regions of EEA-only S3 providers, as their endpoints name them.
const PROVIDERS_EEA: &[&str] = &[
    "fr-par", "nl-ams", "pl-waw", // Scaleway
    "fsn1", "nbg1", "hel1", // Hetzner
    "gra", "sbg", "rbx", "waw", // OVHcloud
];

/// Why a store's location is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ResidencyError {
    /// The configured region is not on the EEA allowlist.
    #[error(
        "region {region:?} is not on the EEA allowlist ({allowed}); Ferry keeps files inside the \
         EEA. Use an EEA region, or, for a self-hosted store inside the EEA, name its region in \
         FERRY_EEA_REGIONS"
    )]
    RegionOutsideEea {
        /// The configured region.
        region: String,
        /// The regions accepted.
        allowed: String,
    },
    /// The bucket's actual location differs from the configured region.
    #[error(
        "bucket {bucket:?} is located in {actual:?}, but the configured region is {configured:?}; \
         Ferry refuses to start so that no file lands outside the region you chose"
    )]
    BucketElsewhere {
        /// The bucket.
        bucket: String,
        /// Its location as the store reports it.
        actual: String,
        /// The configured region.
        configured: String,
    },
}

/// The regions Ferry accepts: the built-in EEA list plus the operator's additions.
#[derive(Debug, Clone)]
pub struct EeaAllowlist {
    extra: Vec<String>,
}

impl EeaAllowlist {
    /// The built-in list plus `extra` (from `FERRY_EEA_REGIONS`, comma-separated).
    pub fn new(extra: &str) -> Self {
        EeaAllowlist {
            extra: extra
                .split(',')
                .map(str::trim)
                .filter(|r| !r.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Regions the operator added (logged at start-up).
    pub fn extra(&self) -> &[String] {
        &self.extra
    }

    fn allows(&self, region: &str) -> bool {
        AWS_EEA.contains(&region)
            || PROVIDERS_EEA.contains(&region)
            || self.extra.iter().any(|r| r == region)
    }

    /// Refuses a configured region outside the allowlist.
    pub fn check_region(&self, region: &str) -> Result<(), ResidencyError> {
        if self.allows(region) {
            return Ok(());
        }
        let mut allowed: Vec<&str> = AWS_EEA.iter().chain(PROVIDERS_EEA).copied().collect();
        allowed.extend(self.extra.iter().map(String::as_str));
        Err(ResidencyError::RegionOutsideEea {
            region: region.to_owned(),
            allowed: allowed.join(", "),
        })
    }
}

/// Compares the bucket's reported location with the configured region. S3 reports
/// `us-east-1` as an empty location constraint (and historically `EU` for `eu-west-1`).
pub fn check_bucket_location(
    bucket: &str,
    reported: Option<&str>,
    configured: &str,
) -> Result<(), ResidencyError> {
    let actual = match reported.map(str::trim) {
        None | Some("") => "us-east-1",
        Some("EU") => "eu-west-1",
        Some(other) => other,
    };
    if actual == configured {
        Ok(())
    } else {
        Err(ResidencyError::BucketElsewhere {
            bucket: bucket.to_owned(),
            actual: actual.to_owned(),
            configured: configured.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eea_regions_pass_and_others_are_refused_by_name() {
        let list = EeaAllowlist::new("");
        for region in ["eu-central-1", "eu-west-1", "eu-north-1", "fr-par"] {
            assert_eq!(list.check_region(region), Ok(()), "{region}");
        }
        for region in ["us-east-1", "eu-west-2", "eu-central-2", "garage", "EU", ""] {
            let err = list.check_region(region).expect_err(region).to_string();
            assert!(err.contains(&format!("{region:?}")), "{err}");
            assert!(err.contains("FERRY_EEA_REGIONS"), "{err}");
        }
    }

    #[test]
    fn operators_add_their_own_eea_regions() {
        let list = EeaAllowlist::new(" garage , dc-vienna,");
        assert_eq!(list.extra(), ["garage", "dc-vienna"]);
        assert_eq!(list.check_region("garage"), Ok(()));
        assert!(list.check_region("us-west-2").is_err());
    }

    #[test]
    fn bucket_location_must_match() {
        assert_eq!(
            check_bucket_location("b", Some("eu-central-1"), "eu-central-1"),
            Ok(())
        );
        assert_eq!(check_bucket_location("b", Some("EU"), "eu-west-1"), Ok(()));
        let err = check_bucket_location("b", None, "eu-central-1").expect_err("us-east-1");
        assert!(err.to_string().contains("\"us-east-1\""), "{err}");
        assert!(check_bucket_location("b", Some("eu-west-1"), "eu-central-1").is_err());
    }
}
