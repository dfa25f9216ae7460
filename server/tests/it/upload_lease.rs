//! One writer per upload across instances: two `UploadLocks` with PostgreSQL leases on one
//! scratch database stand for two Ferry instances.
//!
//! Needs PostgreSQL (see `ferry_testkit::ScratchDb`); a test never passes by skipping.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use ferry::writer_lock::postgres::RETRY_EVERY;
use ferry::writer_lock::{TAKEOVER_WAIT, UploadLocks};
use ferry_testkit::ScratchDb;
use sqlx::{Connection, PgConnection};
use tokio::time::Instant;
use uuid::Uuid;

/// Generous bound for things that must happen "soon" (a lost session noticed): a failure
/// bound, never a speed claim.
const SOON: Duration = Duration::from_secs(15);

async fn two_instances(db: &ScratchDb) -> Result<(UploadLocks, UploadLocks)> {
    Ok((
        UploadLocks::with_postgres_advisory_locks(db.url()).await?,
        UploadLocks::with_postgres_advisory_locks(db.url()).await?,
    ))
}

fn session_name(locks: &UploadLocks) -> Result<String> {
    Ok(locks
        .advisory_session_name()
        .context("a PostgreSQL lease has a session")?
        .to_owned())
}

/// Advisory locks granted to the session called `name`.
async fn advisory_locks_of(admin: &mut PgConnection, name: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE a.application_name = $1 AND l.locktype = 'advisory' AND l.granted",
    )
    .bind(name)
    .fetch_one(admin)
    .await?)
}

#[tokio::test]
async fn a_newcomer_on_another_instance_asks_the_holder_to_stop_and_gets_the_upload() -> Result<()>
{
    let db = ScratchDb::create()?;
    let (a, b) = two_instances(&db).await?;
    let id = Uuid::new_v4();

    let held = a.acquire(id).await?;
    let asked = held.stop.clone();
    let holder = tokio::spawn(async move {
        // A well-behaved holder: stops when asked, commits, releases.
        held.stop.cancelled().await;
        drop(held);
    });
    let taken = b.acquire(id).await?;
    ensure!(asked.is_cancelled(), "A's writer was asked to stop");
    ensure!(!taken.stop.is_cancelled(), "B's writer starts unasked");
    holder.await?;

    // And back: now B is the one asked.
    let asked = taken.stop.clone();
    let holder = tokio::spawn(async move {
        taken.stop.cancelled().await;
        drop(taken);
    });
    let again = a.acquire(id).await?;
    ensure!(asked.is_cancelled(), "B's writer was asked to stop");
    ensure!(!again.stop.is_cancelled());
    holder.await?;
    Ok(())
}

#[tokio::test]
async fn a_holder_on_another_instance_that_never_lets_go_leaves_the_newcomer_locked_out()
-> Result<()> {
    let db = ScratchDb::create()?;
    let (a, b) = two_instances(&db).await?;
    let id = Uuid::new_v4();

    let stubborn = a.acquire(id).await?;
    let started = Instant::now();
    let refused = b.acquire(id).await;
    let waited = started.elapsed();
    ensure!(refused.is_err(), "B must not get an upload A still holds");
    ensure!(stubborn.stop.is_cancelled(), "A's writer was asked to stop");
    ensure!(
        waited + 2 * RETRY_EVERY >= TAKEOVER_WAIT,
        "B waited for the holder before giving up (waited {waited:?})"
    );
    let mut admin = PgConnection::connect(db.url()).await?;
    ensure!(
        advisory_locks_of(&mut admin, &session_name(&a)?).await? == 1,
        "A still holds its lease"
    );
    admin.close().await?;

    // Once A lets go, B gets it.
    drop(stubborn);
    let taken = b.acquire(id).await?;
    ensure!(!taken.stop.is_cancelled());
    ensure!(!taken.session_lost());
    Ok(())
}

#[tokio::test]
async fn when_an_instance_loses_its_lease_session_its_writers_stop_and_others_get_the_upload()
-> Result<()> {
    let db = ScratchDb::create()?;
    let (a, b) = two_instances(&db).await?;
    let id = Uuid::new_v4();
    let held = a.acquire(id).await?;

    // What PostgreSQL does when instance A dies: its session ends.
    let mut admin = PgConnection::connect(db.url()).await?;
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(session_name(&a)?)
    .fetch_all(&mut admin)
    .await?;
    ensure!(
        terminated == [true],
        "exactly A's lease session ends: {terminated:?}"
    );

    // A notices on its own (nobody has asked for the upload yet) and stops its writer.
    tokio::time::timeout(SOON, held.stop.cancelled())
        .await
        .context("A's writer was not asked to stop after A's lease session ended")?;
    ensure!(held.session_lost(), "A's writer knows its lease is gone");

    // B gets the upload without A letting go.
    let taken = b.acquire(id).await?;
    ensure!(!taken.stop.is_cancelled());
    ensure!(!taken.session_lost());

    // A's writer finishes late; that must not touch B's lease. A opens a new session for its
    // next upload, and its requests run in order, so the stale release has been handled then.
    drop(held);
    let other = a.acquire(Uuid::new_v4()).await?;
    ensure!(!other.stop.is_cancelled());
    ensure!(
        advisory_locks_of(&mut admin, &session_name(&b)?).await? == 1,
        "B still holds its lease"
    );
    ensure!(!taken.stop.is_cancelled(), "nobody asked B to stop");
    admin.close().await?;
    Ok(())
}

#[tokio::test]
async fn different_uploads_do_not_wait_for_each_other_and_released_leases_are_free() -> Result<()> {
    let db = ScratchDb::create()?;
    let (a, b) = two_instances(&db).await?;
    let (x, y) = (Uuid::new_v4(), Uuid::new_v4());

    let on_a = a.acquire(x).await?;
    let on_b = b.acquire(y).await?;
    ensure!(!on_a.stop.is_cancelled() && !on_b.stop.is_cancelled());
    drop((on_a, on_b));

    // The same instance takes an upload again right after releasing it, several times over.
    for _ in 0..3 {
        let again = a.acquire(x).await?;
        ensure!(!again.stop.is_cancelled());
    }
    // A takeover inside one instance still works with the lease underneath.
    let first = a.acquire(x).await?;
    let asked = first.stop.clone();
    let holder = tokio::spawn(async move {
        first.stop.cancelled().await;
        drop(first);
    });
    let second = a.acquire(x).await?;
    ensure!(asked.is_cancelled());
    holder.await?;
    drop(second);

    // Every lock was matched by one unlock: the other instance gets the upload without
    // asking anyone (if A still held it, B would be refused after the takeover wait).
    let on_b = b.acquire(x).await?;
    ensure!(!on_b.stop.is_cancelled());
    let mut admin = PgConnection::connect(db.url()).await?;
    ensure!(
        advisory_locks_of(&mut admin, &session_name(&a)?).await? == 0,
        "A holds no lease after releasing everything"
    );
    admin.close().await?;
    Ok(())
}

#[tokio::test]
async fn an_in_process_lock_set_has_no_lease_session() {
    assert!(UploadLocks::in_process().advisory_session_name().is_none());
}
