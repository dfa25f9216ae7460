//! DKIM key rotation in the database: a domain's first key signs at once, a later one waits
//! until activated, the newest activated one signs, a selector is never reused, and a removed
//! key leaves the previous activated one signing.

use anyhow::{Result, ensure};
use ferry::db::dkim_keys::StoredDkimKey;
use ferry::db::{Db, DbError};
use uuid::Uuid;

use super::{audit, tenant};

on_both_backends!(the_newest_activated_key_signs);

fn key(selector: &str) -> StoredDkimKey {
    StoredDkimKey {
        domain: "hospital.example".to_owned(),
        selector: selector.to_owned(),
        algorithm: "ed25519-sha256".to_owned(),
        key_id: Uuid::new_v4(),
        wrapped_dek: vec![1; 60],
        sealed_key: vec![2; 80],
    }
}

async fn signing(db: &Db, tenant: Uuid) -> Result<Option<String>> {
    Ok(db
        .dkim_key_for(tenant, "hospital.example")
        .await?
        .map(|k| k.selector))
}

async fn the_newest_activated_key_signs(db: &Db) -> Result<()> {
    let (t, _) = tenant(db, "acme").await?;
    let (other, _) = tenant(db, "other").await?;
    ensure!(signing(db, t).await?.is_none());
    ensure!(
        db.put_dkim_key(t, &key("s2025"), &audit(t)).await?,
        "the first key signs"
    );
    ensure!(
        !db.put_dkim_key(t, &key("s2026"), &audit(t)).await?,
        "a second one waits"
    );
    ensure!(signing(db, t).await?.as_deref() == Some("s2025"));
    let again = db.put_dkim_key(t, &key("s2025"), &audit(t)).await;
    ensure!(matches!(again, Err(DbError::Conflict(_))), "{again:?}");
    // Another tenant's key for the same domain is its own business.
    ensure!(db.put_dkim_key(other, &key("s2025"), &audit(other)).await?);

    db.activate_dkim_key(t, "hospital.example", "s2026", &audit(t))
        .await?;
    ensure!(signing(db, t).await?.as_deref() == Some("s2026"));
    let listed: Vec<(String, bool)> = db
        .dkim_keys(t)
        .await?
        .into_iter()
        .map(|k| (k.selector, k.activated_at.is_some()))
        .collect();
    ensure!(
        listed == [("s2025".to_owned(), true), ("s2026".to_owned(), true)],
        "{listed:?}"
    );
    let missing = db
        .activate_dkim_key(t, "hospital.example", "nope", &audit(t))
        .await;
    ensure!(matches!(missing, Err(DbError::NotFound)));
    db.remove_dkim_key(t, "hospital.example", "s2026", &audit(t))
        .await?;
    ensure!(signing(db, t).await?.as_deref() == Some("s2025"));
    db.remove_dkim_key(t, "hospital.example", "s2025", &audit(t))
        .await?;
    ensure!(signing(db, t).await?.is_none());
    ensure!(signing(db, other).await?.as_deref() == Some("s2025"));
    let gone = db
        .remove_dkim_key(t, "hospital.example", "s2025", &audit(t))
        .await;
    ensure!(matches!(gone, Err(DbError::NotFound)));
    Ok(())
}
