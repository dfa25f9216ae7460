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
    /// The principal (API key or signed-in person) that created it.
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

/// What one response costs against a file's download budget, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DownloadCost {
    /// The bytes this response may send (1 for an empty file, so it still counts).
    pub cost: u64,
    /// One copy: the file's size (1 for an empty file).
    pub unit: u64,
    /// Bytes beyond N copies that may be sent, for bytes lost in flight when a connection
    /// breaks; at most half a copy.
    pub allowance: u64,
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
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
    /// Downloads through this share, in whole copies: bytes served divided by its size.
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
    /// the principal that must have created it (senders see their own). `NotFound` otherwise.
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
        let files_sql = "SELECT u.id, u.filename, u.length, u.state,
                                f.bytes_served / (CASE WHEN u.length IS NULL OR u.length < 1
                                                       THEN 1 ELSE u.length END)
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

    /// Reserves `cost` bytes of file `file_id` (`size` bytes long) through share `share_id`
    /// of `tenant_id`, unless that would pass the tenant's `max_downloads_per_file` copies'
    /// worth of the file plus `allowance` (see [`crate::download::reserve_bytes`]). The policy
    /// is read inside the statement, so concurrent downloads never pass the limit together.
    /// The bytes reserved after this one, or `None` when the budget cannot cover `cost`
    /// (nothing reserved).
    pub async fn reserve_download(
        &self,
        tenant_id: Uuid,
        share_id: Uuid,
        file_id: Uuid,
        budget: &DownloadCost,
    ) -> Result<Option<u64>, DbError> {
        // Copies needed = ceil((served + cost - allowance) / size), in integers: no product
        // of the limit and the size, which could overflow for terabyte files.
        let sql = "UPDATE share_files SET bytes_served = bytes_served + $4
                   WHERE share_id = $1 AND upload_id = $2
                       AND EXISTS (SELECT 1 FROM shares WHERE id = $1 AND tenant_id = $3)
                       AND NOT EXISTS (
                           SELECT 1 FROM tenant_policies p
                           WHERE p.tenant_id = $3
                               AND (share_files.bytes_served + $4 - $6 + $5 - 1) / $5
                                   > p.max_downloads_per_file)
                   RETURNING bytes_served";
        let row: Option<(i64,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(share_id)
            .bind(file_id)
            .bind(tenant_id)
            .bind(clamp_i64(budget.cost))
            .bind(clamp_i64(budget.unit))
            .bind(clamp_i64(budget.allowance))
            .fetch_optional(pool)
            .await?);
        Ok(row.map(|(n,)| u64::try_from(n).unwrap_or(0)))
    }

    /// Gives back `unsent` bytes of a reservation a response did not send.
    pub async fn refund_download(
        &self,
        share_id: Uuid,
        file_id: Uuid,
        unsent: u64,
    ) -> Result<(), DbError> {
        let sql = "UPDATE share_files
                   SET bytes_served = CASE WHEN bytes_served > $3 THEN bytes_served - $3
                                           ELSE 0 END
                   WHERE share_id = $1 AND upload_id = $2";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(share_id)
            .bind(file_id)
            .bind(clamp_i64(unsent))
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }
}
