//! The expiry job's rows: claiming work, shredding keys, marking objects destroyed.
//!
//! Claims are leases on upload rows (`claimed_until`, `claimed_by`), taken in one statement:
//! on PostgreSQL the candidates are locked with `FOR UPDATE SKIP LOCKED`, so a second
//! instance claiming at the same moment skips them instead of waiting and then taking them
//! too; SQLite has one writer, so its single statement is already exclusive. A pass that dies
//! leaves its claims to run out; the next pass takes the rows again, and every step it
//! repeats is idempotent.
//!
//! Work comes in two kinds, one per step of destruction:
//! - an unfinished upload past its `expires_at`: its key is shredded and the row becomes a
//!   tombstone (`state = 'terminated'`) in one transaction;
//! - a tombstone whose object is not deleted yet (`destroyed_at IS NULL`): left by that first
//!   step, by a crash, or by a sender's termination whose object deletion failed. The object
//!   is deleted, then `destroyed_at` set.

use time::OffsetDateTime;
use uuid::Uuid;

use super::{Backend, BeginWrite, Db, DbError, on_pool, stored_time};

/// A tombstone this young may still have its object deleted by the request that made it.
pub const TOMBSTONE_GRACE: time::Duration = time::Duration::minutes(10);

/// An upload row a pass has claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimedUpload {
    /// The upload.
    pub id: Uuid,
    /// Its tenant (every later statement on the row names it).
    pub tenant_id: Uuid,
    /// Whether it is still an unfinished upload (its key not shredded yet).
    pub unfinished: bool,
}

type RawClaim = (Uuid, Uuid, String);

fn from_raw((id, tenant_id, state): RawClaim) -> ClaimedUpload {
    ClaimedUpload {
        id,
        tenant_id,
        unfinished: state == "uploading",
    }
}

/// The condition for rows with expiry work at `$1` (the pass's time; `$2` is the tombstone
/// cut-off), in each backend's dialect. SQLite stores times as RFC 3339 text, which does not
/// sort as time (fractions, `Z`), so it compares through `julianday`.
fn due(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => {
            "((state = 'uploading' AND expires_at < $1)
              OR (state = 'terminated' AND destroyed_at IS NULL AND updated_at < $2))
             AND (claimed_until IS NULL OR claimed_until < $1)"
        }
        Backend::Sqlite => {
            "((state = 'uploading' AND julianday(expires_at) < julianday($1))
              OR (state = 'terminated' AND destroyed_at IS NULL
                  AND julianday(updated_at) < julianday($2)))
             AND (claimed_until IS NULL OR julianday(claimed_until) < julianday($1))"
        }
    }
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

    /// Shreds the key of an unfinished upload that is still expired at `now` and makes the row
    /// a tombstone, in one transaction. `false` if the upload is no longer expired (a write
    /// came in after the claim) or no longer unfinished: then nothing changed.
    pub async fn shred_expired_upload(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        now: OffsetDateTime,
    ) -> Result<bool, DbError> {
        let expired = match self.backend() {
            Backend::Postgres => "expires_at < $2",
            Backend::Sqlite => "julianday(expires_at) < julianday($2)",
        };
        let tombstone = format!(
            "UPDATE uploads SET state = 'terminated', hash_state = NULL, sealed_tail = NULL,
                 store_state = NULL, updated_at = $1
             WHERE id = $3 AND tenant_id = $4 AND state = 'uploading' AND {expired}"
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
            tx.commit().await?;
        });
        Ok(true)
    }

    /// Records that a tombstone's object is gone from the store, and ends any claim on it.
    pub async fn mark_destroyed(&self, tenant_id: Uuid, id: Uuid) -> Result<(), DbError> {
        let sql = "UPDATE uploads SET destroyed_at = $1, claimed_until = NULL, claimed_by = NULL
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
    /// at once.
    pub async fn release_claim(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        claimant: &str,
    ) -> Result<(), DbError> {
        let sql = "UPDATE uploads SET claimed_until = NULL, claimed_by = NULL
                   WHERE id = $1 AND tenant_id = $2 AND claimed_by = $3";
        on_pool!(self, pool => sqlx::query(sql)
            .bind(id)
            .bind(tenant_id)
            .bind(claimant)
            .execute(pool)
            .await
            .map(drop)?);
        Ok(())
    }
}
