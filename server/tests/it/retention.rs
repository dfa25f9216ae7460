//! Retention end to end on real stacks (SQLite + disk, PostgreSQL + disk, PostgreSQL +
//! Garage): a share lives at most the policy's `max_days`; when its expiry is processed the
//! link answers 410; a file is destroyed (key first, then object) when its last share has
//! ended or when nobody shared it within 24 h; every step is in the audit log; a pass cut
//! between the key and the object is completed by the next.

use anyhow::{Context, Result, ensure};
use ferry::db::expiry::UploadWork;
use ferry::jobs::expiry::{CLAIM_LEASE, ExpiryPass};
use reqwest::StatusCode;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::harness::{ShareOptions, TestServer, on_every_backend, random_bytes};

fn pass_at(now: OffsetDateTime) -> ExpiryPass {
    ExpiryPass {
        now,
        ..ExpiryPass::default()
    }
}

fn days(n: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + Duration::days(n)
}

/// A share of `files` asking for `retention_days`: (id, url, expires_at).
async fn share(
    server: &TestServer,
    files: &[Uuid],
    retention_days: i64,
) -> Result<(Uuid, String, OffsetDateTime)> {
    let options = ShareOptions {
        retention_days: Some(retention_days),
        ..ShareOptions::default()
    };
    let body = server
        .share_as(&server.key, files, &["dr.berg@klinik.example"], options)
        .await?;
    let expires_at =
        OffsetDateTime::parse(body["expires_at"].as_str().context("expiry")?, &Rfc3339)?;
    Ok((
        body["id"].as_str().context("id")?.parse()?,
        body["url"].as_str().context("url")?.to_owned(),
        expires_at,
    ))
}

fn events_about<'a>(
    events: &'a [serde_json::Value],
    kind: &str,
    subject: Uuid,
) -> Vec<&'a serde_json::Value> {
    let subject = subject.to_string();
    events
        .iter()
        .filter(|e| e["kind"] == kind && e["subject"].as_str() == Some(subject.as_str()))
        .collect()
}

async fn status(server: &TestServer, url: &str) -> Result<StatusCode> {
    Ok(server.client.get(url).send().await?.status())
}

async fn a_file_lives_as_long_as_its_last_share(server: TestServer) -> Result<()> {
    allow_at_most_seven_days(&server).await?;
    let file = server
        .upload(&random_bytes(200_000, 41), "scan.dcm")
        .await?;
    let (long, short) = share_it_for_a_year_and_for_two_days(&server, file).await?;
    day_three_the_short_share_ends(&server, file, &long, &short).await?;
    day_eight_the_last_share_ends_and_the_file_is_destroyed(&server, file, &long).await?;
    every_expiry_is_in_the_audit_log(&server, file, &long, &short).await?;
    a_later_pass_finds_nothing_left(&server).await
}

/// A share as [`share`] returns it: (id, url).
type Share = (Uuid, String);

async fn allow_at_most_seven_days(server: &TestServer) -> Result<()> {
    let policy = server
        .client
        .put(format!("{}/api/v1/admin/policy", server.base))
        .bearer_auth(&server.key)
        .json(&serde_json::json!({"default_days": 3, "max_days": 7}))
        .send()
        .await?;
    ensure!(
        policy.status() == StatusCode::OK,
        "policy answered {}",
        policy.status()
    );
    Ok(())
}

/// Asking for a year gets the policy's 7 days; a second share asks for 2. Returns (the long
/// share, the short share).
async fn share_it_for_a_year_and_for_two_days(
    server: &TestServer,
    file: Uuid,
) -> Result<(Share, Share)> {
    let (long, long_url, long_expiry) = share(server, &[file], 365).await?;
    ensure!(
        long_expiry <= days(7) && long_expiry > days(7) - Duration::minutes(5),
        "365 days clamped to 7: {long_expiry}"
    );
    let (short, short_url, _) = share(server, &[file], 2).await?;
    Ok(((long, long_url), (short, short_url)))
}

/// Day 3: the short share has ended (its link is gone), the file lives on for the other.
async fn day_three_the_short_share_ends(
    server: &TestServer,
    file: Uuid,
    (_, long_url): &Share,
    (short, short_url): &Share,
) -> Result<()> {
    let day3 = pass_at(days(3)).run(&server.state).await?;
    ensure!(day3.shares_expired == vec![*short], "day 3: {day3:?}");
    ensure!(day3.files_expired.is_empty(), "day 3: {day3:?}");
    ensure!(
        status(server, short_url).await? == StatusCode::GONE,
        "the short link is gone"
    );
    ensure!(
        status(server, &format!("{long_url}/f/{file}")).await? == StatusCode::OK,
        "the long link still serves the file"
    );
    ensure!(server.key_exists(file).await?, "the file keeps its key");
    Ok(())
}

/// Day 8: the last share has ended; the file is destroyed, key first, and the sender sees it.
async fn day_eight_the_last_share_ends_and_the_file_is_destroyed(
    server: &TestServer,
    file: Uuid,
    (long, long_url): &Share,
) -> Result<()> {
    let day8 = pass_at(days(8)).run(&server.state).await?;
    ensure!(day8.shares_expired == vec![*long], "day 8: {day8:?}");
    ensure!(day8.files_expired == vec![file], "day 8: {day8:?}");
    ensure!(day8.objects_deleted == vec![file], "day 8: {day8:?}");
    ensure!(!server.key_exists(file).await?, "the wrapped key is gone");
    ensure!(
        !server.store_holds_anything_of(file).await?,
        "the object is gone from the store"
    );
    for url in [long_url.clone(), format!("{long_url}/f/{file}")] {
        ensure!(
            status(server, &url).await? == StatusCode::GONE,
            "{url} is gone"
        );
    }
    let view: serde_json::Value = server
        .client
        .get(format!("{}/api/v1/shares/{long}", server.base))
        .bearer_auth(&server.key)
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        view["state"] == "expired" && view["files"][0]["available"] == false,
        "the sender sees it ended: {view}"
    );
    Ok(())
}

/// One `share.expired` per share, one `file.expired` by the system saying why.
async fn every_expiry_is_in_the_audit_log(
    server: &TestServer,
    file: Uuid,
    (long, _): &Share,
    (short, _): &Share,
) -> Result<()> {
    let events = server.audit_events("").await?;
    for id in [*short, *long] {
        ensure!(
            events_about(&events, "share.expired", id).len() == 1,
            "one share.expired for {id}"
        );
    }
    let expired = events_about(&events, "file.expired", file);
    ensure!(expired.len() == 1, "one file.expired: {events:?}");
    ensure!(
        expired[0]["actor"] == "system"
            && expired[0]["details"]["reason"] == "its last share ended",
        "{:?}",
        expired[0]
    );
    Ok(())
}

async fn a_later_pass_finds_nothing_left(server: &TestServer) -> Result<()> {
    let again = pass_at(days(9)).run(&server.state).await?;
    ensure!(
        again.shares_expired.is_empty()
            && again.files_expired.is_empty()
            && again.objects_deleted.is_empty(),
        "nothing twice: {again:?}"
    );
    Ok(())
}

async fn files_nobody_keeps_are_destroyed_a_day_after_upload(server: TestServer) -> Result<()> {
    let unshared = server
        .upload(&random_bytes(70_000, 42), "never-shared.txt")
        .await?;
    let revoked = server
        .upload(&random_bytes(70_000, 43), "revoked.txt")
        .await?;
    let kept = server.upload(&random_bytes(70_000, 44), "kept.txt").await?;
    let (revoked_share, _, _) = share(&server, &[revoked], 5).await?;
    share(&server, &[kept], 5).await?;
    let revoke = server
        .client
        .delete(format!("{}/api/v1/shares/{revoked_share}", server.base))
        .bearer_auth(&server.key)
        .send()
        .await?;
    ensure!(revoke.status() == StatusCode::NO_CONTENT, "revoked");

    let early = pass_at(OffsetDateTime::now_utc() + Duration::hours(23))
        .run(&server.state)
        .await?;
    ensure!(early.files_expired.is_empty(), "within the day: {early:?}");
    let report = pass_at(OffsetDateTime::now_utc() + Duration::hours(25))
        .run(&server.state)
        .await?;
    let mut expired = report.files_expired.clone();
    expired.sort();
    let mut expected = vec![unshared, revoked];
    expected.sort();
    ensure!(expired == expected, "a day on: {report:?}");
    ensure!(server.key_exists(kept).await?, "the shared file stays");
    let events = server.audit_events("").await?;
    let never = events_about(&events, "file.expired", unshared);
    ensure!(
        never.len() == 1
            && never[0]["details"]["reason"] == "it was not shared within 24 hours of upload",
        "{never:?}"
    );
    ensure!(
        events_about(&events, "share.revoked", revoked_share).len() == 1,
        "the revocation is recorded"
    );
    Ok(())
}

async fn a_pass_cut_between_key_and_object_is_completed_by_the_next(
    server: TestServer,
) -> Result<()> {
    let file = server.upload(&random_bytes(300_000, 45), "cut.bin").await?;
    let later = OffsetDateTime::now_utc() + Duration::hours(25);
    let cut = pass_at(later);
    let claimed = cut.claim(&server.state).await?;
    let row = *claimed.first().context("the file is claimed")?;
    ensure!(
        row.id == file && row.work == UploadWork::File,
        "claimed {claimed:?}"
    );
    ensure!(cut.shred(&server.state, row).await?, "the key is shredded");
    drop(cut); // the crash: the object is never deleted by this pass
    ensure!(
        !server.key_exists(file).await?,
        "unreadable from the shred on"
    );
    ensure!(
        server.store_holds_anything_of(file).await?,
        "the object outlived the cut pass"
    );

    let after = pass_at(later + CLAIM_LEASE + Duration::minutes(1))
        .run(&server.state)
        .await?;
    ensure!(
        after.files_expired.is_empty() && after.objects_deleted == vec![file],
        "the next pass deletes the object only: {after:?}"
    );
    ensure!(
        !server.store_holds_anything_of(file).await?,
        "nothing left in the store"
    );
    let events = server.audit_events("").await?;
    ensure!(
        events_about(&events, "file.expired", file).len() == 1,
        "one expiry event"
    );
    Ok(())
}

on_every_backend!(
    a_file_lives_as_long_as_its_last_share,
    files_nobody_keeps_are_destroyed_a_day_after_upload,
    a_pass_cut_between_key_and_object_is_completed_by_the_next,
);
