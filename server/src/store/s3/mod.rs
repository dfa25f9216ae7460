//! `s3://BUCKET?endpoint=…&region=…`: one object per file in an S3 bucket inside the EEA,
//! written by multipart upload (`writer`), read by ranged GETs (`reader`). The object's key is
//! the file id; unfinished uploads keep small pending pieces under `pending/<file id>/`.

pub mod admin;
mod client;
pub mod plan;
mod reader;
pub mod residency;
pub mod spool_dir;
pub mod state;
mod writer;

use std::future::Future;
use std::io::Write as _;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, Length};
use uuid::Uuid;

use crate::config::Config;
use crate::store::{ObjectReader, ObjectStore, ObjectWriter, StoreError, WriteFrom};
pub use client::build as build_client;

/// Where objects live in S3, parsed from `FERRY_STORE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Endpoint URL for S3-compatible stores (Garage, Ceph, …); `None` means AWS.
    pub endpoint: Option<String>,
    /// Region the bucket must be in (required: residency is checked against it).
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), the default with a custom endpoint.
    pub path_style: bool,
}

/// An `s3://` URL that cannot be used; the message says which part and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("FERRY_STORE {url:?}: {message}")]
pub struct S3UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong.
    pub message: String,
}

/// Why the configured S3 store cannot be used at all (not retryable): the operator must
/// change the configuration.
#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    /// The `s3://` URL is malformed.
    #[error(transparent)]
    Url(#[from] S3UrlError),
    /// The store would keep data outside the EEA.
    #[error(transparent)]
    Residency(#[from] residency::ResidencyError),
}

impl From<S3UrlError> for StoreError {
    fn from(e: S3UrlError) -> Self {
        StoreError::S3Config(e.into())
    }
}

impl From<residency::ResidencyError> for StoreError {
    fn from(e: residency::ResidencyError) -> Self {
        StoreError::S3Config(e.into())
    }
}

/// Connects to the S3 store of `config.store` after checking its URL and that its region is on
/// the EEA allowlist; the bucket itself is not checked yet (see [`S3Store::check_location`]).
pub async fn connect(config: &Config) -> Result<S3Store, StoreError> {
    let location = S3Location::parse(&config.store)?;
    let allowlist = residency::EeaAllowlist::new(&config.eea_regions);
    if !allowlist.extra().is_empty() {
        tracing::warn!(
            regions = ?allowlist.extra(),
            "FERRY_EEA_REGIONS: the operator declares these store regions to be inside the EEA"
        );
    }
    allowlist.check_region(&location.region)?;
    S3Store::connect(location, config).await
}

fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// Decodes `%XX` escapes in a query value (endpoints may be given encoded).
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl S3Location {
    /// Parses `s3://BUCKET?region=R[&endpoint=URL][&path_style=true|false]`.
    pub fn parse(url: &str) -> Result<Self, S3UrlError> {
        let error = |message: &str| S3UrlError {
            url: url.to_owned(),
            message: message.to_owned(),
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| error("must start with s3://"))?;
        let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
        let bucket = bucket.trim_end_matches('/');
        if !valid_bucket(bucket) {
            return Err(error(
                "the bucket name must be 3-63 lowercase letters, digits, '.' or '-'",
            ));
        }
        let (mut endpoint, mut region, mut path_style) = (None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or_else(|| error("bad %-escape in the query"))?;
            match key {
                "endpoint" => endpoint = Some(value),
                "region" => region = Some(value),
                "path_style" => {
                    path_style = Some(match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(error("path_style must be true or false")),
                    })
                }
                other => return Err(error(&format!("unknown parameter {other:?}"))),
            }
        }
        let region = region.filter(|r| !r.is_empty()).ok_or_else(|| {
            error("region=… is required (it is checked against the EEA allowlist)")
        })?;
        if let Some(endpoint) = &endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(error("endpoint must be an http:// or https:// URL"));
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            path_style: path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            region,
        })
    }
}

/// The bucket and what every request on it needs; shared by the store, its writers and readers.
pub(crate) struct Bucket {
    client: Client,
    name: String,
    /// The runtime the blocking store methods run their requests on.
    runtime: tokio::runtime::Handle,
    /// Where writers spool the part being filled.
    spool_dir: spool_dir::SpoolDir,
}

/// Read size when streaming a spool file to the store (the SDK's default is 64 KiB).
const SPOOL_READ_BUFFER: usize = 256 * 1024;

/// Prefix of an upload's pending pieces.
fn pending_prefix(file_id: Uuid) -> String {
    format!("pending/{file_id}/")
}

impl Bucket {
    /// Runs a request from a blocking thread (the store's methods are called from
    /// `spawn_blocking`, never from async code).
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    fn object_key(&self, file_id: Uuid) -> String {
        file_id.to_string()
    }

    /// Appends object `key` (of `len` bytes) to `out`.
    fn read_object_into(
        &self,
        key: &str,
        len: u64,
        out: &mut std::fs::File,
    ) -> Result<(), StoreError> {
        self.block_on(async {
            let answer = self
                .client
                .get_object()
                .bucket(&self.name)
                .key(key)
                .send()
                .await
                .map_err(|e| client::remote(format_args!("GetObject {key}"), e))?;
            let mut body = answer.body;
            let mut read = 0u64;
            while let Some(chunk) = body.next().await {
                let chunk =
                    chunk.map_err(|e| StoreError::Remote(format!("GetObject {key}: {e}")))?;
                read += chunk.len() as u64;
                out.write_all(&chunk)?;
            }
            if read != len {
                return Err(StoreError::State(format!(
                    "pending piece {key} holds {read} bytes, the saved state says {len}"
                )));
            }
            Ok(())
        })
    }

    /// Uploads a local file as object `key` in one PUT.
    fn put_file(&self, key: &str, path: &Path, len: u64) -> Result<(), StoreError> {
        self.block_on(async {
            let body = ByteStream::read_from()
                .buffer_size(SPOOL_READ_BUFFER)
                .path(path)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| StoreError::Remote(format!("reading {}: {e}", path.display())))?;
            self.client
                .put_object()
                .bucket(&self.name)
                .key(key)
                .content_length(i64::try_from(len).unwrap_or(i64::MAX))
                .body(body)
                .send()
                .await
                .map_err(|e| client::remote(format_args!("PutObject {key}"), e))?;
            Ok(())
        })
    }

    /// The length of object `key`, `None` if it does not exist.
    fn object_len(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let answer = self.block_on(self.client.head_object().bucket(&self.name).key(key).send());
        match answer {
            Ok(head) => Ok(head.content_length().and_then(|l| u64::try_from(l).ok())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(client::remote(format_args!("HeadObject {key}"), e)),
        }
    }

    /// Keys under `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.name)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| client::remote(format_args!("ListObjectsV2 {prefix}"), e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    /// Deletes, in the background, the pending pieces of `file_id` that belong to parts before
    /// `part` (they are in full parts now, or the object is complete). Best effort: the
    /// bucket's lifecycle rule removes anything left.
    fn forget_pieces_before(self: &Arc<Self>, file_id: Uuid, part: u64) {
        let bucket = self.clone();
        self.runtime.spawn(async move {
            let prefix = pending_prefix(file_id);
            let keys = match bucket.list(&prefix).await {
                Ok(keys) => keys,
                Err(e) => {
                    tracing::warn!(file = %file_id, error = %e, "could not list pending pieces");
                    return;
                }
            };
            for key in keys {
                let piece_part = key
                    .strip_prefix(&prefix)
                    .and_then(|name| name.get(..5))
                    .and_then(|n| n.parse::<u64>().ok());
                if piece_part.is_some_and(|p| p < part)
                    && let Err(e) = bucket
                        .client
                        .delete_object()
                        .bucket(&bucket.name)
                        .key(&key)
                        .send()
                        .await
                {
                    tracing::warn!(key, error = %client::remote("DeleteObject", e), "could not delete a pending piece");
                }
            }
        });
    }
}

/// Objects in an S3 bucket inside the EEA.
pub struct S3Store {
    bucket: Arc<Bucket>,
    location: S3Location,
}

impl S3Store {
    /// Connects to the bucket of `location` (nothing is sent yet). Spools go to a directory
    /// of this process under `DATA/spool`, made on first use; nothing there is removed (see
    /// [`spool_dir::clear_stale`], for `ferry serve` only).
    pub async fn connect(location: S3Location, config: &Config) -> Result<Self, StoreError> {
        let client = client::build(&location, config.s3_credentials.as_ref()).await;
        let spool_dir = spool_dir::SpoolDir::new(&config.data_dir.join("spool"));
        Ok(S3Store {
            bucket: Arc::new(Bucket {
                client,
                name: location.bucket.clone(),
                runtime: tokio::runtime::Handle::current(),
                spool_dir,
            }),
            location,
        })
    }

    /// The S3 client, for the `ferry store` commands.
    pub fn client(&self) -> &Client {
        &self.bucket.client
    }

    /// Where the store is.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// Refuses a bucket that does not exist, cannot be reached, or is located elsewhere than
    /// the configured region.
    pub async fn check_location(&self) -> Result<(), StoreError> {
        let bucket = &self.location.bucket;
        let region = &self.location.region;
        let answer = self
            .bucket
            .client
            .get_bucket_location()
            .bucket(bucket)
            .send()
            .await;
        match answer {
            Ok(out) => Ok(residency::check_bucket_location(
                bucket,
                out.location_constraint().map(|c| c.as_str()),
                region,
            )?),
            Err(e) => Err(match client::error_code(&e) {
                Some("NoSuchBucket") => StoreError::Remote(format!(
                    "bucket {bucket:?} does not exist (create it in {region}, then start Ferry)"
                )),
                Some(
                    code @ ("AuthorizationHeaderMalformed"
                    | "PermanentRedirect"
                    | "IllegalLocationConstraintException"),
                ) => residency::ResidencyError::BucketElsewhere {
                    bucket: bucket.clone(),
                    actual: format!("another region (the store answered {code})"),
                    configured: region.clone(),
                }
                .into(),
                _ => client::remote(
                    format_args!("checking where bucket {bucket:?} is (GetBucketLocation)"),
                    e,
                ),
            }),
        }
    }
}

impl ObjectStore for S3Store {
    fn open_writer(
        &self,
        file: Uuid,
        from: WriteFrom<'_>,
    ) -> Result<Box<dyn ObjectWriter>, StoreError> {
        Ok(Box::new(writer::S3Writer::open(
            self.bucket.clone(),
            file,
            from,
        )?))
    }

    fn open_reader(
        &self,
        file: Uuid,
        expected: Range<u64>,
    ) -> Result<Box<dyn ObjectReader>, StoreError> {
        Ok(Box::new(reader::S3Reader::new(
            self.bucket.clone(),
            self.bucket.object_key(file),
            expected,
        )))
    }

    fn delete(&self, file: Uuid) -> Result<(), StoreError> {
        let bucket = &self.bucket;
        let key = bucket.object_key(file);
        bucket.block_on(async {
            let mut doomed = bucket.list(&pending_prefix(file)).await?;
            doomed.push(key.clone());
            for k in doomed {
                bucket
                    .client
                    .delete_object()
                    .bucket(&bucket.name)
                    .key(&k)
                    .send()
                    .await
                    .map_err(|e| client::remote(format_args!("DeleteObject {k}"), e))?;
            }
            let uploads = bucket
                .client
                .list_multipart_uploads()
                .bucket(&bucket.name)
                .prefix(&key)
                .send()
                .await
                .map_err(|e| client::remote(format_args!("ListMultipartUploads {key}"), e))?;
            for upload in uploads.uploads() {
                if let (Some(k), Some(id)) = (upload.key(), upload.upload_id())
                    && k == key
                {
                    bucket
                        .client
                        .abort_multipart_upload()
                        .bucket(&bucket.name)
                        .key(k)
                        .upload_id(id)
                        .send()
                        .await
                        .map_err(|e| client::remote(format_args!("AbortMultipartUpload {k}"), e))?;
                }
            }
            Ok(())
        })
    }

    fn forget_upload_state(&self, file: Uuid) {
        self.bucket.forget_pieces_before(file, u64::MAX);
    }

    fn max_plaintext_len(&self) -> u64 {
        plan::PartPlan::max_plaintext_len()
    }

    fn part_plaintext_len(&self, max_plaintext_len: u64) -> Option<u64> {
        plan::PartPlan::for_len(max_plaintext_len)
            .ok()
            .map(|p| p.segments_per_part() * crate::crypto::segment::SEGMENT_PLAINTEXT as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aws_and_self_hosted_urls() -> Result<(), S3UrlError> {
        let aws = S3Location::parse("s3://ferry-files?region=eu-central-1")?;
        assert_eq!(aws.bucket, "ferry-files");
        assert_eq!(aws.endpoint, None);
        assert!(!aws.path_style);
        let garage =
            S3Location::parse("s3://ferry?endpoint=http%3A%2F%2F127.0.0.1%3A3900&region=garage")?;
        assert_eq!(garage.endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(garage.region, "garage");
        assert!(garage.path_style);
        let plain = S3Location::parse(
            "s3://ferry?endpoint=http://127.0.0.1:3900&region=garage&path_style=false",
        )?;
        assert!(!plain.path_style);
        Ok(())
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, expect) in [
            ("file:///tmp", "s3://"),
            ("s3://Bad_Bucket?region=eu-west-1", "bucket name"),
            ("s3://ferry", "region=… is required"),
            (
                "s3://ferry?region=eu-west-1&colour=blue",
                "unknown parameter",
            ),
            ("s3://ferry?region=eu-west-1&endpoint=ftp://x", "endpoint"),
            ("s3://ferry?region=eu-west-1&endpoint=%zz", "%-escape"),
        ] {
            let err = S3Location::parse(url).expect_err(url).to_string();
            assert!(err.contains(expect), "{url}: {err}");
        }
    }
}
