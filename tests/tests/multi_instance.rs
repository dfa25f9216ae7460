//! Several instances, one upload: two `ferry serve` processes A and B on one PostgreSQL
//! database, one Garage bucket and one master key, as in production behind a load balancer.
//! All state of an upload lives in the database and the store, so any instance continues any
//! upload.
//!
//! `a_killed_instance_s_upload_finishes_on_another`: a 200 MiB + 12,345 B upload (four S3
//! parts of 64 MiB, the last short) streams to A in one PATCH; A is SIGKILLed with bytes
//! flowing inside the third part; the client asks B for the offset (it never exceeds what was
//! sent, and something of the interrupted PATCH was kept) and sends the rest to B. The file
//! downloads byte-identical (BLAKE3) from B, and from A once A is back.
//!
//! `small_chunks_alternate_between_instances`: a 130 MiB + 4,321 B upload in PATCHes of
//! 5 MiB + 4,097 B (aligned neither to segments nor to parts), alternately to A and B: every
//! PATCH ends inside a part, so its whole segments go to a pending piece and its partial
//! segment to the database, and the next PATCH, on the other instance, reads them back. After
//! every PATCH the other instance's HEAD shows exactly the acknowledged offset. After the first
//! PATCH the bucket holds pending pieces and no object; once complete, the object alone (the
//! pieces are cleaned up). Downloads from both are byte-identical.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use ferry_e2e::{
    Api, S3Stack, Server, download_and_compare, eventually, file_id_from_url, patch_expect_204,
    s3_client, start_patch,
};

const MIB: u64 = 1 << 20;
/// How long a newcomer may keep getting 423 while a killed instance's hold on the upload
/// expires (tus clients retry 423).
const LOCKED_FOR: Duration = Duration::from_secs(90);

/// Keys in the stack's bucket that name file `id` (its object, its pending pieces).
fn keys_of(stack: &S3Stack, id: &str) -> Result<Vec<String>> {
    let garage = &stack.garage;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let s3 = s3_client(garage).await?;
        let mut keys = Vec::new();
        let mut pages = s3
            .list_objects_v2()
            .bucket(garage.bucket())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.context("ListObjectsV2")?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| k.contains(id))
                    .map(str::to_owned),
            );
        }
        Ok(keys)
    })
}

/// `url` (on any instance) as served by `server`: same path, `server`'s address.
fn on(server: &Server, url: &str) -> Result<String> {
    let path = url
        .strip_prefix("http://")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .ok_or_else(|| anyhow!("not an http:// URL with a path: {url}"))?;
    Ok(format!("{}{path}", server.url()))
}

/// HEAD on `api`: 200 with `Upload-Length: size`; returns the offset. `who` names the
/// instance in a failure.
fn head_offset(api: &Api, upload_url: &str, size: u64, who: &str) -> Result<u64> {
    api.tus_offset(upload_url, size)
        .with_context(|| format!("on instance {who}"))
}

/// The finished file as each instance's API and downloads show it.
fn check_complete(
    instances: &[(&str, &Server, &Api)],
    upload_url: &str,
    source: &Path,
    size: u64,
    blake3: &str,
) -> Result<()> {
    let id = file_id_from_url(upload_url)?;
    let (_, _, first) = instances.first().context("no instance")?;
    let share = first.create_share(&[&id], &["a@x.eu"], None)?;
    let file_url = share.file_url(&id);
    for (who, server, api) in instances {
        let info = api.file(&id)?;
        ensure!(
            info.state == "complete"
                && info.offset == size
                && info.size == size
                && info.blake3.as_deref() == Some(blake3),
            "GET /api/v1/files/{id} on {who}: {info:?}, source {size} B, blake3 {blake3}"
        );
        let url = on(server, &file_url)?;
        let got =
            download_and_compare(&url, source).with_context(|| format!("download on {who}"))?;
        ensure!(
            got.blake3 == blake3 && got.bytes == size,
            "GET {url} on {who}: {} B with BLAKE3 {}, the source has {size} B and {blake3}",
            got.bytes,
            got.blake3
        );
        ensure!(
            got.etag.as_deref() == Some(format!("\"{blake3}\"").as_str()),
            "GET {url} on {who}: ETag {:?}",
            got.etag
        );
    }
    Ok(())
}

#[test]
fn a_killed_instance_s_upload_finishes_on_another() -> Result<()> {
    let stack = S3Stack::start()?;
    let mut a = stack.start_instance("a")?;
    let b = stack.start_instance("b")?;
    let result = kill_a_finish_on_b(&stack, &mut a, &b);
    stack.explain(result, &[("A", &a), ("B", &b)])
}

fn kill_a_finish_on_b(stack: &S3Stack, a: &mut Server, b: &Server) -> Result<()> {
    const SIZE: u64 = 200 * MIB + 12_345;
    let (tenant, api_a) = a.tenant_api("acme")?;
    let api_b = b.api(&tenant)?;
    let source = stack.source_file("multi.bin", SIZE)?;

    let upload_url = api_a.tus_create(SIZE, "multi.bin")?;
    let on_b = on(b, &upload_url)?;
    ensure!(
        head_offset(&api_b, &on_b, SIZE, "B")? == 0,
        "B does not see A's new upload at offset 0"
    );

    // Stream everything to A; kill A with bytes flowing in the third part.
    let kill_at = 150 * MIB + 777;
    let patch = start_patch(&api_a, &upload_url, &source.path, 0, SIZE, None)?;
    patch.wait_sent(kill_at, Duration::from_secs(300), || Ok(()))?;
    a.kill9()?;
    let sent = patch.sent();
    let outcome = patch.join();
    ensure!(
        outcome.is_err() || outcome.as_ref().is_ok_and(|o| o.status >= 500),
        "the PATCH to A got an answer although A was killed mid-body: {outcome:?}"
    );

    // The client goes to B: HEAD, then the rest.
    let offset = head_offset(&api_b, &on_b, SIZE, "B")?;
    eprintln!("A killed after {sent} B sent; HEAD on B: {offset}");
    ensure!(
        offset <= sent,
        "HEAD on B says {offset}, but at most {sent} bytes were sent to A"
    );
    ensure!(
        offset > 0,
        "nothing of {sent} bytes streamed to A survived its kill: an upload only becomes \
         durable at the end of a PATCH"
    );
    let locked = patch_expect_204(
        &api_b,
        &on_b,
        &source.path,
        offset,
        SIZE - offset,
        LOCKED_FOR,
    )?;
    eprintln!("B finished the upload from {offset} after {locked} × 423");

    // A comes back; both serve the file.
    a.restart()?;
    let on_a = on(a, &upload_url)?;
    let head_a = head_offset(&api_a, &on_a, SIZE, "A (restarted)")?;
    ensure!(
        head_a == SIZE,
        "HEAD on the restarted A says {head_a}, the upload is complete at {SIZE}"
    );
    check_complete(
        &[("B", b, &api_b), ("A", a, &api_a)],
        &upload_url,
        &source.path,
        SIZE,
        &source.blake3,
    )
}

#[test]
fn small_chunks_alternate_between_instances() -> Result<()> {
    let stack = S3Stack::start()?;
    let a = stack.start_instance("a")?;
    let b = stack.start_instance("b")?;
    let result = alternate(&stack, &a, &b);
    stack.explain(result, &[("A", &a), ("B", &b)])
}

fn alternate(stack: &S3Stack, a: &Server, b: &Server) -> Result<()> {
    const SIZE: u64 = 130 * MIB + 4_321;
    const CHUNK: u64 = 5 * MIB + 4_097;
    let (tenant, api_b) = b.tenant_api("acme")?;
    let api_a = a.api(&tenant)?;
    let source = stack.source_file("chunks.bin", SIZE)?;
    let upload_url = api_b.tus_create(SIZE, "chunks.bin")?;
    let id = file_id_from_url(&upload_url)?;
    let instances = [
        ("A", on(a, &upload_url)?, &api_a),
        ("B", on(b, &upload_url)?, &api_b),
    ];

    let mut offset = 0;
    let mut patches = 0;
    while offset < SIZE {
        let len = CHUNK.min(SIZE - offset);
        let (who, url, api) = &instances[patches % 2];
        patch_expect_204(api, url, &source.path, offset, len, Duration::ZERO)
            .with_context(|| format!("PATCH {} on {who}", patches + 1))?;
        offset += len;
        patches += 1;
        let (other, other_url, other_api) = &instances[patches % 2];
        let seen = head_offset(other_api, other_url, SIZE, other)?;
        ensure!(
            seen == offset,
            "after PATCH {patches} on {who} acknowledged {offset}, HEAD on {other} says {seen}"
        );
        if patches == 1 {
            // The first PATCH ended inside the first part: its whole segments wait in the
            // bucket as pending pieces (the object itself does not exist yet).
            let keys = keys_of(stack, &id)?;
            ensure!(
                !keys.is_empty() && !keys.contains(&id),
                "after a first PATCH of {offset} B the bucket holds {keys:?} for {id}: \
                 expected pending pieces and no object yet"
            );
        }
    }
    eprintln!("{patches} PATCHes alternating between A and B");
    check_complete(
        &[("A", a, &api_a), ("B", b, &api_b)],
        &upload_url,
        &source.path,
        SIZE,
        &source.blake3,
    )?;
    // Once complete, the object is all that is left of the upload in the bucket (pending
    // pieces are removed in the background: give it a few seconds).
    eventually(Duration::from_secs(10), || {
        let keys = keys_of(stack, &id)?;
        ensure!(
            keys == [id.clone()],
            "10 s after completion the bucket holds {keys:?} for {id}, not just its object"
        );
        Ok(())
    })
}
