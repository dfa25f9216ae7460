//! The expiry job's rows: claiming work, shredding keys, marking objects destroyed.
//!
//! Claims are leases on upload rows (`claimed_until`, `claimed_by`), taken in one statement:
//! on PostgreSQL the candidates are locked with `FOR UPDATE SKIP LOCKED`, so a second
//! instance claiming at the same moment skips them instead of waiting and then taking them
//! too; SQLite has one writer, so its single statement is already exclusive. A pass that dies
//! leaves its claims to run out; the next pass takes the rows again, and every step it
//! repeats is idempotent.
//!
//! Upload rows have three kinds of work:
//! - an unfinished upload past its `expires_at`, and
//! - a complete file past its `expires_at` (kept until its last share ends, at least 24 h
//!   after upload) that no live share holds any more: for both, the key is shredded, the row
//!   becomes a tombstone (`state = 'terminated'`) and the audit event is written, in one
//!   transaction;
//! - a tombstone whose object is not deleted yet (`destroyed_at IS NULL`): left by that first
//!   step, by a crash, or by a sender's termination whose object deletion failed. The object
//!   is deleted, then `destroyed_at` set.
//!
//! Shares need no claim: recording a share's expiry is one guarded UPDATE (`ended_at IS
//! NULL`) with its audit event, so of two passes only one ever changes the row.

use time::OffsetDateTime;
use uuid::Uuid;

use super::audit::append_in;
use super::shares::keep_file_until;
use super::{Backend, BeginWrite, Db, DbError, earlier, on_pool, stored_time};
use crate::audit::AuditEntry;

/// A tombstone this young may still have its object deleted by the request that made it.
pub const TOMBSTONE_GRACE: time::Duration = time::Duration::minutes(10);

/// What a claimed upload row still needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadWork {
    /// An unfinished upload: shred its key, then delete its object.
    Unfinished,
    /// A complete file: shred its key, then delete its object.
    File,
    /// A tombstone: delete its object.
    Tombstone,
}

/// An upload row a pass has claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedUpload {
    /// The upload.
    pub id: Uuid,
    /// Its tenant (every later statement on the row names it).
    pub tenant_id: Uuid,
    /// What it needs.
    pub work: UploadWork,
}

type RawClaim = (Uuid, Uuid, String);

fn from_raw((id, tenant_id, state): RawClaim) -> ClaimedUpload {
    let work = match state.as_str() {
        "uploading" => UploadWork::Unfinished,
        "complete" => UploadWork::File,
        _ => UploadWork::Tombstone,
    };
    ClaimedUpload {
        id,
        tenant_id,
        work,
    }
}

/// A share whose expiry is due to be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueShare {
    /// The share.
    pub id: Uuid,
    /// Its tenant.
    pub tenant_id: Uuid,
}

/// The condition for rows with expiry work at `$1` (the pass's time; `$2` is the tombstone
/// cut-off). A complete file without `expires_at` (from before files expired) is taken too:
/// its claim is given back with the right time.
fn due(backend: Backend) -> String {
    format!(
        "((state = 'uploading' AND {uploading})
          OR (state = 'complete' AND (expires_at IS NULL OR {uploading}))
          OR (state = 'terminated' AND destroyed_at IS NULL AND {tombstone}))
         AND (claimed_until IS NULL OR {unclaimed})",
        uploading = earlier(backend, "expires_at", "$1"),
        tombstone = earlier(backend, "updated_at", "$2"),
        unclaimed = earlier(backend, "claimed_until", "$1"),
    )
}

/// No share of the tenant keeps upload `uploads.id` live at `$2`: every one is revoked or
/// expired. For the guard of a file's shredding.
fn unshared(backend: Backend) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM share_files f JOIN shares s ON s.id = f.share_id
                     WHERE f.upload_id = uploads.id AND s.revoked_at IS NULL
                         AND NOT ({}))",
        earlier(backend, "s.expires_at", "$2")
    )
}

impl Db {
    /// Rows with expiry work at `now`, without claiming them (for `--dry-run`).
    pub async fn expiry_due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<ClaimedUpload>, DbError> {
        let sql = format!(
            "SELECT id, tenant_id, state FROM uploads WHERE {} ORDER BY updated_at LIMIT $3",
            due(self.backend())
        );
        let rows: Vec<RawClaim> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(stored_time(now))
            .bind(stored_time(now - TOMBSTONE_GRACE))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        Ok(rows.into_iter().map(from_raw).collect())
    }

    /// Claims up to `limit` rows with expiry work at `now` for `claimant` until `until`. Rows
    /// another pass holds are skipped, never waited for.
    pub async fn claim_expiry_work(
        &self,
        now: OffsetDateTime,
        until: OffsetDateTime,
        claimant: &str,
        limit: u32,
    ) -> Result<Vec<ClaimedUpload>, DbError> {
        let lock = match self.backend() {
            Backend::Postgres => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE uploads SET claimed_until = $4, claimed_by = $5
             WHERE id IN (SELECT id FROM uploads WHERE {}
                          ORDER BY updated_at LIMIT $3 {lock})
             RETURNING id, tenant_id, state",
            due(self.backend())
        );
        let rows: Vec<RawClaim> = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let rows = sqlx::query_as(&sql)
                .bind(stored_time(now))
                .bind(stored_time(now - TOMBSTONE_GRACE))
                .bind(i64::from(limit))
                .bind(stored_time(until))
                .bind(claimant)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            rows
        });
        Ok(rows.into_iter().map(from_raw).collect())
    }

    /// Shreds the key of an unfinished upload or a file that is still due at `now`, makes the
    /// row a tombstone and records `audit`, in one transaction. `false` if it is no longer due
    /// (a write extended the upload, a new share keeps the file) or already a tombstone: then
    /// nothing changed.
    pub async fn shred_expired(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<bool, DbError> {
        let backend = self.backend();
        let tombstone = format!(
            "UPDATE uploads SET state = 'terminated', hash_state = NULL, sealed_tail = NULL,
                 store_state = NULL, updated_at = $1
             WHERE id = $3 AND tenant_id = $4 AND {expired}
                 AND (state = 'uploading' OR (state = 'complete' AND {unshared}))",
            expired = earlier(backend, "expires_at", "$2"),
            unshared = unshared(backend),
        );
        let shred = "DELETE FROM file_keys WHERE upload_id = $1 AND tenant_id = $2";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(&tombstone)
                .bind(super::now())
                .bind(stored_time(now))
                .bind(id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done != 1 {
                return Ok(false);
            }
            sqlx::query(shred)
                .bind(id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        self.flush_shredded().await;
        Ok(true)
    }

    /// Whether file `id` was ever part of a share (for the reason its expiry event gives).
    pub async fn file_was_shared(&self, tenant_id: Uuid, id: Uuid) -> Result<bool, DbError> {
        let sql = "SELECT COUNT(*) FROM share_files f JOIN shares s ON s.id = f.share_id
                   WHERE f.upload_id = $1 AND s.tenant_id = $2";
        let (count,): (i64,) = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(id)
            .bind(tenant_id)
            .fetch_one(pool)
            .await?);
        Ok(count > 0)
    }

    /// Shares whose expiry is due at `now` and not recorded yet, oldest first.
    pub async fn shares_due(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<DueShare>, DbError> {
        let sql = format!(
            "SELECT id, tenant_id FROM shares WHERE ended_at IS NULL AND {}
             ORDER BY expires_at LIMIT $2",
            earlier(self.backend(), "expires_at", "$1")
        );
        let rows: Vec<(Uuid, Uuid)> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(stored_time(now))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(|(id, tenant_id)| DueShare { id, tenant_id })
            .collect())
    }

    /// Records that share `id` expired, with `audit`, if no pass has yet. `false` if one has
    /// (or the share was revoked first): then nothing changed.
    pub async fn end_expired_share(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
        audit: &AuditEntry,
    ) -> Result<bool, DbError> {
        let sql = format!(
            "UPDATE shares SET ended_at = $1
             WHERE id = $2 AND tenant_id = $3 AND ended_at IS NULL AND {}",
            earlier(self.backend(), "expires_at", "$4")
        );
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(&sql)
                .bind(super::now())
                .bind(id)
                .bind(tenant_id)
                .bind(stored_time(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if done != 1 {
                return Ok(false);
            }
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Records that a tombstone's object is gone from the store, and ends any claim on it.
    /// The file's name and metadata go with it: the tombstone keeps only what the audit
    /// needs (id, tenant, owner, size, hash, times); the audit chain has the name as it was.
    pub async fn mark_destroyed(&self, tenant_id: Uuid, id: Uuid) -> Result<(), DbError> {
        let sql = "UPDATE uploads SET destroyed_at = $1, claimed_until = NULL, claimed_by = NULL,
                       filename = '', metadata = ''
                   WHERE id = $2 AND tenant_id = $3 AND state = 'terminated'";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(super::now())
            .bind(id)
            .bind(tenant_id)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }

    /// Gives a claimed row back (its work turned out not to be due), so the next pass sees it
    /// at once. A complete file's `expires_at` is set again from its live shares, so it is not
    /// claimed again before it can be due.
    pub async fn release_claim(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        claimant: &str,
    ) -> Result<(), DbError> {
        let sql = "UPDATE uploads SET claimed_until = NULL, claimed_by = NULL
                   WHERE id = $1 AND tenant_id = $2 AND claimed_by = $3";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(sql)
                .bind(id)
                .bind(tenant_id)
                .bind(claimant)
                .execute(&mut *tx)
                .await?;
            keep_file_until((&mut tx).into(), tenant_id, id).await?;
            tx.commit().await?;
        });
        Ok(())
    }
}
