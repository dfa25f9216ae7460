//! Shares: complete files in order, lookups by token selector, all-or-nothing creation.

use anyhow::Result;
use ferry::db::shares::ShareFilesError;
use ferry::db::{Db, DbError};
use uuid::Uuid;

use super::{audit, complete_file, expiry, new_upload, share, tenant};

on_both_backends!(
    shares_list_complete_files_in_order,
    a_failed_share_leaves_nothing_behind,
    concurrent_shares_and_uploads_all_succeed,
);

/// Many senders sharing at once while uploads are created: every transaction that reads
/// before it writes must wait its turn, never fail (SQLite answered `database is locked` to
/// deferred transactions here, seen under load as 503s).
async fn concurrent_shares_and_uploads_all_succeed(db: &Db) -> Result<()> {
    let t = tenant(db, "acme").await?;
    let file = complete_file(db, t, "a", 10).await?;
    let recipients = ["x@a.eu".to_owned()];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..48 {
        let db = db.clone();
        let recipients = recipients.clone();
        tasks.spawn(async move {
            if i % 3 == 0 {
                new_upload(&db, t, Some(5)).await.map(|_| ())
            } else {
                let selector = format!("sel-{i}");
                let files = [file];
                let new = share(t, &selector, &files, &recipients);
                db.create_share(&new, &audit(new.tenant_id))
                    .await
                    .map(|_| ())
                    .map_err(Into::into)
            }
        });
    }
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done? {
            failures.push(format!("{e:#}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    Ok(())
}

async fn shares_list_complete_files_in_order(db: &Db) -> Result<()> {
    let t = tenant(db, "acme").await?;
    let a = complete_file(db, t, "a", 1).await?;
    let b = complete_file(db, t, "b", 5 << 40).await?;
    let recipients = [
        "x@a.eu".to_owned(),
        "y@a.eu".to_owned(),
        "x@a.eu".to_owned(),
    ];
    let files = [b, a];
    let new = share(t, "sel-1", &files, &recipients);
    let created = db.create_share(&new, &audit(new.tenant_id)).await?;
    let names: Vec<_> = created
        .iter()
        .map(|f| (f.id, f.size, f.blake3.as_str()))
        .collect();
    assert_eq!(names, [(b, 5 << 40, "hash-of-b"), (a, 1, "hash-of-a")]);

    let row = db.share_by_selector("sel-1").await?;
    assert_eq!((row.id, row.tenant_id), (new.id, t.0));
    assert_eq!(row.token_hash, b"token-hash");
    assert_eq!(row.note.as_deref(), Some("for you"));
    assert_eq!((row.expires_at, row.revoked_at), (expiry(), None));
    assert!(matches!(
        db.share_by_selector("sel-2").await,
        Err(DbError::NotFound)
    ));

    let listed = db.shared_files(t.0, new.id).await?;
    let ids: Vec<_> = listed.iter().map(|f| f.id).collect();
    assert_eq!(ids, [b, a]);
    let one = db.shared_file(t.0, new.id, a).await?;
    assert_eq!((one.id, one.name.as_str(), one.size), (a, "d.bin", 1));
    let outsider = complete_file(db, t, "c", 3).await?;
    assert!(matches!(
        db.shared_file(t.0, new.id, outsider).await,
        Err(DbError::NotFound)
    ));

    // A terminated file drops out of its shares.
    db.terminate_upload(t.0, b, &audit(t.0)).await?;
    let ids: Vec<_> = db
        .shared_files(t.0, new.id)
        .await?
        .iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(ids, [a]);
    assert!(matches!(
        db.shared_file(t.0, new.id, b).await,
        Err(DbError::NotFound)
    ));

    // The link token's selector is unique.
    assert!(matches!(
        db.create_share(&share(t, "sel-1", &[a], &[]), &audit(t.0))
            .await,
        Err(ShareFilesError::Db(DbError::Conflict(_)))
    ));
    Ok(())
}

async fn a_failed_share_leaves_nothing_behind(db: &Db) -> Result<()> {
    let t = tenant(db, "acme").await?;
    let done = complete_file(db, t, "a", 10).await?;
    let busy = new_upload(db, t, Some(10)).await?;
    let missing = Uuid::new_v4();
    assert!(matches!(
        db.create_share(&share(t, "s1", &[done, busy], &[]), &audit(t.0)).await,
        Err(ShareFilesError::NotComplete(id)) if id == busy
    ));
    assert!(matches!(
        db.create_share(&share(t, "s2", &[done, missing], &[]), &audit(t.0)).await,
        Err(ShareFilesError::NotFound(id)) if id == missing
    ));
    // The same file twice breaks the primary key of share_files after the share row is in:
    // the transaction takes the share row back with it.
    assert!(
        db.create_share(&share(t, "s3", &[done, done], &[]), &audit(t.0))
            .await
            .is_err()
    );
    for selector in ["s1", "s2", "s3"] {
        assert!(
            matches!(db.share_by_selector(selector).await, Err(DbError::NotFound)),
            "{selector} was left behind"
        );
    }
    Ok(())
}
