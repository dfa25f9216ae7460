//! The object store fails under an upload; nothing acknowledged is lost and nothing is claimed
//! that the store does not hold. One `ferry serve` on PostgreSQL + Garage (S3).
//!
//! `garage_stopped_under_a_patch`: a 150 MiB + 999 B upload streams in one PATCH and pauses at
//! 100 MiB + 12,345 B (inside the second 64 MiB part) until the server has committed it (HEAD
//! shows exactly that offset: the whole first part plus a pending piece and a sealed tail);
//! then Garage is stopped and the body goes on. The PATCH must fail retryably (503, or a cut
//! connection), HEAD (which reads only the database) must still show exactly the committed
//! offset — nothing after it could be made durable — and a new PATCH must fail with 503 too
//! while Garage is down, moving nothing. Garage restarts; the client resumes from HEAD's
//! offset and finishes; the download is byte-identical (BLAKE3).
//!
//! `garage_killed_with_parts_in_flight`: a 200 MiB + 4,321 B upload streams at full speed;
//! Garage is SIGKILLed once 140 MiB were sent (a part upload or pending piece may be in
//! flight). The PATCH fails retryably; HEAD never exceeds what was sent nor goes below an
//! offset HEAD showed before; after Garage's restart the client resumes from HEAD, finishes,
//! and the download is byte-identical — which proves that the offset HEAD showed was durable
//! in the store.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ferry_e2e::{
    Api, PatchOutcome, S3Stack, Server, SourceFile, download_and_compare, file_id_from_url,
    patch_expect_204, start_patch, wait_for_offset,
};

const MIB: u64 = 1 << 20;

/// Brings Garage back, checks that HEAD still shows `offset`, sends the rest of `source`
/// (`size` bytes) from there and checks the finished file.
fn resume_after_restart(
    stack: &mut S3Stack,
    api: &Api,
    upload_url: &str,
    source: &SourceFile,
    size: u64,
    offset: u64,
) -> Result<()> {
    stack.garage.restart()?;
    let resume = api.tus_offset(upload_url, size)?;
    ensure!(
        resume == offset,
        "HEAD after Garage's restart says {resume}, before it {offset}"
    );
    patch_expect_204(
        api,
        upload_url,
        &source.path,
        resume,
        size - resume,
        Duration::from_secs(30),
    )
    .context("resuming after Garage's restart")?;
    check_complete(api, upload_url, &source.path, size, &source.blake3)
}

/// A PATCH that the store's failure must have failed: a 503 (Ferry's answer to a store
/// failure, which tus clients retry) or a connection cut mid-body. Returns a description.
fn retryable_failure(outcome: Result<PatchOutcome>, what: &str) -> Result<String> {
    match outcome {
        Err(e) => Ok(format!("transport error: {e:#}")),
        Ok(o) => {
            ensure!(
                o.status == 503,
                "{what}: answered {} with Upload-Offset {:?} (expected 503 or a cut \
                 connection, since the store was down): {}",
                o.status,
                o.offset,
                o.body
            );
            Ok(format!("503: {}", o.body))
        }
    }
}

/// Shares the finished file and checks the API's view and a full download against `source`.
fn check_complete(
    api: &Api,
    upload_url: &str,
    source: &Path,
    size: u64,
    blake3: &str,
) -> Result<()> {
    let id = file_id_from_url(upload_url)?;
    let info = api.file(&id)?;
    ensure!(
        info.state == "complete" && info.offset == size && info.blake3.as_deref() == Some(blake3),
        "GET /api/v1/files/{id}: {info:?}, source {size} B, blake3 {blake3}"
    );
    let share = api.create_share(&[&id], &["a@x.eu"], None)?;
    let got = download_and_compare(&share.file_url(&id), source)?;
    ensure!(
        got.blake3 == blake3 && got.bytes == size,
        "download: {} B with BLAKE3 {}, the source has {size} B and {blake3}",
        got.bytes,
        got.blake3
    );
    Ok(())
}

#[test]
fn garage_stopped_under_a_patch() -> Result<()> {
    let mut stack = S3Stack::start()?;
    let server = stack.start_instance("one")?;
    let result = stopped_under_a_patch(&mut stack, &server);
    stack.explain(result, &[("one", &server)])
}

fn stopped_under_a_patch(stack: &mut S3Stack, server: &Server) -> Result<()> {
    const SIZE: u64 = 150 * MIB + 999;
    let (_, api) = server.tenant_api("acme")?;
    let source = stack.source_file("fault.bin", SIZE)?;
    let upload_url = api.tus_create(SIZE, "fault.bin")?;

    // The body pauses inside the second part; the server commits what it got (1 s idle).
    let pause = 100 * MIB + 12_345;
    let patch = start_patch(&api, &upload_url, &source.path, 0, SIZE, Some(pause))?;
    patch.wait_paused(Duration::from_secs(300))?;
    let committed = wait_for_offset(&api, &upload_url, SIZE, pause, Duration::from_secs(20))?;
    ensure!(
        committed == pause,
        "with the body paused at {pause} for 20 s, HEAD says {committed}: a stalled PATCH on \
         the S3 store does not commit what arrived"
    );

    // The store goes away; the body goes on.
    stack.garage.stop()?;
    let sent_before = patch.sent();
    let outcome = patch.join_within(Duration::from_secs(120));
    let failure = retryable_failure(outcome, "the PATCH that outlived Garage")?;
    eprintln!("PATCH with Garage stopped after {sent_before} B: {failure}");

    // HEAD reads the database only: it answers while the store is down, and nothing past the
    // last commit can have become durable.
    let offset = api.tus_offset(&upload_url, SIZE)?;
    ensure!(
        offset == committed,
        "with Garage down, HEAD says {offset}; the last commit before Garage stopped was at \
         {committed}, and nothing could be made durable since"
    );

    // A new PATCH while the store is down fails, and moves nothing.
    let attempt = start_patch(&api, &upload_url, &source.path, offset, MIB + 7, None)?
        .join_within(Duration::from_secs(120));
    let failure = retryable_failure(attempt, "a PATCH while Garage is down")?;
    eprintln!("PATCH while Garage is down: {failure}");
    let still = api.tus_offset(&upload_url, SIZE)?;
    ensure!(
        still == offset,
        "a PATCH that failed while Garage was down moved the offset from {offset} to {still}"
    );

    // The store is back: resume from HEAD and finish.
    resume_after_restart(stack, &api, &upload_url, &source, SIZE, offset)
}

#[test]
fn garage_killed_with_parts_in_flight() -> Result<()> {
    let mut stack = S3Stack::start()?;
    let server = stack.start_instance("one")?;
    let result = killed_with_parts_in_flight(&mut stack, &server);
    stack.explain(result, &[("one", &server)])
}

fn killed_with_parts_in_flight(stack: &mut S3Stack, server: &Server) -> Result<()> {
    const SIZE: u64 = 200 * MIB + 4_321;
    let (_, api) = server.tenant_api("acme")?;
    let source = stack.source_file("crash.bin", SIZE)?;
    let upload_url = api.tus_create(SIZE, "crash.bin")?;

    // Full speed; HEAD is polled along the way (every offset it shows is acknowledged).
    let mut seen = 0;
    let patch = start_patch(&api, &upload_url, &source.path, 0, SIZE, None)?;
    let mut last_poll = Instant::now();
    patch.wait_sent(140 * MIB, Duration::from_secs(300), || {
        if last_poll.elapsed() >= Duration::from_millis(20) {
            last_poll = Instant::now();
            let offset = api.tus_offset(&upload_url, SIZE)?;
            ensure!(
                offset >= seen,
                "HEAD went back from {seen} to {offset} during the PATCH"
            );
            seen = offset;
        }
        Ok(())
    })?;
    stack.garage.kill()?;
    let sent = patch.sent();
    let outcome = patch.join_within(Duration::from_secs(120));
    let failure = retryable_failure(outcome, "the PATCH during which Garage was killed")?;
    let offset = api.tus_offset(&upload_url, SIZE)?;
    eprintln!(
        "Garage killed after {sent} B sent (HEAD had shown {seen}); PATCH: {failure}; HEAD: \
         {offset}"
    );
    ensure!(
        offset <= sent,
        "HEAD says {offset}, but at most {sent} bytes were sent"
    );
    ensure!(
        offset >= seen,
        "HEAD says {offset}, below {seen} which it showed before Garage was killed"
    );

    resume_after_restart(stack, &api, &upload_url, &source, SIZE, offset)
}
