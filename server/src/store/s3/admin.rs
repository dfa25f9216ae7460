//! The operator's bucket tools: the safety-net lifecycle rules (`ferry store lifecycle`) and
//! a report of reachability, region and rules (`ferry store check`).
//!
//! The rules are a net under Ferry's own expiry job, not a replacement: objects older than
//! the longest retention any tenant may set (plus a day) are expired by the store even if
//! every Ferry instance is down, and multipart uploads abandoned by a crash are aborted.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration,
};

use super::S3Store;
use super::client::{error_code, remote};
use crate::policy::MAX_RETENTION_DAYS;
use crate::store::StoreError;

/// Rule id of the expiry safety net.
pub const EXPIRE_RULE_ID: &str = "ferry-expire-after-max-retention";
/// Rule id of the abandoned-multipart cleanup.
pub const ABORT_RULE_ID: &str = "ferry-abort-incomplete-multipart";
/// Rule id of the old-version cleanup, installed on versioned buckets only.
pub const NONCURRENT_RULE_ID: &str = "ferry-expire-noncurrent-versions";
/// Days a versioned bucket keeps the old version of a deleted or replaced object.
pub const NONCURRENT_AFTER_DAYS: i32 = 1;
/// Days after which the store aborts an unfinished multipart upload. Ferry abandons an
/// unfinished upload 24 h after its last byte, so a week is ample.
pub const ABORT_AFTER_DAYS: i32 = 7;

/// Days after which the store expires any object: the longest retention plus one day.
pub fn expire_after_days() -> i32 {
    i32::try_from(MAX_RETENTION_DAYS).unwrap_or(i32::MAX - 1) + 1
}

/// What `ferry store check` found: each line says whether it is as it should be.
#[derive(Debug, Default)]
pub struct StoreReport {
    /// `(ok, text)` per finding, in order.
    pub findings: Vec<(bool, String)>,
}

impl StoreReport {
    fn add(&mut self, ok: bool, text: impl Into<String>) {
        self.findings.push((ok, text.into()));
    }

    /// Whether every finding is as it should be.
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|(ok, _)| *ok)
    }
}

/// Ferry's rules for a bucket; `versioned` adds the old-version cleanup (a versioned bucket
/// keeps a deleted object's ciphertext as a noncurrent version).
fn ferry_rules(versioned: bool) -> Result<Vec<LifecycleRule>, StoreError> {
    let build = |e: aws_sdk_s3::error::BuildError| StoreError::State(e.to_string());
    let everything = || LifecycleRuleFilter::builder().prefix("").build();
    let mut rules = vec![
        LifecycleRule::builder()
            .id(EXPIRE_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(everything())
            .expiration(
                LifecycleExpiration::builder()
                    .days(expire_after_days())
                    .build(),
            )
            .build()
            .map_err(build)?,
        LifecycleRule::builder()
            .id(ABORT_RULE_ID)
            .status(ExpirationStatus::Enabled)
            .filter(everything())
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(ABORT_AFTER_DAYS)
                    .build(),
            )
            .build()
            .map_err(build)?,
    ];
    if versioned {
        rules.push(
            LifecycleRule::builder()
                .id(NONCURRENT_RULE_ID)
                .status(ExpirationStatus::Enabled)
                .filter(everything())
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(NONCURRENT_AFTER_DAYS)
                        .build(),
                )
                .build()
                .map_err(build)?,
        );
    }
    Ok(rules)
}

/// "yes", or "NO (`fix`)".
fn verdict(ok: bool, fix: &str) -> String {
    if ok {
        "yes".to_owned()
    } else {
        format!("NO ({fix})")
    }
}

/// Whether a bucket keeps old versions, by its versioning status.
fn keeps_versions(status: Option<&BucketVersioningStatus>) -> bool {
    // Suspended still keeps the versions made while it was enabled.
    matches!(
        status,
        Some(BucketVersioningStatus::Enabled | BucketVersioningStatus::Suspended)
    )
}

impl S3Store {
    /// The bucket's lifecycle rules (none is not an error).
    async fn lifecycle_rules(&self) -> Result<Vec<LifecycleRule>, StoreError> {
        let bucket = &self.location().bucket;
        match self
            .client()
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.rules().to_vec()),
            Err(e) if error_code(&e) == Some("NoSuchLifecycleConfiguration") => Ok(Vec::new()),
            Err(e) => Err(remote(
                format_args!("GetBucketLifecycleConfiguration {bucket}"),
                e,
            )),
        }
    }

    /// Whether the bucket keeps old versions of deleted objects (versioning enabled, or
    /// suspended after being enabled): then a deleted object's ciphertext stays as a
    /// noncurrent version. Stores without versioning answer "not enabled".
    pub async fn is_versioned(&self) -> Result<bool, StoreError> {
        let bucket = &self.location().bucket;
        match self
            .client()
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(answer) => Ok(keeps_versions(answer.status())),
            // A store without versioning at all keeps no old versions either.
            Err(e) if error_code(&e) == Some("NotImplemented") => Ok(false),
            Err(e) => Err(remote(format_args!("GetBucketVersioning {bucket}"), e)),
        }
    }

    /// Installs (or updates) Ferry's rules (two, three on a versioned bucket), keeping any
    /// other rules the bucket has.
    pub async fn install_lifecycle(&self) -> Result<(), StoreError> {
        let bucket = &self.location().bucket;
        let versioned = self.is_versioned().await?;
        let mut rules: Vec<LifecycleRule> = self
            .lifecycle_rules()
            .await?
            .into_iter()
            .filter(|r| {
                !matches!(
                    r.id(),
                    Some(EXPIRE_RULE_ID | ABORT_RULE_ID | NONCURRENT_RULE_ID)
                )
            })
            .collect();
        rules.extend(ferry_rules(versioned)?);
        let configuration = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| StoreError::State(e.to_string()))?;
        self.client()
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(configuration)
            .send()
            .await
            .map_err(|e| remote(format_args!("PutBucketLifecycleConfiguration {bucket}"), e))?;
        Ok(())
    }

    /// Checks reachability, region and the safety-net rules.
    pub async fn check(&self) -> StoreReport {
        let mut report = StoreReport::default();
        let location = self.location();
        report.add(
            true,
            format!(
                "region {} is on the EEA allowlist; endpoint {}",
                location.region,
                location.endpoint.as_deref().unwrap_or("AWS")
            ),
        );
        match self.check_location().await {
            Ok(()) => report.add(
                true,
                format!(
                    "bucket {} is reachable and located in {}",
                    location.bucket, location.region
                ),
            ),
            Err(e) => {
                report.add(false, e.to_string());
                return report;
            }
        }
        let rules = match self.lifecycle_rules().await {
            Ok(rules) => rules,
            Err(e) => {
                report.add(false, format!("lifecycle rules unreadable: {e}"));
                Vec::new()
            }
        };
        let enabled = || {
            rules
                .iter()
                .filter(|r| r.status() == &ExpirationStatus::Enabled)
        };
        let expire = enabled().any(|r| {
            r.expiration()
                .and_then(LifecycleExpiration::days)
                .is_some_and(|d| d <= expire_after_days())
        });
        report.add(
            expire,
            format!(
                "lifecycle: objects expire after at most {} days: {}",
                expire_after_days(),
                verdict(expire, "run `ferry store lifecycle`")
            ),
        );
        let abort = enabled().any(|r| {
            r.abort_incomplete_multipart_upload()
                .and_then(AbortIncompleteMultipartUpload::days_after_initiation)
                .is_some_and(|d| d <= ABORT_AFTER_DAYS)
        });
        report.add(
            abort,
            format!(
                "lifecycle: incomplete multipart uploads are aborted after at most \
                 {ABORT_AFTER_DAYS} days: {}",
                verdict(abort, "run `ferry store lifecycle`")
            ),
        );
        match self.is_versioned().await {
            Ok(false) => report.add(
                true,
                "versioning: off (a deleted object leaves no old version behind)",
            ),
            Ok(true) => {
                let cleaned = enabled().any(|r| {
                    r.noncurrent_version_expiration()
                        .and_then(NoncurrentVersionExpiration::noncurrent_days)
                        .is_some_and(|d| d <= NONCURRENT_AFTER_DAYS)
                });
                report.add(
                    cleaned,
                    format!(
                        "versioning: ON — a deleted file's ciphertext stays as an old version \
                         (its key is shredded, but the bytes remain); old versions expire after \
                         {NONCURRENT_AFTER_DAYS} day: {}",
                        verdict(
                            cleaned,
                            "run `ferry store lifecycle`, or turn versioning off"
                        )
                    ),
                );
            }
            Err(e) => report.add(false, format!("versioning status unreadable: {e}")),
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_versioned_bucket_gets_the_old_version_rule() -> Result<(), StoreError> {
        let plain = ferry_rules(false)?;
        assert!(
            plain
                .iter()
                .all(|r| r.noncurrent_version_expiration().is_none())
        );
        let versioned = ferry_rules(true)?;
        let rule = versioned
            .iter()
            .find(|r| r.id() == Some(NONCURRENT_RULE_ID))
            .ok_or_else(|| StoreError::State("no noncurrent rule".into()))?;
        assert_eq!(
            rule.noncurrent_version_expiration()
                .and_then(NoncurrentVersionExpiration::noncurrent_days),
            Some(NONCURRENT_AFTER_DAYS)
        );
        assert!(keeps_versions(Some(&BucketVersioningStatus::Suspended)));
        assert!(!keeps_versions(None));
        Ok(())
    }
}
