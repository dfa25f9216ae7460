//! Recipients' own links: a token per recipient of a share, so each download names who it
//! was for and each link is revoked alone. Rows exist only for a share's recipients (the
//! schema's foreign key); only the token's hash is kept.

use time::OffsetDateTime;
use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::append_in;
use super::shares::{RecipientLinkRef, ShareRow};
use super::{Db, DbError, found, now, on_pool, unique_as_conflict};
use crate::audit::AuditEntry;

/// A recipient link to insert.
pub struct NewShareLink<'a> {
    /// Link id.
    pub id: Uuid,
    /// The share it opens.
    pub share_id: Uuid,
    /// The share's tenant.
    pub tenant_id: Uuid,
    /// One of the share's recipients (lower case, as the share keeps them).
    pub recipient: &'a str,
    /// Token selector.
    pub token_selector: &'a str,
    /// SHA-256 of the token's secret.
    pub token_hash: &'a [u8],
}

/// A recipient link as its share's sender sees it (never the token).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareLinkRow {
    /// Link id.
    pub id: Uuid,
    /// Whom it was minted for.
    pub recipient: String,
    /// When.
    pub created_at: OffsetDateTime,
    /// Set once revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

type RawLinkedShare = (
    Uuid,
    Uuid,
    Vec<u8>,
    Option<String>,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
    Uuid,
    String,
    Option<OffsetDateTime>,
);

/// Most links one share may have (ten per recipient of the largest share): a sender, or a
/// relay account sending the same link again and again, cannot grow the table without bound.
pub const MAX_LINKS_PER_SHARE: i64 = 10_000;

impl Db {
    /// Inserts a recipient link with its audit event. The caller has checked that the share
    /// is the tenant's and live, and that `recipient` is on it. `Conflict` once the share has
    /// [`MAX_LINKS_PER_SHARE`].
    pub async fn create_share_link(
        &self,
        new: &NewShareLink<'_>,
        audit: &AuditEntry,
    ) -> Result<OffsetDateTime, DbError> {
        let sql = "INSERT INTO share_links (id, share_id, tenant_id, recipient, token_selector,
                                            token_hash, created_at)
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
        let count = "SELECT COUNT(*) FROM share_links WHERE share_id = $1";
        let at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let (links,): (i64,) = sqlx::query_as(count)
                .bind(new.share_id)
                .fetch_one(&mut *tx)
                .await?;
            if links >= MAX_LINKS_PER_SHARE {
                return Err(DbError::Conflict("the share has as many links as it may"));
            }
            sqlx::query(sql)
                .bind(new.id)
                .bind(new.share_id)
                .bind(new.tenant_id)
                .bind(new.recipient)
                .bind(new.token_selector)
                .bind(new.token_hash)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict("link id or token selector taken"))?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(at)
    }

    /// The share behind a recipient link's selector, seen through the link: its hash, and
    /// revoked when either the link or the share is.
    pub async fn share_by_link_selector(&self, selector: &str) -> Result<ShareRow, DbError> {
        let sql = "SELECT s.id, s.tenant_id, l.token_hash, s.note, s.expires_at, s.revoked_at,
                          s.ended_at, l.id, l.recipient, l.revoked_at
                   FROM share_links l JOIN shares s ON s.id = l.share_id
                   WHERE l.token_selector = $1 AND s.tenant_id = l.tenant_id";
        let row: Option<RawLinkedShare> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(selector)
            .fetch_optional(pool)
            .await?);
        let (id, tenant_id, token_hash, note, expires_at, revoked_at, ended_at, link, to, gone) =
            found(row)?;
        Ok(ShareRow {
            id,
            tenant_id,
            token_hash,
            note,
            expires_at,
            revoked_at: gone.or(revoked_at),
            ended_at,
            link: Some(RecipientLinkRef {
                id: link,
                recipient: to,
            }),
        })
    }

    /// Whether `email` is one of share `share_id`'s recipients.
    pub async fn is_share_recipient(
        &self,
        tenant_id: Uuid,
        share_id: Uuid,
        email: &str,
    ) -> Result<bool, DbError> {
        let sql = "SELECT 1 FROM share_recipients r JOIN shares s ON s.id = r.share_id
                   WHERE r.share_id = $1 AND s.tenant_id = $2 AND r.email = $3";
        let row: Option<(i32,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(share_id)
            .bind(tenant_id)
            .bind(email)
            .fetch_optional(pool)
            .await?);
        Ok(row.is_some())
    }

    /// The recipient links of share `share_id` of `tenant_id`, oldest first.
    pub async fn share_links(
        &self,
        tenant_id: Uuid,
        share_id: Uuid,
    ) -> Result<Vec<ShareLinkRow>, DbError> {
        let sql = "SELECT id, recipient, created_at, revoked_at FROM share_links
                   WHERE share_id = $1 AND tenant_id = $2 ORDER BY created_at, id";
        Ok(on_pool!(self, pool => sqlx::query_as(sql)
            .bind(share_id)
            .bind(tenant_id)
            .fetch_all(pool)
            .await?))
    }

    /// Revokes link `link_id` of share `share_id` of `tenant_id` now, with its audit event;
    /// `only_by`: the principal that must have created the share. Idempotent (a revoked link
    /// stays as it was, nothing recorded); `NotFound` for anything not the caller's.
    pub async fn revoke_share_link(
        &self,
        tenant_id: Uuid,
        share_id: Uuid,
        link_id: Uuid,
        only_by: Option<Uuid>,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let owned = "SELECT l.revoked_at FROM share_links l JOIN shares s ON s.id = l.share_id
                     WHERE l.id = $1 AND l.share_id = $2 AND l.tenant_id = $3
                       AND s.tenant_id = $3 AND ($4 IS NULL OR s.created_by = $4)";
        let revoke = "UPDATE share_links SET revoked_at = $1
                      WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<(Option<OffsetDateTime>,)> = sqlx::query_as(owned)
                .bind(link_id)
                .bind(share_id)
                .bind(tenant_id)
                .bind(only_by)
                .fetch_optional(&mut *tx)
                .await?;
            let (revoked_at,) = found(row)?;
            if revoked_at.is_some() {
                return Ok(());
            }
            sqlx::query(revoke)
                .bind(now())
                .bind(link_id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
