//! Shares: one link token for a set of complete files, with its recipients.

use time::OffsetDateTime;
use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::{WriteConn, append_in, on_conn};
use super::uploads::UNSHARED_TTL;
use super::{Db, DbError, earlier, found, now, on_pool, stored_time, unique_as_conflict};
use crate::audit::AuditEntry;

/// Everything needed to create a share in one transaction.
pub struct NewShare<'a> {
    /// Share id.
    pub id: Uuid,
    /// Owning tenant; every file must belong to it.
    pub tenant_id: Uuid,
    /// The creating principal (API key or signed-in person).
    pub created_by: Uuid,
    /// Link token selector.
    pub token_selector: &'a str,
    /// SHA-256 of the token's secret.
    pub token_hash: &'a [u8],
    /// Optional note for the recipients' page.
    pub note: Option<&'a str>,
    /// When the link stops working.
    pub expires_at: OffsetDateTime,
    /// Files, in display order.
    pub files: &'a [Uuid],
    /// The key that must have created each file (`None`: any key of the tenant), from
    /// [`crate::auth::Caller::must_have_created`]; other files are `NotFound`.
    pub files_created_by: Option<Uuid>,
    /// Recipient addresses.
    pub recipients: &'a [String],
}

/// A share looked up by its link token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ShareRow {
    /// Share id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// SHA-256 of the token's secret, to verify the presented token.
    pub token_hash: Vec<u8>,
    /// Optional note.
    pub note: Option<String>,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// Set once revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Set once its end (revocation or expiry) was recorded.
    pub ended_at: Option<OffsetDateTime>,
    /// The recipient link the token was, if it was one (not the share's own token).
    #[sqlx(skip)]
    pub link: Option<RecipientLinkRef>,
}

/// A recipient's own link, as a download through it is recorded.
#[derive(Debug, Clone)]
pub struct RecipientLinkRef {
    /// Link id.
    pub id: Uuid,
    /// Whom it was minted for.
    pub recipient: String,
}

/// A file as recipients see it.
#[derive(Debug, Clone)]
pub struct SharedFile {
    /// File id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Plaintext size.
    pub size: u64,
    /// Hex BLAKE3.
    pub blake3: String,
    /// CRC-32 (for the archive's headers); `None` for a file completed before it was kept.
    pub crc32: Option<u32>,
    /// When its upload completed (the archive's entry time).
    pub completed_at: OffsetDateTime,
}

/// Why files cannot be shared.
#[derive(Debug, thiserror::Error)]
pub enum ShareFilesError {
    /// The file does not exist for this tenant.
    #[error("file {0} not found")]
    NotFound(Uuid),
    /// The file is not complete (still uploading or terminated).
    #[error("file {0} is not complete")]
    NotComplete(Uuid),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for ShareFilesError {
    fn from(e: sqlx::Error) -> Self {
        ShareFilesError::Db(e.into())
    }
}

/// The columns a [`SharedFile`] is read from, in this order (see [`SHARED_COLUMNS`]).
type RawShared = (
    Uuid,
    String,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<OffsetDateTime>,
);
/// A file's display columns plus its upload state.
type FileWithState = (
    Uuid,
    String,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<OffsetDateTime>,
    String,
);

/// The `uploads` columns of a [`RawShared`], as alias `u`.
const SHARED_COLUMNS: &str = "u.id, u.filename, u.length, u.blake3, u.crc32, u.completed_at";

fn shared_from_raw((id, name, size, blake3, crc32, completed_at): RawShared) -> SharedFile {
    SharedFile {
        id,
        name,
        size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        blake3: blake3.unwrap_or_default(),
        crc32: crc32.and_then(|c| u32::try_from(c).ok()),
        completed_at: completed_at.unwrap_or(OffsetDateTime::UNIX_EPOCH),
    }
}

/// Sets complete file `id`'s `expires_at` to when it may be destroyed: the end of its last
/// share that is not revoked, and never before [`UNSHARED_TTL`] after its last byte. Nothing
/// for rows that are not complete files.
pub(crate) async fn keep_file_until(
    conn: WriteConn<'_>,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<(), DbError> {
    let completed = "SELECT completed_at FROM uploads
                     WHERE id = $1 AND tenant_id = $2 AND state = 'complete'";
    let live_ends = "SELECT s.expires_at FROM share_files f JOIN shares s ON s.id = f.share_id
                     WHERE f.upload_id = $1 AND s.tenant_id = $2 AND s.revoked_at IS NULL";
    let keep = "UPDATE uploads SET expires_at = $1 WHERE id = $2 AND tenant_id = $3";
    on_conn!(conn, conn => {
            let row: Option<(Option<OffsetDateTime>,)> = sqlx::query_as(completed)
                .bind(id)
                .bind(tenant_id)
                .fetch_optional(&mut *conn)
                .await?;
            let Some((completed_at,)) = row else {
                return Ok(());
            };
            let ends: Vec<(OffsetDateTime,)> = sqlx::query_as(live_ends)
                .bind(id)
                .bind(tenant_id)
                .fetch_all(&mut *conn)
                .await?;
            let unshared = completed_at.unwrap_or_else(now) + UNSHARED_TTL;
            let until = ends
                .into_iter()
                .map(|(end,)| end)
                .fold(unshared, OffsetDateTime::max);
            sqlx::query(keep)
                .bind(stored_time(until))
                .bind(id)
                .bind(tenant_id)
                .execute(&mut *conn)
                .await?;
    });
    Ok(())
}

impl Db {
    /// When each of `files` (those of `tenant_id` created by `created_by`, if given) was
    /// created and completed, for the ones that are complete: the rule of how long a file
    /// may live counts from these.
    pub async fn file_ages(
        &self,
        tenant_id: Uuid,
        files: &[Uuid],
        created_by: Option<Uuid>,
    ) -> Result<Vec<(OffsetDateTime, OffsetDateTime)>, DbError> {
        let sql = "SELECT created_at, completed_at FROM uploads
                   WHERE id = $1 AND tenant_id = $2 AND state = 'complete'
                       AND completed_at IS NOT NULL AND ($3 IS NULL OR owner_id = $3)";
        let mut ages = Vec::with_capacity(files.len());
        on_pool!(self, pool => {
            for file in files {
                let row: Option<(OffsetDateTime, OffsetDateTime)> = sqlx::query_as(sql)
                    .bind(file)
                    .bind(tenant_id)
                    .bind(created_by)
                    .fetch_optional(pool)
                    .await?;
                ages.extend(row);
            }
        });
        Ok(ages)
    }

    /// Creates a share over complete files of its tenant, with its audit event, and keeps
    /// each file at least as long as the share; returns the files as shared.
    pub async fn create_share(
        &self,
        new: &NewShare<'_>,
        audit: &AuditEntry,
    ) -> Result<Vec<SharedFile>, ShareFilesError> {
        let file_sql = format!(
            "SELECT {SHARED_COLUMNS}, u.state FROM uploads u
             WHERE u.id = $1 AND u.tenant_id = $2 AND ($3 IS NULL OR u.owner_id = $3)"
        );
        let share_sql = "INSERT INTO shares (id, tenant_id, created_by, token_selector,
                             token_hash, note, created_at, expires_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        let member_sql = "INSERT INTO share_files (share_id, upload_id, position)
                          VALUES ($1, $2, $3)";
        // A recipient listed twice is one recipient.
        let recipient_sql = "INSERT INTO share_recipients (share_id, email) VALUES ($1, $2)
                             ON CONFLICT DO NOTHING";
        let keep_sql = format!(
            "UPDATE uploads SET expires_at = $1
             WHERE id = $2 AND tenant_id = $3 AND state = 'complete'
                 AND (expires_at IS NULL OR {})",
            earlier(self.backend(), "expires_at", "$1")
        );
        let files = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let mut files = Vec::with_capacity(new.files.len());
            for file in new.files {
                let row: Option<FileWithState> = sqlx::query_as(&file_sql)
                    .bind(file)
                    .bind(new.tenant_id)
                    .bind(new.files_created_by)
                    .fetch_optional(&mut *tx)
                    .await?;
                let (id, name, size, blake3, crc32, completed_at, state) =
                    row.ok_or(ShareFilesError::NotFound(*file))?;
                if state != "complete" {
                    return Err(ShareFilesError::NotComplete(*file));
                }
                files.push(shared_from_raw((id, name, size, blake3, crc32, completed_at)));
            }
            sqlx::query(share_sql)
                .bind(new.id)
                .bind(new.tenant_id)
                .bind(new.created_by)
                .bind(new.token_selector)
                .bind(new.token_hash)
                .bind(new.note)
                .bind(now())
                .bind(stored_time(new.expires_at))
                .execute(&mut *tx)
                .await
                .map_err(unique_as_conflict("share id or token selector taken"))?;
            for (position, file) in new.files.iter().enumerate() {
                sqlx::query(member_sql)
                    .bind(new.id)
                    .bind(file)
                    .bind(i64::try_from(position).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(&keep_sql)
                    .bind(stored_time(new.expires_at))
                    .bind(file)
                    .bind(new.tenant_id)
                    .execute(&mut *tx)
                    .await?;
            }
            for email in new.recipients {
                sqlx::query(recipient_sql)
                    .bind(new.id)
                    .bind(email)
                    .execute(&mut *tx)
                    .await?;
            }
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
            files
        });
        Ok(files)
    }

    /// Revokes share `id` of `tenant_id` now, with its audit event; its files are then kept
    /// only as long as their other live shares (and at least [`UNSHARED_TTL`] after upload).
    /// Idempotent: revoking a revoked share changes nothing and records nothing. `only_by`:
    /// the key that must have created it (senders revoke their own). `NotFound` for another
    /// tenant's share, or another sender's.
    pub async fn revoke_share(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        only_by: Option<Uuid>,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let owned = "SELECT revoked_at FROM shares
                     WHERE id = $1 AND tenant_id = $2 AND ($3 IS NULL OR created_by = $3)";
        let revoke = "UPDATE shares SET revoked_at = $1, ended_at = COALESCE(ended_at, $1)
                      WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL";
        let files = "SELECT upload_id FROM share_files WHERE share_id = $1";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let revoked: Option<(Option<OffsetDateTime>,)> = sqlx::query_as(owned)
                .bind(id)
                .bind(tenant_id)
                .bind(only_by)
                .fetch_optional(&mut *tx)
                .await?;
            match revoked {
                None => return Err(DbError::NotFound),
                Some((Some(_),)) => return Ok(()),
                Some((None,)) => {}
            }
            let at = now();
            sqlx::query(revoke)
                .bind(at)
                .bind(id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            let members: Vec<(Uuid,)> = sqlx::query_as(files)
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
            for (file,) in members {
                keep_file_until((&mut tx).into(), tenant_id, file).await?;
            }
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The share whose token has this selector; the caller verifies the secret and expiry.
    /// Recipient links' selectors are looked up by [`Db::share_by_link_selector`].
    pub async fn share_by_selector(&self, selector: &str) -> Result<ShareRow, DbError> {
        let sql = "SELECT id, tenant_id, token_hash, note, expires_at, revoked_at, ended_at
                   FROM shares WHERE token_selector = $1";
        let row: Option<ShareRow> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(selector)
            .fetch_optional(pool)
            .await?);
        found(row)
    }

    /// The complete files of a share, in order.
    pub async fn shared_files(
        &self,
        tenant_id: Uuid,
        share_id: Uuid,
    ) -> Result<Vec<SharedFile>, DbError> {
        let sql = format!(
            "SELECT {SHARED_COLUMNS} FROM share_files f JOIN uploads u ON u.id = f.upload_id
             WHERE f.share_id = $1 AND u.tenant_id = $2 AND u.state = 'complete'
             ORDER BY f.position"
        );
        let rows: Vec<RawShared> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(share_id)
            .bind(tenant_id)
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(shared_from_raw).collect())
    }

    /// Records the CRC-32 of a complete file that was completed before CRC-32 was kept
    /// (computed from its bytes when an archive first needed it). Never overwrites one.
    pub async fn record_crc32(&self, tenant_id: Uuid, id: Uuid, crc32: u32) -> Result<(), DbError> {
        let sql = "UPDATE uploads SET crc32 = $1
                   WHERE id = $2 AND tenant_id = $3 AND state = 'complete' AND crc32 IS NULL";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(i64::from(crc32))
            .bind(id)
            .bind(tenant_id)
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The address of the person who created share `share_id`, if a person did (an API key
    /// has none): shown to recipients as the sender.
    pub async fn share_sender_address(
        &self,
        tenant_id: Uuid,
        share_id: Uuid,
    ) -> Result<Option<String>, DbError> {
        let sql = "SELECT p.address FROM shares s JOIN principals p ON p.id = s.created_by
                   WHERE s.id = $1 AND s.tenant_id = $2";
        let row: Option<(Option<String>,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(share_id)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?);
        Ok(row.and_then(|(address,)| address))
    }

    /// One complete file of a share; `NotFound` if it is not part of it.
    pub async fn shared_file(
        &self,
        tenant_id: Uuid,
        share_id: Uuid,
        file_id: Uuid,
    ) -> Result<SharedFile, DbError> {
        let sql = format!(
            "SELECT {SHARED_COLUMNS} FROM share_files f JOIN uploads u ON u.id = f.upload_id
             WHERE f.share_id = $1 AND f.upload_id = $2 AND u.tenant_id = $3
                 AND u.state = 'complete'"
        );
        let row: Option<RawShared> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(share_id)
            .bind(file_id)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?);
        found(row).map(shared_from_raw)
    }
}
