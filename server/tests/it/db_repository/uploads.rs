//! Uploads: creation, progress guarded by the offset it started from, completion,
//! termination, and values at the edges of each column type.

use anyhow::{Context, Result, bail};
use ferry::db::uploads::UNSHARED_TTL;
use ferry::db::uploads::{Checkpoint, CompletedFile, NewUpload, UploadState};
use ferry::db::{Db, DbError};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

use super::{audit, checkpoint, expiry, new_upload, save, tenant};

on_both_backends!(
    uploads_move_forward_only_from_the_offset_they_started_at,
    racing_writers_never_both_commit,
    termination_shreds_the_key_and_keeps_a_tombstone,
    times_and_large_numbers_round_trip_alike,
);

async fn uploads_move_forward_only_from_the_offset_they_started_at(db: &Db) -> Result<()> {
    let t = tenant(db, "acme").await?;
    let id = new_upload(db, t, None).await?;
    let row = db.upload(t.0, id, None).await?;
    assert_eq!((row.id, row.tenant_id, row.owner_id), (id, t.0, t.1));
    assert_eq!((row.length, row.offset), (None, 0));
    assert_eq!(
        (row.metadata.as_str(), row.filename.as_str()),
        ("filename ZC5iaW4=", "d.bin")
    );
    assert_eq!(row.state, UploadState::Uploading);
    assert_eq!(row.hash_state.as_deref(), Some(&b"empty"[..]));
    assert_eq!(
        (row.sealed_tail, row.blake3, row.completed_at),
        (None, None, None)
    );
    assert_eq!(row.expires_at, Some(expiry()));
    assert_eq!(db.wrapped_dek(t.0, id).await?, vec![7; 60]);

    save(db, t.0, id, 0, &checkpoint(100, Some(b"tail"))).await?;
    let row = db.upload(t.0, id, None).await?;
    assert_eq!((row.offset, row.length), (100, Some(1000)));
    assert_eq!(row.hash_state.as_deref(), Some(&b"state"[..]));
    assert_eq!(row.sealed_tail.as_deref(), Some(&b"tail"[..]));

    // A writer that started from a stale offset commits nothing.
    assert!(matches!(
        save(db, t.0, id, 0, &checkpoint(200, None)).await,
        Err(DbError::Conflict(_))
    ));
    assert!(matches!(
        db.complete_upload(
            t.0,
            id,
            0,
            &CompletedFile {
                length: 1000,
                blake3_hex: "h",
                crc32: None
            },
            &audit(t.0)
        )
        .await,
        Err(DbError::Conflict(_))
    ));
    assert_eq!(db.upload(t.0, id, None).await?.offset, 100);

    save(db, t.0, id, 100, &checkpoint(1000, None)).await?;
    assert_eq!(db.upload(t.0, id, None).await?.sealed_tail, None);
    db.complete_upload(
        t.0,
        id,
        1000,
        &CompletedFile {
            length: 1000,
            blake3_hex: "abc",
            crc32: Some(7),
        },
        &audit(t.0),
    )
    .await?;
    let row = db.upload(t.0, id, None).await?;
    assert_eq!(row.state, UploadState::Complete);
    assert_eq!((row.offset, row.length), (1000, Some(1000)));
    assert_eq!(row.blake3.as_deref(), Some("abc"));
    assert_eq!(row.crc32, Some(7));
    assert_eq!((row.hash_state, row.sealed_tail), (None, None));
    let completed = row.completed_at.context("completed_at set")?;
    assert!((OffsetDateTime::now_utc() - completed).abs() < time::Duration::minutes(1));
    // Unshared, a file is due for destruction a day after its last byte.
    assert_eq!(row.expires_at, Some(completed + UNSHARED_TTL));

    // A complete upload takes no more progress, not even from its own offset.
    assert!(matches!(
        save(db, t.0, id, 1000, &checkpoint(1000, None)).await,
        Err(DbError::Conflict(_))
    ));
    assert!(matches!(
        db.complete_upload(
            t.0,
            id,
            1000,
            &CompletedFile {
                length: 1000,
                blake3_hex: "abc",
                crc32: Some(7)
            },
            &audit(t.0)
        )
        .await,
        Err(DbError::Conflict(_))
    ));
    // Two uploads may not share an id.
    let again = NewUpload {
        id,
        tenant_id: t.0,
        owner_id: t.1,
        length: None,
        metadata: "",
        filename: "",
        wrapped_dek: &[1],
        hash_state: &[],
        expires_at: expiry(),
    };
    assert!(
        db.create_upload(&again, &audit(again.tenant_id))
            .await
            .is_err()
    );
    assert_eq!(db.wrapped_dek(t.0, id).await?, vec![7; 60]);
    Ok(())
}

async fn racing_writers_never_both_commit(db: &Db) -> Result<()> {
    let t = tenant(db, "acme").await?;
    for round in 0..20u64 {
        let id = new_upload(db, t, Some(1000)).await?;
        let (ten, twenty) = (checkpoint(10, None), checkpoint(20, None));
        let (a, b) = tokio::join!(save(db, t.0, id, 0, &ten), save(db, t.0, id, 0, &twenty),);
        let offset = match (a, b) {
            (Ok(()), Err(DbError::Conflict(_))) => 10,
            (Err(DbError::Conflict(_)), Ok(())) => 20,
            other => bail!("round {round}: expected one winner, got {other:?}"),
        };
        assert_eq!(db.upload(t.0, id, None).await?.offset, offset);
    }
    Ok(())
}

async fn termination_shreds_the_key_and_keeps_a_tombstone(db: &Db) -> Result<()> {
    let t = tenant(db, "acme").await?;
    let id = new_upload(db, t, Some(10)).await?;
    save(db, t.0, id, 0, &checkpoint(5, Some(b"tail"))).await?;
    db.terminate_upload(t.0, id, &audit(t.0)).await?;
    let row = db.upload(t.0, id, None).await?;
    assert_eq!(row.state, UploadState::Terminated);
    assert_eq!((row.hash_state, row.sealed_tail), (None, None));
    assert_eq!(row.offset, 5);
    assert!(matches!(
        db.wrapped_dek(t.0, id).await,
        Err(DbError::NotFound)
    ));
    // Idempotent; and a terminated upload takes no progress.
    db.terminate_upload(t.0, id, &audit(t.0)).await?;
    assert!(matches!(
        save(db, t.0, id, 5, &checkpoint(10, None)).await,
        Err(DbError::Conflict(_))
    ));
    assert!(matches!(
        db.terminate_upload(t.0, Uuid::new_v4(), &audit(t.0)).await,
        Err(DbError::NotFound)
    ));
    Ok(())
}

async fn times_and_large_numbers_round_trip_alike(db: &Db) -> Result<()> {
    let t = tenant(db, "acme").await?;
    let id = new_upload(db, t, Some(u64::from(u32::MAX) * 3)).await?;
    // Times are kept to the microsecond on both backends (PostgreSQL's resolution).
    let precise = Checkpoint {
        offset: 5 << 40,
        hash_state: vec![0; 1024],
        sealed_tail: Some(vec![0xff; 65_536 + 28]),
        store_state: Some(br#"{"upload_id":"x"}"#.to_vec()),
    };
    let length = Some(u64::from(u32::MAX) * 3);
    let expires_at = datetime!(2031-12-31 23:59:59.123456789 UTC);
    db.save_checkpoint(t.0, id, 0, &precise, length, expires_at)
        .await?;
    let row = db.upload(t.0, id, None).await?;
    assert_eq!(row.offset, 5 << 40);
    assert_eq!(row.length, Some(u64::from(u32::MAX) * 3));
    assert_eq!(row.hash_state.map(|h| h.len()), Some(1024));
    assert_eq!(row.sealed_tail.as_deref(), Some(&[0xff; 65_536 + 28][..]));
    assert_eq!(
        row.store_state.as_deref(),
        Some(&br#"{"upload_id":"x"}"#[..])
    );
    assert_eq!(
        row.expires_at,
        Some(datetime!(2031-12-31 23:59:59.123456 UTC))
    );
    // A time in another offset is the same instant.
    let paris = datetime!(2032-06-01 12:00:00 +2);
    db.save_checkpoint(t.0, id, 5 << 40, &precise, length, paris)
        .await?;
    assert_eq!(db.upload(t.0, id, None).await?.expires_at, Some(paris));
    // Text survives byte for byte.
    let name = "naïve 🚀 'quoted' \"file\" \\ %_.bin";
    db.create_tenant(name).await?;
    assert_eq!(db.tenant_by_name(name).await?.name, name);
    assert!(matches!(
        db.tenant_by_name("naïve %").await,
        Err(DbError::NotFound)
    ));
    Ok(())
}
