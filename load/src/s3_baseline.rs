//! `loadgen s3`: the baseline Ferry's S3 store is measured against.
//!
//! It uploads stream 0 of `--seed` (the bytes of upload 0 of `loadgen tus` with the same seed)
//! straight to S3 with a sequential multipart upload, downloads it with one GetObject,
//! verifies the BLAKE3 and reports both MB/s. The client is configured as Ferry's S3 store
//! configures its own (path-style for a custom endpoint, checksums only where required), so the
//! difference between the two figures is Ferry's, not the SDK's.

use std::time::Duration;

use anyhow::{Context, ensure};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::cli::S3Args;
use crate::data::Source;
use crate::sampler::{ServerSampler, cpu_between};
use crate::units::{mb_per_s, mib, ms, percentile, round3};

/// The S3 client, set up like Ferry's own so that the baseline differs from Ferry only by what
/// Ferry adds.
async fn s3_client(args: &S3Args) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(Region::new(args.region.clone()));
    if let Some(endpoint) = &args.endpoint {
        loader = loader.endpoint_url(endpoint.clone());
    }
    let sdk = loader.load().await;
    let mut config =
        aws_sdk_s3::config::Builder::from(&sdk).force_path_style(args.endpoint.is_some());
    if !args.sdk_checksums {
        config = config
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// Runs `loadgen s3` and prints its report. `Ok(false)` when the download did not match the
/// source; `Err` when S3 refused a request, since there is no figure to report then.
pub async fn run(args: S3Args) -> anyhow::Result<bool> {
    use aws_sdk_s3::primitives::ByteStream;
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

    ensure!(args.size > 0, "--size must be at least 1 byte");
    ensure!(args.part_size >= 1, "--part-size must be at least 1 byte");
    let s3 = s3_client(&args).await;
    let source = Source::new(args.seed, 0);
    let key = format!(
        "loadgen/{}-{}",
        args.seed,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let sampler = args.server_pid.map(ServerSampler::spawn);
    let server_at = |s: &Option<ServerSampler>| s.as_ref().and_then(ServerSampler::read);
    let server_start = server_at(&sampler);
    let mut part_latencies = Vec::new();

    // Upload: the clock runs only while requests are in flight; generating and hashing the
    // parts is left out, so the baseline is S3's speed, not this client's.
    let mut hasher = blake3::Hasher::new();
    let wall = Instant::now();
    let mut timed = Duration::ZERO;
    let t = Instant::now();
    let created = s3
        .create_multipart_upload()
        .bucket(&args.bucket)
        .key(&key)
        .send()
        .await
        .with_context(|| format!("CreateMultipartUpload {}/{key}", args.bucket))?;
    timed += t.elapsed();
    let upload_id = created
        .upload_id()
        .context("CreateMultipartUpload without an upload id")?
        .to_owned();
    let mut parts = Vec::new();
    let mut offset = 0u64;
    let mut number = 1;
    while offset < args.size {
        let n = args.part_size.min(args.size - offset);
        let mut buf = vec![0u8; n as usize];
        source.fill(offset, &mut buf);
        hasher.update(&buf);
        let t = Instant::now();
        let part = s3
            .upload_part()
            .bucket(&args.bucket)
            .key(&key)
            .upload_id(&upload_id)
            .part_number(number)
            .content_length(n as i64)
            .body(ByteStream::from(Bytes::from(buf)))
            .send()
            .await
            .with_context(|| format!("UploadPart {number}"))?;
        let took = t.elapsed();
        timed += took;
        part_latencies.push(took);
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        );
        offset += n;
        number += 1;
    }
    let t = Instant::now();
    s3.complete_multipart_upload()
        .bucket(&args.bucket)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .context("CompleteMultipartUpload")?;
    timed += t.elapsed();
    let upload_wall = wall.elapsed();
    let want = hasher.finalize();
    let server_mid = server_at(&sampler);

    // Download: one GetObject, streamed and hashed (the hashing is inside the clock, as it is
    // for `loadgen tus`).
    let mut download = Value::Null;
    let mut verified = true;
    if !args.no_download {
        let t = Instant::now();
        let object = s3
            .get_object()
            .bucket(&args.bucket)
            .key(&key)
            .send()
            .await
            .context("GetObject")?;
        let mut body = object.body;
        let mut hasher = blake3::Hasher::new();
        let mut len = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("GetObject body")?;
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        let took = t.elapsed();
        verified = len == args.size && hasher.finalize() == want;
        download = json!({
            "bytes": len,
            "s": round3(took.as_secs_f64()),
            "mb_s": round3(mb_per_s(len, took)),
            "verified": verified,
        });
    }
    let server_end = server_at(&sampler);
    if !args.keep {
        s3.delete_object()
            .bucket(&args.bucket)
            .key(&key)
            .send()
            .await
            .context("DeleteObject")?;
    }
    part_latencies.sort_unstable();
    let server = sampler.map(|s| {
        json!({
            "pid": args.server_pid,
            "max_rss_upload_mib": mib(s.stop().upload_kib),
            "hwm_mib": server_end.map(|e| mib(e.hwm_kib)),
            "cpu_upload_s": cpu_between(server_start, server_mid),
        })
    });
    let report = json!({
        "label": args.label,
        "mode": "s3",
        "endpoint": args.endpoint,
        "bucket": args.bucket,
        "size": args.size,
        "part_size": args.part_size,
        "parts": part_latencies.len(),
        "seed": args.seed,
        "sdk_checksums": args.sdk_checksums,
        "upload": {
            "s": round3(timed.as_secs_f64()),
            "mb_s": round3(mb_per_s(args.size, timed)),
            "wall_s": round3(upload_wall.as_secs_f64()),
            "wall_mb_s": round3(mb_per_s(args.size, upload_wall)),
            "part_p50_ms": percentile(&part_latencies, 50.0).map(ms),
            "part_max_ms": percentile(&part_latencies, 100.0).map(ms),
        },
        "download": download,
        "blake3": want.to_hex().as_str(),
        "server_proc": server,
    });
    eprintln!(
        "s3 {} B to {}/{} in {} parts of {} B: upload {} MB/s (requests only; {} MB/s with \
         generation), download {} MB/s, verified {}",
        args.size,
        args.endpoint.as_deref().unwrap_or("aws"),
        args.bucket,
        report["parts"],
        args.part_size,
        report["upload"]["mb_s"],
        report["upload"]["wall_mb_s"],
        report["download"]["mb_s"],
        verified
    );
    println!("{report}");
    Ok(verified)
}
