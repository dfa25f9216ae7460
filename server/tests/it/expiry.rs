//! The expiry job on real stacks (SQLite + disk, PostgreSQL + disk, PostgreSQL + Garage):
//! abandoned uploads are destroyed key first, a pass cut short is completed by the next, and
//! on PostgreSQL two instances running passes at once never process a row twice.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use ferry::audit::{Actor, AuditEntry, EventKind};
use ferry::db::expiry::UploadWork;
use ferry::jobs::expiry::{CLAIM_LEASE, ExpiryPass, ExpiryReport};
use reqwest::{Method, StatusCode};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::harness::{Stack, TestServer, file_id, on_every_backend, random_bytes};

/// Past an unfinished upload's 24 h.
fn a_day_later() -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::hours(25)
}

fn pass_at(now: OffsetDateTime) -> ExpiryPass {
    ExpiryPass {
        now,
        ..ExpiryPass::default()
    }
}

/// Creates an upload of 1 MiB and sends its first 200,000 bytes (whole segments in the
/// store and a sealed tail in the database); returns its URL and id.
async fn unfinished_upload(server: &TestServer) -> Result<(String, Uuid)> {
    let url = server.create(1 << 20, "abandoned.bin").await?;
    let response = server.patch(&url, 0, random_bytes(200_000, 7)).await?;
    ensure!(
        response.status() == StatusCode::NO_CONTENT,
        "PATCH answered {}",
        response.status()
    );
    let id = file_id(&url)?;
    Ok((url, id))
}

fn nothing_done(report: &ExpiryReport) -> bool {
    report.shares_expired.is_empty()
        && report.files_expired.is_empty()
        && report.uploads_expired.is_empty()
        && report.objects_deleted.is_empty()
        && report.skipped.is_empty()
}

/// The audit event of a termination by the server's admin key.
fn termination(server: &TestServer, id: Uuid) -> Result<AuditEntry> {
    Ok(server.state.audit(
        server.tenant_id,
        EventKind::UploadTerminated,
        Actor::Operator,
        Some(id),
        serde_json::json!({}),
    )?)
}

async fn abandoned_uploads_are_destroyed_a_day_after_their_last_byte(
    server: TestServer,
) -> Result<()> {
    let (url, id) = unfinished_upload(&server).await?;
    let finished = random_bytes(300_000, 8);
    let file = server.upload(&finished, "kept.bin").await?;
    // Shared, so it lives as long as its share (14 days by default), well past this test's day.
    server.share(&[file]).await?;
    ensure!(
        server.store_holds_anything_of(id).await?,
        "the unfinished upload has stored bytes"
    );

    let early = ExpiryPass::default().run(&server.state).await?;
    ensure!(nothing_done(&early), "nothing is due yet: {early:?}");

    let later = a_day_later();
    let report = pass_at(later).run(&server.state).await?;
    ensure!(report.uploads_expired == vec![id], "expired: {report:?}");
    ensure!(report.objects_deleted == vec![id], "deleted: {report:?}");
    ensure!(!server.key_exists(id).await?, "the wrapped key is gone");
    ensure!(
        !server.store_holds_anything_of(id).await?,
        "nothing of it is left in the store"
    );
    let head = server.tus(Method::HEAD, &url).send().await?;
    ensure!(
        head.status() == StatusCode::GONE,
        "HEAD answered {}",
        head.status()
    );
    let patch = server.patch(&url, 200_000, vec![1; 10]).await?;
    ensure!(
        patch.status() == StatusCode::GONE,
        "PATCH answered {}",
        patch.status()
    );

    // A shared file lives as long as its share: untouched.
    ensure!(
        server.key_exists(file).await?,
        "a completed file keeps its key"
    );
    ensure!(
        server.share_and_download(file).await? == finished,
        "a completed file still downloads"
    );

    let again = pass_at(later).run(&server.state).await?;
    ensure!(
        nothing_done(&again),
        "a second pass finds nothing: {again:?}"
    );
    Ok(())
}

async fn a_dry_run_reports_and_changes_nothing(server: TestServer) -> Result<()> {
    let (url, id) = unfinished_upload(&server).await?;
    let report = ExpiryPass {
        dry_run: true,
        ..pass_at(a_day_later())
    }
    .run(&server.state)
    .await?;
    ensure!(
        report.dry_run && report.uploads_expired == vec![id],
        "due: {report:?}"
    );
    ensure!(server.key_exists(id).await?, "the key is still there");
    ensure!(
        server.store_holds_anything_of(id).await?,
        "the bytes are still there"
    );
    ensure!(
        server.head_offset(&url).await? == 200_000,
        "the upload is untouched"
    );
    Ok(())
}

async fn a_pass_cut_after_the_shred_is_completed_by_the_next(server: TestServer) -> Result<()> {
    let (url, id) = unfinished_upload(&server).await?;
    let later = a_day_later();
    // The first pass claims and shreds, then dies before deleting the object.
    let cut = pass_at(later);
    let claimed = cut.claim(&server.state).await?;
    let row = *claimed.first().context("the upload is claimed")?;
    ensure!(
        row.id == id && row.work == UploadWork::Unfinished,
        "claimed {claimed:?}"
    );
    ensure!(cut.shred(&server.state, row).await?, "the key is shredded");
    drop(cut);
    ensure!(
        !server.key_exists(id).await?,
        "unreadable from the shred on"
    );
    ensure!(
        server.store_holds_anything_of(id).await?,
        "the object outlived the cut pass"
    );
    let head = server.tus(Method::HEAD, &url).send().await?;
    ensure!(
        head.status() == StatusCode::GONE,
        "HEAD answered {}",
        head.status()
    );

    // While the dead pass's claim lasts, nobody else takes the row.
    let during = pass_at(later).run(&server.state).await?;
    ensure!(nothing_done(&during), "the claim still holds: {during:?}");

    let after = pass_at(later + CLAIM_LEASE + time::Duration::minutes(1))
        .run(&server.state)
        .await?;
    ensure!(
        after.uploads_expired.is_empty(),
        "the key was shredded once: {after:?}"
    );
    ensure!(
        after.objects_deleted == vec![id],
        "the next pass deletes the object: {after:?}"
    );
    ensure!(
        !server.store_holds_anything_of(id).await?,
        "nothing left in the store"
    );
    Ok(())
}

async fn a_termination_whose_object_survived_is_finished_by_the_job(
    server: TestServer,
) -> Result<()> {
    // A sender's DELETE that went all the way leaves no work.
    let (url, done) = unfinished_upload(&server).await?;
    let delete = server.tus(Method::DELETE, &url).send().await?;
    ensure!(
        delete.status() == StatusCode::NO_CONTENT,
        "DELETE answered {}",
        delete.status()
    );
    // One whose object deletion never happened (the store was down, the process died).
    let (_, cut) = unfinished_upload(&server).await?;
    server
        .state
        .db
        .terminate_upload(server.tenant_id, cut, &termination(&server, cut)?)
        .await?;
    ensure!(
        server.store_holds_anything_of(cut).await?,
        "the object outlived the termination"
    );

    // Young tombstones are left to the request that made them.
    let soon = ExpiryPass::default().run(&server.state).await?;
    ensure!(nothing_done(&soon), "young tombstones wait: {soon:?}");
    let report = pass_at(OffsetDateTime::now_utc() + time::Duration::minutes(11))
        .run(&server.state)
        .await?;
    ensure!(
        report.objects_deleted == vec![cut],
        "only the cut one: {report:?} (done {done})"
    );
    ensure!(
        !server.store_holds_anything_of(cut).await?,
        "its object is gone now"
    );
    Ok(())
}

on_every_backend!(
    abandoned_uploads_are_destroyed_a_day_after_their_last_byte,
    a_dry_run_reports_and_changes_nothing,
    a_pass_cut_after_the_shred_is_completed_by_the_next,
    a_termination_whose_object_survived_is_finished_by_the_job,
);

/// A server on PostgreSQL, a second instance on the same database and store (its own pool
/// and lease), and `count` abandoned uploads.
async fn two_instances_with_abandoned_uploads(
    count: usize,
) -> Result<(TestServer, ferry::state::AppState, BTreeSet<Uuid>)> {
    let server = TestServer::start_with(Stack::PostgresDisk).await?;
    let other = ferry::app::open((*server.state.config).clone(), server.base.clone()).await?;
    let mut all = BTreeSet::new();
    for _ in 0..count {
        all.insert(unfinished_upload(&server).await?.1);
    }
    Ok((server, other, all))
}

fn disjoint_and_complete(a: &[Uuid], b: &[Uuid], all: &BTreeSet<Uuid>, what: &str) -> Result<()> {
    let a_set: BTreeSet<Uuid> = a.iter().copied().collect();
    let b_set: BTreeSet<Uuid> = b.iter().copied().collect();
    ensure!(
        a_set.len() == a.len() && b_set.len() == b.len(),
        "{what}: a pass repeated a row"
    );
    let both: Vec<_> = a_set.intersection(&b_set).collect();
    ensure!(
        both.is_empty(),
        "{what}: processed by both instances: {both:?}"
    );
    let union: BTreeSet<Uuid> = a_set.union(&b_set).copied().collect();
    ensure!(
        &union == all,
        "{what}: {} of {} rows processed",
        union.len(),
        all.len()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_running_passes_at_once_never_process_a_row_twice() -> Result<()> {
    let (server, other, all) = two_instances_with_abandoned_uploads(30).await?;
    let later = a_day_later();
    let small_batches = |now| ExpiryPass {
        batch: 2,
        ..pass_at(now)
    };
    let (pass_a, pass_b) = (small_batches(later), small_batches(later));
    let (a, b) = tokio::join!(pass_a.run(&server.state), pass_b.run(&other));
    let (a, b) = (a?, b?);
    eprintln!(
        "instance A expired {}, instance B expired {}",
        a.uploads_expired.len(),
        b.uploads_expired.len()
    );
    disjoint_and_complete(
        &a.uploads_expired,
        &b.uploads_expired,
        &all,
        "keys shredded",
    )?;
    disjoint_and_complete(
        &a.objects_deleted,
        &b.objects_deleted,
        &all,
        "objects deleted",
    )?;
    ensure!(
        a.skipped.is_empty() && b.skipped.is_empty(),
        "nothing skipped"
    );
    for id in &all {
        ensure!(!server.key_exists(*id).await?, "{id} keeps a key");
        ensure!(
            !server.store_holds_anything_of(*id).await?,
            "{id} keeps bytes"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claims_taken_at_the_same_moment_never_overlap() -> Result<()> {
    let (server, other, all) = two_instances_with_abandoned_uploads(24).await?;
    let later = a_day_later();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    // Round after round of simultaneous claims of 5 rows each until the work is gone.
    loop {
        let (pass_a, pass_b) = (
            ExpiryPass {
                batch: 5,
                ..pass_at(later)
            },
            ExpiryPass {
                batch: 5,
                ..pass_at(later)
            },
        );
        let (got_a, got_b) = tokio::join!(pass_a.claim(&server.state), pass_b.claim(&other));
        let (got_a, got_b) = (got_a?, got_b?);
        if got_a.is_empty() && got_b.is_empty() {
            break;
        }
        a.extend(got_a.iter().map(|row| row.id));
        b.extend(got_b.iter().map(|row| row.id));
    }
    disjoint_and_complete(&a, &b, &all, "claims")
}
