//! Recipients' own links (only for a share's recipients, looked up by their own selector,
//! revoked alone) and the relay's sender domains (one tenant per domain).

use anyhow::{Result, ensure};
use ferry::db::share_links::NewShareLink;
use ferry::db::{Db, DbError};
use uuid::Uuid;

use super::{audit, complete_file, share, tenant};

on_both_backends!(
    recipient_links_open_their_share_until_revoked,
    a_sender_domain_belongs_to_one_tenant,
);

fn link<'a>(
    share_id: Uuid,
    tenant_id: Uuid,
    recipient: &'a str,
    selector: &'a str,
) -> NewShareLink<'a> {
    NewShareLink {
        id: Uuid::new_v4(),
        share_id,
        tenant_id,
        recipient,
        token_selector: selector,
        token_hash: b"link-hash",
    }
}

async fn recipient_links_open_their_share_until_revoked(db: &Db) -> Result<()> {
    let t = tenant(db, "acme").await?;
    let other = tenant(db, "other").await?;
    let file = complete_file(db, t, "a", 10).await?;
    let recipients = ["x@a.eu".to_owned(), "y@a.eu".to_owned()];
    let files = [file];
    let new = share(t, "share-sel", &files, &recipients);
    db.create_share(&new, &audit(t.0)).await?;

    let x = link(new.id, t.0, "x@a.eu", "link-x");
    db.create_share_link(&x, &audit(t.0)).await?;
    // Only a recipient of the share can have a link (the schema refuses anyone else).
    let stranger = link(new.id, t.0, "z@a.eu", "link-z");
    ensure!(db.create_share_link(&stranger, &audit(t.0)).await.is_err());

    let row = db.share_by_link_selector("link-x").await?;
    ensure!(row.id == new.id && row.tenant_id == t.0);
    ensure!(row.token_hash == b"link-hash" && row.revoked_at.is_none());
    let via = row.link.clone().map(|l| (l.id, l.recipient));
    ensure!(via == Some((x.id, "x@a.eu".to_owned())), "{via:?}");
    // The two kinds of selector are looked up apart.
    ensure!(matches!(
        db.share_by_selector("link-x").await,
        Err(DbError::NotFound)
    ));
    ensure!(matches!(
        db.share_by_link_selector("share-sel").await,
        Err(DbError::NotFound)
    ));
    ensure!(db.share_by_selector("share-sel").await?.link.is_none());

    ensure!(db.is_share_recipient(t.0, new.id, "y@a.eu").await?);
    ensure!(!db.is_share_recipient(t.0, new.id, "z@a.eu").await?);
    ensure!(!db.is_share_recipient(other.0, new.id, "x@a.eu").await?);
    let listed: Vec<_> = db
        .share_links(t.0, new.id)
        .await?
        .into_iter()
        .map(|l| l.id)
        .collect();
    ensure!(listed == [x.id], "{listed:?}");
    ensure!(db.share_links(other.0, new.id).await?.is_empty());

    // Another tenant cannot revoke it; its own can, once.
    let foreign = db
        .revoke_share_link(other.0, new.id, x.id, None, &audit(other.0))
        .await;
    ensure!(matches!(foreign, Err(DbError::NotFound)), "{foreign:?}");
    let not_the_creator = db
        .revoke_share_link(t.0, new.id, x.id, Some(Uuid::new_v4()), &audit(t.0))
        .await;
    ensure!(matches!(not_the_creator, Err(DbError::NotFound)));
    db.revoke_share_link(t.0, new.id, x.id, None, &audit(t.0))
        .await?;
    db.revoke_share_link(t.0, new.id, x.id, None, &audit(t.0))
        .await?;
    ensure!(
        db.share_by_link_selector("link-x")
            .await?
            .revoked_at
            .is_some()
    );
    ensure!(
        db.share_by_selector("share-sel")
            .await?
            .revoked_at
            .is_none()
    );
    Ok(())
}

async fn a_sender_domain_belongs_to_one_tenant(db: &Db) -> Result<()> {
    let (t, _) = tenant(db, "acme").await?;
    let (other, _) = tenant(db, "other").await?;
    ensure!(db.add_relay_domain(t, "acme.example", &audit(t)).await?);
    ensure!(!db.add_relay_domain(t, "acme.example", &audit(t)).await?);
    let taken = db
        .add_relay_domain(other, "acme.example", &audit(other))
        .await;
    ensure!(matches!(taken, Err(DbError::Conflict(_))), "{taken:?}");
    ensure!(db.relay_domain_owner("acme.example").await? == Some(t));
    ensure!(db.relay_domain_owner("mail.acme.example").await?.is_none());
    let absent = db
        .remove_relay_domain(other, "acme.example", &audit(other))
        .await;
    ensure!(matches!(absent, Err(DbError::NotFound)));
    db.add_relay_domain(t, "b.example", &audit(t)).await?;
    ensure!(db.relay_domains(t).await? == ["acme.example", "b.example"]);
    db.remove_relay_domain(t, "acme.example", &audit(t)).await?;
    ensure!(db.relay_domains(t).await? == ["b.example"]);
    // Freed, another tenant may take it.
    ensure!(
        db.add_relay_domain(other, "acme.example", &audit(other))
            .await?
    );
    Ok(())
}
