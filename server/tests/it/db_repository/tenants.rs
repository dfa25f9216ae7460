//! Tenants, API keys, and isolation: another tenant's ids are never found.

use anyhow::Result;
use ferry::auth::Role;
use ferry::db::shares::ShareFilesError;
use ferry::db::uploads::{CompletedFile, UploadState};
use ferry::db::{Db, DbError};
use uuid::Uuid;

use super::{audit, checkpoint, complete_file, new_upload, save, share, tenant};

on_both_backends!(tenants_and_api_keys, other_tenants_rows_are_not_found,);

async fn tenants_and_api_keys(db: &Db) -> Result<()> {
    db.ping().await?;
    let acme = db.create_tenant("acme").await?;
    assert_eq!(acme.name, "acme");
    assert_eq!(db.tenant_by_name("acme").await?.id, acme.id);
    assert!(matches!(
        db.create_tenant("acme").await,
        Err(DbError::Conflict(_))
    ));
    assert!(matches!(
        db.tenant_by_name("nobody").await,
        Err(DbError::NotFound)
    ));

    let key = Uuid::new_v4();
    db.insert_api_key(
        key,
        acme.id,
        Role::Sender,
        "selector1",
        &[1, 2, 3],
        &audit(acme.id),
    )
    .await?;
    let row = db.api_key_by_selector("selector1").await?;
    assert_eq!(
        (row.id, row.tenant_id, row.role, row.secret_hash),
        (key, acme.id, Role::Sender, vec![1, 2, 3])
    );
    assert!(matches!(
        db.insert_api_key(
            Uuid::new_v4(),
            acme.id,
            Role::Admin,
            "selector1",
            &[4],
            &audit(acme.id)
        )
        .await,
        Err(DbError::Conflict(_))
    ));
    assert!(matches!(
        db.api_key_by_selector("selector2").await,
        Err(DbError::NotFound)
    ));
    // Foreign keys hold on both: a key for a tenant that does not exist is refused.
    let nobody = Uuid::new_v4();
    assert!(matches!(
        db.insert_api_key(
            Uuid::new_v4(),
            nobody,
            Role::Admin,
            "selector3",
            &[5],
            &audit(nobody)
        )
        .await,
        Err(DbError::Sqlx(_))
    ));
    Ok(())
}

async fn other_tenants_rows_are_not_found(db: &Db) -> Result<()> {
    let acme = tenant(db, "acme").await?;
    let evil = tenant(db, "evil").await?;
    let file = complete_file(db, acme, "a", 10).await?;
    let open = new_upload(db, acme, Some(10)).await?;
    let files = [file];
    let new = share(acme, "sel", &files, &[]);
    db.create_share(&new, &audit(new.tenant_id)).await?;

    assert!(matches!(
        db.upload(evil.0, file, None).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        db.wrapped_dek(evil.0, file).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        db.terminate_upload(evil.0, file, &audit(evil.0)).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        save(db, evil.0, open, 0, &checkpoint(5, None)).await,
        Err(DbError::Conflict(_))
    ));
    assert!(matches!(
        db.complete_upload(
            evil.0,
            open,
            0,
            &CompletedFile {
                length: 10,
                blake3_hex: "h",
                crc32: None
            },
            &audit(evil.0)
        )
        .await,
        Err(DbError::Conflict(_))
    ));
    assert!(db.shared_files(evil.0, new.id).await?.is_empty());
    assert!(matches!(
        db.shared_file(evil.0, new.id, file).await,
        Err(DbError::NotFound)
    ));
    assert!(matches!(
        db.create_share(&share(evil, "evil-sel", &[file], &[]), &audit(evil.0)).await,
        Err(ShareFilesError::NotFound(id)) if id == file
    ));
    // Nothing of acme's moved.
    assert_eq!(db.upload(acme.0, open, None).await?.offset, 0);
    assert_eq!(
        db.upload(acme.0, file, None).await?.state,
        UploadState::Complete
    );
    assert_eq!(db.wrapped_dek(acme.0, file).await?, vec![7; 60]);
    Ok(())
}
