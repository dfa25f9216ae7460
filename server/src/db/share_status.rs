//! A share as its sender follows it: state, recipients, and how often each file was
//! downloaded through it (counted here, against the tenant's limit).

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Db, DbError, found, on_pool};

/// A share as its sender sees it.
#[derive(Debug, Clone)]
pub struct ShareDetails {
    /// Share id.
    pub id: Uuid,
    /// The key that created it.
    pub created_by: Uuid,
    /// Optional note.
    pub note: Option<String>,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Expiry.
    pub expires_at: OffsetDateTime,
    /// Set once revoked.
    pub revoked_at: Option<OffsetDateTime>,
    /// Set once its end was recorded.
    pub ended_at: Option<OffsetDateTime>,
    /// Recipient addresses.
    pub recipients: Vec<String>,
    /// Its files in order, whatever their state now.
    pub files: Vec<ShareFileCount>,
}

/// A file of a share with how often it was downloaded through it.
#[derive(Debug, Clone)]
pub struct ShareFileCount {
    /// File id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Plaintext size.
    pub size: u64,
    /// Whether it can still be downloaded (`false` once destroyed).
    pub available: bool,
    /// Downloads through this share: responses that served its first byte.
    pub downloads: u64,
}

type RawDetails = (
    Uuid,
    Uuid,
    Option<String>,
    OffsetDateTime,
    OffsetDateTime,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
);

impl Db {
    /// Share `id` of `tenant_id` with its recipients and per-file download counts. `only_by`:
    /// the key that must have created it (senders see their own). `NotFound` otherwise.
    pub async fn share_details(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        only_by: Option<Uuid>,
    ) -> Result<ShareDetails, DbError> {
        let share_sql = "SELECT id, created_by, note, created_at, expires_at, revoked_at, ended_at
                         FROM shares
                         WHERE id = $1 AND tenant_id = $2 AND ($3 IS NULL OR created_by = $3)";
        let recipients_sql =
            "SELECT email FROM share_recipients WHERE share_id = $1 ORDER BY email";
        let files_sql = "SELECT u.id, u.filename, u.length, u.state, f.downloads
                         FROM share_files f JOIN uploads u ON u.id = f.upload_id
                         WHERE f.share_id = $1 AND u.tenant_id = $2 ORDER BY f.position";
        let (row, recipients, files) = on_pool!(self, pool => {
            let row: Option<RawDetails> = sqlx::query_as(share_sql)
                .bind(id)
                .bind(tenant_id)
                .bind(only_by)
                .fetch_optional(pool)
                .await?;
            let row = found(row)?;
            let recipients: Vec<(String,)> = sqlx::query_as(recipients_sql)
                .bind(id)
                .fetch_all(pool)
                .await?;
            let files: Vec<(Uuid, String, Option<i64>, String, i64)> = sqlx::query_as(files_sql)
                .bind(id)
                .bind(tenant_id)
                .fetch_all(pool)
                .await?;
            (row, recipients, files)
        });
        let (id, created_by, note, created_at, expires_at, revoked_at, ended_at) = row;
        Ok(ShareDetails {
            id,
            created_by,
            note,
            created_at,
            expires_at,
            revoked_at,
            ended_at,
            recipients: recipients.into_iter().map(|(email,)| email).collect(),
            files: files
                .into_iter()
                .map(|(id, name, size, state, downloads)| ShareFileCount {
                    id,
                    name,
                    size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    available: state == "complete",
                    downloads: u64::try_from(downloads).unwrap_or(0),
                })
                .collect(),
        })
    }

    /// Counts one download of `file_id` through share `share_id` of `tenant_id`, unless the
    /// tenant's `max_downloads_per_file` downloads were already counted (read in the same
    /// statement, so concurrent downloads never pass the limit together, and no separate
    /// policy read is needed). The count after this one, or `None` when the limit is reached
    /// (nothing counted).
    pub async fn count_download(
        &self,
        tenant_id: Uuid,
        share_id: Uuid,
        file_id: Uuid,
    ) -> Result<Option<u64>, DbError> {
        let sql = "UPDATE share_files SET downloads = downloads + 1
                   WHERE share_id = $1 AND upload_id = $2
                       AND EXISTS (SELECT 1 FROM shares WHERE id = $1 AND tenant_id = $3)
                       AND NOT EXISTS (SELECT 1 FROM tenant_policies p
                                       WHERE p.tenant_id = $3
                                           AND share_files.downloads >= p.max_downloads_per_file)
                   RETURNING downloads";
        let row: Option<(i64,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(share_id)
            .bind(file_id)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(n,)| u64::try_from(n).unwrap_or(0)))
    }
}
