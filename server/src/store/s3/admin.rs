//! The operator's bucket tools: the safety-net lifecycle rules (`ferry store lifecycle`) and
//! a report of reachability, region and rules (`ferry store check`).
//!
//! The rules are a net under Ferry's own expiry job, not a replacement: objects older than
//! the longest retention any tenant may set (plus a day) are expired by the store even if
//! every Ferry instance is down, and multipart uploads abandoned by a crash are aborted.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
};

use super::S3Store;
use super::client::{error_code, remote};
use crate::shares::MAX_RETENTION_DAYS;
use crate::store::StoreError;

/// Rule id of the expiry safety net.
pub const EXPIRE_RULE_ID: &str = "ferry-expire-after-max-retention";
/// Rule id of the abandoned-multipart cleanup.
pub const ABORT_RULE_ID: &str = "ferry-abort-incomplete-multipart";
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

fn ferry_rules() -> Result<Vec<LifecycleRule>, StoreError> {
    let build = |e: aws_sdk_s3::error::BuildError| StoreError::State(e.to_string());
    let everything = || LifecycleRuleFilter::builder().prefix("").build();
    Ok(vec![
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
    ])
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

    /// Installs (or updates) Ferry's two rules, keeping any other rules the bucket has.
    pub async fn install_lifecycle(&self) -> Result<(), StoreError> {
        let bucket = &self.location().bucket;
        let mut rules: Vec<LifecycleRule> = self
            .lifecycle_rules()
            .await?
            .into_iter()
            .filter(|r| !matches!(r.id(), Some(EXPIRE_RULE_ID | ABORT_RULE_ID)))
            .collect();
        rules.extend(ferry_rules()?);
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
        match self.lifecycle_rules().await {
            Ok(rules) => {
                let expire = rules.iter().any(|r| {
                    r.status() == &ExpirationStatus::Enabled
                        && r.expiration()
                            .and_then(LifecycleExpiration::days)
                            .is_some_and(|d| d <= expire_after_days())
                });
                let abort = rules.iter().any(|r| {
                    r.status() == &ExpirationStatus::Enabled
                        && r.abort_incomplete_multipart_upload()
                            .and_then(AbortIncompleteMultipartUpload::days_after_initiation)
                            .is_some_and(|d| d <= ABORT_AFTER_DAYS)
                });
                report.add(
                    expire,
                    format!(
                        "lifecycle: objects expire after at most {} days: {}",
                        expire_after_days(),
                        if expire {
                            "yes"
                        } else {
                            "NO (run `ferry store lifecycle`)"
                        }
                    ),
                );
                report.add(
                    abort,
                    format!(
                        "lifecycle: incomplete multipart uploads are aborted after at most \
                         {ABORT_AFTER_DAYS} days: {}",
                        if abort {
                            "yes"
                        } else {
                            "NO (run `ferry store lifecycle`)"
                        }
                    ),
                );
            }
            Err(e) => report.add(false, format!("lifecycle rules unreadable: {e}")),
        }
        report
    }
}
