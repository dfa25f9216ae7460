//! Garage, the S3-compatible store CI runs Ferry's S3 backend against, driven with the real
//! `aws-sdk-s3` (path-style, region eu-central-1, the harness's key) as Ferry drives it.
//!
//! `garage_serves_what_ferry_needs`: put/get; a 3-part multipart upload (5 MiB, 5 MiB, 1 MiB)
//! with ListParts, the `"<md5>-3"` ETag and Range reads across both part seams;
//! `GetBucketLocation` = `eu-central-1` (Ferry's EEA residency check); the safety-net
//! lifecycle rules (expiration after N days, abort incomplete multipart uploads after 7 days)
//! are stored and returned; `stop()` makes requests fail with a connection error and
//! `restart()` brings back the same objects and rules; so does `restart()` after `kill()`.
//!
//! `garage_quirks_a_backend_must_not_rely_on` pins down where Garage 2.5.0 is more lenient
//! than AWS S3, so a green run on Garage is not mistaken for proof of AWS behaviour.

use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use aws_config::retry::RetryConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, CompletedMultipartUpload,
    CompletedPart, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    Transition, TransitionStorageClass,
};
use ferry_e2e::{Garage, s3_client};

const MIB: usize = 1 << 20;

/// An S3 client for `garage` configured the way Ferry's S3 store is (Ferry's own client
/// builder: endpoint and region from the store URL, static credentials, path-style
/// addressing), with `retry`.
async fn client_with_retry(garage: &Garage, retry: RetryConfig) -> Result<Client> {
    let client = s3_client(garage).await?;
    Ok(Client::from_conf(
        client.config().to_builder().retry_config(retry).build(),
    ))
}

/// Deterministic bytes that differ at every offset of interest (no short period).
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn get_bytes(s3: &Client, bucket: &str, key: &str, range: Option<String>) -> Result<Vec<u8>> {
    let resp = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_range(range.clone())
        .send()
        .await
        .with_context(|| format!("GetObject {bucket}/{key} range {range:?}"))?;
    let body = resp
        .body
        .collect()
        .await
        .with_context(|| format!("GetObject {bucket}/{key} body"))?;
    Ok(body.into_bytes().to_vec())
}

fn is_quoted_md5(etag: &str) -> bool {
    etag.len() == 34
        && etag.starts_with('"')
        && etag.ends_with('"')
        && etag[1..33].chars().all(|c| c.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_serves_what_ferry_needs() -> Result<()> {
    let started = Instant::now();
    let mut garage = Garage::start()?;
    eprintln!("Garage::start took {:?}", started.elapsed());
    let s3 = client_with_retry(&garage, RetryConfig::standard()).await?;
    let bucket = garage.bucket().to_string();
    eprintln!(
        "garage: {} bucket {} store {}",
        garage.endpoint(),
        bucket,
        garage.store_url()
    );

    let small = put_and_get_one_small_object(&s3, &bucket).await?;
    let key = "multipart/object";
    let sizes = [5 * MIB, 5 * MIB, MIB];
    let whole = pattern(sizes.iter().sum(), 2);
    let (upload_id, completed) = upload_three_parts(&s3, &bucket, key, &sizes, &whole).await?;
    list_parts_shows_them(&s3, &bucket, key, &upload_id, &completed, &sizes).await?;
    complete_and_read_across_both_seams(&s3, &bucket, key, &upload_id, completed, &whole).await?;
    the_bucket_is_in_eu_central_1(&s3, &bucket).await?;
    set_the_safety_net_lifecycle_rules(&s3, &bucket).await?;
    stopped_a_request_fails_with_a_connection_error(&mut garage, &bucket).await?;
    restarted_the_objects_and_rules_are_back(&mut garage, &s3, &bucket, key, &small, &whole)
        .await?;
    a_second_bucket_and_a_kill_lose_nothing(&mut garage, &s3, &bucket, key, &whole).await
}

/// Put and get one small object; returns its bytes.
async fn put_and_get_one_small_object(s3: &Client, bucket: &str) -> Result<Vec<u8>> {
    let small = pattern(12_345, 1);
    let put = s3
        .put_object()
        .bucket(bucket)
        .key("small")
        .body(ByteStream::from(small.clone()))
        .send()
        .await
        .context("PutObject small")?;
    let small_etag = put.e_tag().unwrap_or_default().to_string();
    ensure!(
        is_quoted_md5(&small_etag),
        "PutObject ETag {small_etag:?} is not a quoted MD5"
    );
    ensure!(
        get_bytes(s3, bucket, "small", None).await? == small,
        "GetObject small returned different bytes"
    );
    Ok(small)
}

/// Multipart upload of `whole` to `key` in parts of `sizes` (5 MiB + 5 MiB + 1 MiB), each
/// answered with a quoted MD5 ETag; returns the upload's id and its completed parts.
async fn upload_three_parts(
    s3: &Client,
    bucket: &str,
    key: &str,
    sizes: &[usize],
    whole: &[u8],
) -> Result<(String, Vec<CompletedPart>)> {
    let created = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .context("CreateMultipartUpload")?;
    let upload_id = created
        .upload_id()
        .context("CreateMultipartUpload returned no UploadId")?
        .to_string();
    let mut completed = Vec::new();
    let mut offset = 0;
    for (i, size) in sizes.iter().enumerate() {
        let number = i32::try_from(i + 1)?;
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(whole[offset..offset + size].to_vec()))
            .send()
            .await
            .with_context(|| format!("UploadPart {number} ({size} B)"))?;
        let etag = part
            .e_tag()
            .with_context(|| format!("UploadPart {number} returned no ETag"))?;
        ensure!(
            is_quoted_md5(etag),
            "part {number} ETag {etag:?} is not a quoted MD5"
        );
        completed.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(etag)
                .build(),
        );
        offset += size;
    }
    Ok((upload_id, completed))
}

async fn list_parts_shows_them(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    completed: &[CompletedPart],
    sizes: &[usize],
) -> Result<()> {
    // ListParts (Ferry keeps ETags in its database, but this is how it could re-check them).
    let listed = s3
        .list_parts()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .send()
        .await
        .context("ListParts")?;
    let listed: Vec<(i32, i64, String)> = listed
        .parts()
        .iter()
        .map(|p| {
            (
                p.part_number().unwrap_or_default(),
                p.size().unwrap_or_default(),
                p.e_tag().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let expected: Vec<(i32, i64, String)> = completed
        .iter()
        .zip(sizes.iter().copied())
        .map(|(c, size)| {
            (
                c.part_number().unwrap_or_default(),
                i64::try_from(size).unwrap_or_default(),
                c.e_tag().unwrap_or_default().to_string(),
            )
        })
        .collect();
    ensure!(
        listed == expected,
        "ListParts: {listed:?}, expected {expected:?}"
    );
    Ok(())
}

/// Completes the upload (ETag `"<md5 of part md5s>-3"`, as on AWS) and reads the object back
/// whole and in ranges across both seams.
async fn complete_and_read_across_both_seams(
    s3: &Client,
    bucket: &str,
    key: &str,
    upload_id: &str,
    completed: Vec<CompletedPart>,
    whole: &[u8],
) -> Result<()> {
    let done = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .context("CompleteMultipartUpload")?;
    let etag = done.e_tag().unwrap_or_default().to_string();
    ensure!(
        etag.len() == 36 && etag.ends_with("-3\"") && is_quoted_md5(&format!("{}\"", &etag[..33])),
        "multipart ETag {etag:?} is not \"<md5 of part md5s>-3\""
    );
    let head = s3
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .context("HeadObject")?;
    ensure!(
        head.content_length() == Some(i64::try_from(whole.len())?),
        "HeadObject length {:?}, expected {}",
        head.content_length(),
        whole.len()
    );
    ensure!(
        head.e_tag() == Some(etag.as_str()),
        "HeadObject ETag {:?} differs from CompleteMultipartUpload's {etag:?}",
        head.e_tag()
    );
    // Ranges across both seams, and one that ends in the last part.
    for (start, end) in [
        (5 * MIB - 100, 5 * MIB + 99),
        (10 * MIB - 1, 10 * MIB),
        (MIB, 10 * MIB + 17),
    ] {
        let got = get_bytes(s3, bucket, key, Some(format!("bytes={start}-{end}"))).await?;
        ensure!(
            got == whole[start..=end],
            "Range {start}-{end}: {} bytes, not the uploaded ones",
            got.len()
        );
    }
    ensure!(
        get_bytes(s3, bucket, key, None).await? == *whole,
        "GetObject of the multipart object returned different bytes"
    );
    Ok(())
}

/// GetBucketLocation: Ferry's EEA residency check at start-up.
async fn the_bucket_is_in_eu_central_1(s3: &Client, bucket: &str) -> Result<()> {
    let location = s3
        .get_bucket_location()
        .bucket(bucket)
        .send()
        .await
        .context("GetBucketLocation")?;
    let location = location
        .location_constraint()
        .map(|l| l.as_str().to_string());
    eprintln!("GetBucketLocation: LocationConstraint = {location:?}");
    ensure!(
        location.as_deref() == Some("eu-central-1"),
        "GetBucketLocation answered {location:?}, expected eu-central-1"
    );
    Ok(())
}

/// The safety-net lifecycle rules of `ferry store lifecycle`, stored and read back.
async fn set_the_safety_net_lifecycle_rules(s3: &Client, bucket: &str) -> Result<()> {
    let rules = BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("ferry-expire")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .expiration(LifecycleExpiration::builder().days(91).build())
                .build()?,
        )
        .rules(
            LifecycleRule::builder()
                .id("ferry-abort-multipart")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("").build())
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(7)
                        .build(),
                )
                .build()?,
        )
        .build()?;
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(rules)
        .send()
        .await
        .context("PutBucketLifecycleConfiguration")?;
    check_lifecycle(s3, bucket).await?;
    Ok(())
}

/// Stopped: a request fails with a connection error (no retries, so it fails at once).
async fn stopped_a_request_fails_with_a_connection_error(
    garage: &mut Garage,
    bucket: &str,
) -> Result<()> {
    let stopping = Instant::now();
    garage.stop()?;
    eprintln!("Garage::stop took {:?}", stopping.elapsed());
    let no_retry = client_with_retry(garage, RetryConfig::disabled()).await?;
    match no_retry
        .head_object()
        .bucket(bucket)
        .key("small")
        .send()
        .await
    {
        Err(SdkError::DispatchFailure(failure)) if failure.is_io() => {
            eprintln!("stopped Garage: {failure:?}");
        }
        Err(other) => bail!("stopped Garage: expected an I/O dispatch failure, got {other:?}"),
        Ok(_) => bail!("stopped Garage answered HeadObject"),
    }
    Ok(())
}

/// Restarted: same port, same objects, same rules.
async fn restarted_the_objects_and_rules_are_back(
    garage: &mut Garage,
    s3: &Client,
    bucket: &str,
    key: &str,
    small: &[u8],
    whole: &[u8],
) -> Result<()> {
    let restarted = Instant::now();
    garage.restart()?;
    eprintln!("Garage::restart took {:?}", restarted.elapsed());
    ensure!(
        get_bytes(s3, bucket, "small", None).await? == *small,
        "small object changed across restart"
    );
    ensure!(
        get_bytes(
            s3,
            bucket,
            key,
            Some(format!("bytes={}-{}", 5 * MIB - 8, 5 * MIB + 7))
        )
        .await?
            == whole[5 * MIB - 8..5 * MIB + 8],
        "multipart object changed across restart"
    );
    check_lifecycle(s3, bucket).await?;
    Ok(())
}

/// A second bucket through the harness; then killed (a crash rather than a stop): everything
/// is still there after restart.
async fn a_second_bucket_and_a_kill_lose_nothing(
    garage: &mut Garage,
    s3: &Client,
    bucket: &str,
    key: &str,
    whole: &[u8],
) -> Result<()> {
    // A second bucket through the harness.
    garage.create_bucket("ferry-second")?;
    s3.put_object()
        .bucket("ferry-second")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .context("PutObject into the second bucket")?;

    // Killed (a crash rather than a stop): everything is still there after restart.
    garage.kill()?;
    ensure!(!garage.is_running(), "Garage still runs after kill()");
    garage.restart()?;
    ensure!(
        get_bytes(s3, "ferry-second", "x", None).await? == b"x",
        "object in the second bucket lost across kill -9"
    );
    ensure!(
        get_bytes(s3, bucket, key, None).await? == *whole,
        "multipart object changed across kill -9"
    );
    Ok(())
}

async fn check_lifecycle(s3: &Client, bucket: &str) -> Result<()> {
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .context("GetBucketLifecycleConfiguration")?;
    let rules = got.rules();
    eprintln!("GetBucketLifecycleConfiguration: {rules:?}");
    ensure!(
        rules.len() == 2,
        "expected 2 lifecycle rules, got {rules:?}"
    );
    let expire = &rules[0];
    ensure!(
        expire.id() == Some("ferry-expire")
            && *expire.status() == ExpirationStatus::Enabled
            && expire.expiration().and_then(|e| e.days()) == Some(91)
            && expire.abort_incomplete_multipart_upload().is_none(),
        "expiration rule came back as {expire:?}"
    );
    let abort = &rules[1];
    ensure!(
        abort.id() == Some("ferry-abort-multipart")
            && *abort.status() == ExpirationStatus::Enabled
            && abort
                .abort_incomplete_multipart_upload()
                .and_then(|a| a.days_after_initiation())
                == Some(7)
            && abort.expiration().is_none(),
        "abort-multipart rule came back as {abort:?}"
    );
    Ok(())
}

/// Where Garage 2.5.0 is more lenient than AWS S3: a backend tested only on Garage must not
/// rely on these. If one of these checks fails after a Garage upgrade, update the report in
/// tests/README.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_quirks_a_backend_must_not_rely_on() -> Result<()> {
    let garage = Garage::start()?;
    let s3 = client_with_retry(&garage, RetryConfig::standard()).await?;
    let bucket = garage.bucket();
    let key = no_minimum_part_size(&s3, bucket).await?;
    upload_part_copy_works(&s3, bucket, key).await?;
    unknown_lifecycle_elements_are_dropped_silently(&s3, bucket).await?;
    requests_signed_for_another_region_are_refused(&s3, bucket).await
}

/// No 5 MiB minimum: AWS rejects CompleteMultipartUpload with EntityTooSmall when a part other
/// than the last is under 5 MiB; Garage accepts it. Returns the key of the object made of small parts.
async fn no_minimum_part_size(s3: &Client, bucket: &str) -> Result<&'static str> {
    let key = "small-parts";
    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .send()
        .await?
        .upload_id()
        .context("no UploadId")?
        .to_string();
    let mut parts = Vec::new();
    for number in 1..=2 {
        let part = s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(pattern(1000, 10 + number as u64)))
            .send()
            .await?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_string))
                .build(),
        );
    }
    let small_parts = s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await;
    eprintln!("complete with a 1000 B first part: {small_parts:?}");
    ensure!(
        small_parts.is_ok(),
        "Garage now enforces a minimum part size: {small_parts:?}"
    );
    Ok(key)
}

/// UploadPartCopy works (a range of an existing object as a part).
async fn upload_part_copy_works(s3: &Client, bucket: &str, small_parts_key: &str) -> Result<()> {
    let upload_id = s3
        .create_multipart_upload()
        .bucket(bucket)
        .key("copied")
        .send()
        .await?
        .upload_id()
        .context("no UploadId")?
        .to_string();
    let copied = s3
        .upload_part_copy()
        .bucket(bucket)
        .key("copied")
        .upload_id(&upload_id)
        .part_number(1)
        .copy_source(format!("{bucket}/{small_parts_key}"))
        .copy_source_range("bytes=0-499")
        .send()
        .await
        .context("UploadPartCopy")?;
    let copied_etag = copied
        .copy_part_result()
        .and_then(|r| r.e_tag())
        .unwrap_or_default()
        .to_string();
    s3.complete_multipart_upload()
        .bucket(bucket)
        .key("copied")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(&copied_etag)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .context("CompleteMultipartUpload of the copied part")?;
    ensure!(
        get_bytes(s3, bucket, "copied", None).await? == pattern(1000, 11)[..500],
        "UploadPartCopy copied the wrong bytes"
    );
    Ok(())
}

/// Lifecycle: only Expiration (Days or Date), AbortIncompleteMultipartUpload and filters on
/// Prefix / ObjectSizeGreaterThan / ObjectSizeLessThan are understood. Anything else
/// (Transition here; also NoncurrentVersion*, Tag filters) is dropped without an error.
async fn unknown_lifecycle_elements_are_dropped_silently(s3: &Client, bucket: &str) -> Result<()> {
    let rules = BucketLifecycleConfiguration::builder()
        .rules(
            LifecycleRule::builder()
                .id("with-transition")
                .status(ExpirationStatus::Enabled)
                .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
                .expiration(LifecycleExpiration::builder().days(30).build())
                .transitions(
                    Transition::builder()
                        .days(10)
                        .storage_class(TransitionStorageClass::Glacier)
                        .build(),
                )
                .build()?,
        )
        .build()?;
    let put = s3
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(rules)
        .send()
        .await;
    eprintln!("lifecycle with a Transition: {put:?}");
    ensure!(put.is_ok(), "Garage now refuses a Transition: {put:?}");
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await?;
    eprintln!("lifecycle read back: {:?}", got.rules());
    let rule = got.rules().first().context("no rule read back")?;
    ensure!(
        rule.transitions().is_empty()
            && rule.filter().and_then(|f| f.prefix()) == Some("tmp/")
            && rule.expiration().and_then(|e| e.days()) == Some(30),
        "Garage now keeps transitions or changed the rule: {rule:?}"
    );
    Ok(())
}

/// GetBucketLocation answers the node's configured s3_region for every bucket (it does not
/// record a per-bucket location), and the region is checked in SigV4: a client signing for
/// another region is refused.
async fn requests_signed_for_another_region_are_refused(s3: &Client, bucket: &str) -> Result<()> {
    let other = s3
        .config()
        .to_builder()
        .region(Region::new("us-east-1"))
        .build();
    let wrong_region = Client::from_conf(other)
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await;
    let code = wrong_region
        .as_ref()
        .err()
        .and_then(|e| e.as_service_error())
        .and_then(|e| e.meta().code())
        .map(str::to_string);
    eprintln!(
        "ListObjectsV2 signed for us-east-1: code {code:?}, {:?}",
        wrong_region
            .as_ref()
            .err()
            .map(|e| e.raw_response().map(|r| r.status()))
    );
    ensure!(
        wrong_region.is_err(),
        "Garage accepted a request signed for us-east-1"
    );
    Ok(())
}
