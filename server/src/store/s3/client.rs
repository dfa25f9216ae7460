//! The S3 client Ferry uses, and how its failures read.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use super::S3Location;
use crate::config::S3Credentials;
use crate::store::StoreError;

/// How long connecting to the store may take before a request fails (and is retried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Builds a client for `location`. Credentials: the configured pair if any (the standard
/// `AWS_*` variables), else the AWS default chain. Checksums are computed only where S3
/// requires them: every segment already carries a GCM tag that downloads verify, and
/// several S3-compatible stores mishandle the chunked checksum trailers.
pub async fn build(location: &S3Location, credentials: Option<&S3Credentials>) -> Client {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(location.region.clone()))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .build(),
        );
    if let Some(c) = credentials {
        loader = loader.credentials_provider(Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            c.session_token.clone(),
            None,
            "ferry-config",
        ));
    }
    if let Some(endpoint) = &location.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    let sdk = loader.load().await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(location.path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    Client::from_conf(config)
}

/// The S3 error code of a failed request (`NoSuchKey`, `NoSuchUpload`, …), if the store sent one.
pub fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> Option<&str> {
    error
        .as_service_error()
        .and_then(ProvideErrorMetadata::code)
}

/// A failed request as a store error that says what was being done and why it failed.
pub fn remote<E, R>(what: impl std::fmt::Display, error: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Remote(format!("{what}: {}", DisplayErrorContext(&error)))
}
