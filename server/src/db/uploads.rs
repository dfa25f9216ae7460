//! Uploads (tus resources) and the wrapped data keys of their files.
//!
//! Progress is saved with optimistic concurrency: an update names the offset it started from
//! and fails with `Conflict` if another writer moved it, so two writers can never both commit.

use time::OffsetDateTime;
use uuid::Uuid;

use super::BeginWrite as _;
use super::audit::append_in;
use super::{Db, DbError, found, guarded_update, now, on_pool, stored_time};
use crate::audit::AuditEntry;

/// A complete file that no share keeps is destroyed this long after its last byte: long
/// enough for its sender to share it, short enough that nothing lingers unshared.
pub const UNSHARED_TTL: time::Duration = time::Duration::hours(24);

/// Lifecycle of an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadState {
    /// Accepting PATCH requests.
    Uploading,
    /// Every byte stored; the upload is now a file that can be shared.
    Complete,
    /// Deleted by its sender (tus termination); kept as a tombstone so HEAD can say 410.
    Terminated,
}

impl UploadState {
    /// The stored and displayed spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadState::Uploading => "uploading",
            UploadState::Complete => "complete",
            UploadState::Terminated => "terminated",
        }
    }

    fn parse(text: &str) -> UploadState {
        match text {
            "complete" => UploadState::Complete,
            "terminated" => UploadState::Terminated,
            _ => UploadState::Uploading,
        }
    }
}

/// One upload as stored.
#[derive(Debug, Clone)]
pub struct UploadRow {
    /// Upload id = file id.
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// The principal (API key or signed-in person) that created it.
    pub owner_id: Uuid,
    /// Total plaintext length, `None` while deferred.
    pub length: Option<u64>,
    /// Plaintext bytes durably stored.
    pub offset: u64,
    /// The `Upload-Metadata` header as received, echoed on HEAD.
    pub metadata: String,
    /// Display name from the metadata (`filename` or `name`).
    pub filename: String,
    /// Lifecycle state.
    pub state: UploadState,
    /// BLAKE3 tree state (while uploading).
    pub hash_state: Option<Vec<u8>>,
    /// Sealed partial segment (while uploading).
    pub sealed_tail: Option<Vec<u8>>,
    /// The object store's resumable state (S3: multipart session, parts, pending pieces).
    pub store_state: Option<Vec<u8>>,
    /// Hex BLAKE3 of the plaintext once complete.
    pub blake3: Option<String>,
    /// CRC-32 of the plaintext once complete (`None` for a file completed before it was kept).
    pub crc32: Option<u32>,
    /// When an unfinished upload is abandoned.
    pub expires_at: Option<OffsetDateTime>,
    /// When the last byte arrived.
    pub completed_at: Option<OffsetDateTime>,
}

impl UploadRow {
    /// The committed state a write resumes from (an upload that never committed resumes
    /// from its initial, empty state).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            offset: self.offset,
            hash_state: self.hash_state.clone().unwrap_or_default(),
            sealed_tail: self.sealed_tail.clone(),
            store_state: self.store_state.clone(),
        }
    }
}

/// An `uploads` row as the database returns it, before lengths become `u64` and the state
/// an enum.
#[derive(sqlx::FromRow)]
struct UploadRecord {
    id: Uuid,
    tenant_id: Uuid,
    owner_id: Uuid,
    length: Option<i64>,
    upload_offset: i64,
    metadata: String,
    filename: String,
    state: String,
    hash_state: Option<Vec<u8>>,
    sealed_tail: Option<Vec<u8>>,
    store_state: Option<Vec<u8>>,
    blake3: Option<String>,
    crc32: Option<i64>,
    expires_at: Option<OffsetDateTime>,
    completed_at: Option<OffsetDateTime>,
}

const UPLOAD_COLUMNS: &str = "id, tenant_id, owner_id, length, upload_offset, metadata, \
     filename, state, hash_state, sealed_tail, store_state, blake3, crc32, expires_at, \
     completed_at";

impl From<UploadRecord> for UploadRow {
    fn from(record: UploadRecord) -> UploadRow {
        UploadRow {
            id: record.id,
            tenant_id: record.tenant_id,
            owner_id: record.owner_id,
            length: record.length.map(to_u64),
            offset: to_u64(record.upload_offset),
            metadata: record.metadata,
            filename: record.filename,
            state: UploadState::parse(&record.state),
            hash_state: record.hash_state,
            sealed_tail: record.sealed_tail,
            store_state: record.store_state,
            blake3: record.blake3,
            crc32: record.crc32.and_then(|c| u32::try_from(c).ok()),
            expires_at: record.expires_at,
            completed_at: record.completed_at,
        }
    }
}

/// Lengths are stored as SQL INTEGER (i64); they are never negative.
fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// Lengths above i64::MAX cannot occur (the maximum upload size is far below); saturate.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Everything needed to create an upload and its key in one transaction.
pub struct NewUpload<'a> {
    /// Fresh id (also the file id in the AAD).
    pub id: Uuid,
    /// Owning tenant.
    pub tenant_id: Uuid,
    /// The creating principal (API key or signed-in person).
    pub owner_id: Uuid,
    /// Declared length, or `None` when deferred.
    pub length: Option<u64>,
    /// Raw `Upload-Metadata`.
    pub metadata: &'a str,
    /// Display name.
    pub filename: &'a str,
    /// DEK wrapped by the tenant key.
    pub wrapped_dek: &'a [u8],
    /// Initial (empty) hash state.
    pub hash_state: &'a [u8],
    /// Abandonment time.
    pub expires_at: OffsetDateTime,
}

/// What a completed upload records: its length and digests.
#[derive(Debug, Clone, Copy)]
pub struct CompletedFile<'a> {
    /// Its final length in bytes.
    pub length: u64,
    /// Hex BLAKE3 of the whole file.
    pub blake3_hex: &'a str,
    /// CRC-32 of the whole file (`None` when its upload began before CRC-32 was kept).
    pub crc32: Option<u32>,
}

/// An upload's committed state: everything a write needs to go on from `offset` after a
/// crash. The one shape of it, from the pipeline that makes it to the row that keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Plaintext bytes covered.
    pub offset: u64,
    /// Encoded BLAKE3 tree state covering the full segments stored.
    pub hash_state: Vec<u8>,
    /// The sealed partial segment (< 64 KiB of plaintext), if there is one.
    pub sealed_tail: Option<Vec<u8>>,
    /// The store's state for the stored segments (see [`UploadRow::store_state`]).
    pub store_state: Option<Vec<u8>>,
}

impl Db {
    /// Creates the upload row and its wrapped key together, with its audit event.
    pub async fn create_upload(
        &self,
        new: &NewUpload<'_>,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let upload = "INSERT INTO uploads (id, tenant_id, owner_id, length, upload_offset,
                          metadata, filename, state, hash_state, created_at, updated_at,
                          expires_at)
                      VALUES ($1, $2, $3, $4, 0, $5, $6, 'uploading', $7, $8, $8, $9)";
        let key = "INSERT INTO file_keys (upload_id, tenant_id, wrapped_dek) VALUES ($1, $2, $3)";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(upload)
                .bind(new.id)
                .bind(new.tenant_id)
                .bind(new.owner_id)
                .bind(new.length.map(to_i64))
                .bind(new.metadata)
                .bind(new.filename)
                .bind(new.hash_state)
                .bind(now())
                .bind(stored_time(new.expires_at))
                .execute(&mut *tx)
                .await?;
            sqlx::query(key)
                .bind(new.id)
                .bind(new.tenant_id)
                .bind(new.wrapped_dek)
                .execute(&mut *tx)
                .await?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The upload `id` of `tenant_id`, in any state, if `created_by` (when given, from
    /// [`crate::auth::Caller::must_have_created`]) created it; `NotFound` for other tenants'
    /// and other keys' uploads.
    pub async fn upload(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        created_by: Option<Uuid>,
    ) -> Result<UploadRow, DbError> {
        let sql = format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads
             WHERE id = $1 AND tenant_id = $2 AND ($3 IS NULL OR owner_id = $3)"
        );
        let row: Option<UploadRecord> = on_pool!(self, pool => sqlx::query_as(&sql)
            .bind(id)
            .bind(tenant_id)
            .bind(created_by)
            .fetch_optional(pool)
            .await?);
        found(row).map(UploadRow::from)
    }

    /// The wrapped DEK of a file; `NotFound` once shredded.
    pub async fn wrapped_dek(&self, tenant_id: Uuid, id: Uuid) -> Result<Vec<u8>, DbError> {
        let sql = "SELECT wrapped_dek FROM file_keys WHERE upload_id = $1 AND tenant_id = $2";
        let row: Option<(Vec<u8>,)> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(id)
            .bind(tenant_id)
            .fetch_optional(pool)
            .await?);
        found(row).map(|(w,)| w)
    }

    /// Saves a write's checkpoint, with the upload's `length` (possibly just declared) and
    /// its new abandonment time, if the upload is still at `from_offset`; `Conflict`
    /// otherwise.
    pub async fn save_checkpoint(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        from_offset: u64,
        checkpoint: &Checkpoint,
        length: Option<u64>,
        expires_at: OffsetDateTime,
    ) -> Result<(), DbError> {
        // The guard on the old offset is the last line against two writers: under SQLite's
        // single writer and PostgreSQL's row lock alike, the second UPDATE re-reads the row
        // after the first commits, no longer matches, and affects nothing.
        let sql = "UPDATE uploads SET upload_offset = $1, length = $2, hash_state = $3,
                       sealed_tail = $4, store_state = $5, expires_at = $6, updated_at = $7
                   WHERE id = $8 AND tenant_id = $9 AND upload_offset = $10
                       AND state = 'uploading'";
        let done = on_pool!(self, pool => sqlx::query(sql)
            .bind(to_i64(checkpoint.offset))
            .bind(length.map(to_i64))
            .bind(&checkpoint.hash_state)
            .bind(checkpoint.sealed_tail.as_deref())
            .bind(checkpoint.store_state.as_deref())
            .bind(stored_time(expires_at))
            .bind(now())
            .bind(id)
            .bind(tenant_id)
            .bind(to_i64(from_offset))
            .execute(pool)
            .await?
            .rows_affected());
        guarded_update(done)
    }

    /// Marks the upload complete with its final length and digests, if still at `from_offset`,
    /// with its audit event. The file is due for destruction [`UNSHARED_TTL`] from now unless
    /// a share keeps it longer.
    pub async fn complete_upload(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        from_offset: u64,
        file: &CompletedFile<'_>,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let sql = "UPDATE uploads SET upload_offset = $1, length = $1, state = 'complete',
                       blake3 = $2, hash_state = NULL, sealed_tail = NULL, store_state = NULL,
                       expires_at = $7, crc32 = $8,
                       completed_at = $3, updated_at = $3
                   WHERE id = $4 AND tenant_id = $5 AND upload_offset = $6
                       AND state = 'uploading'";
        let completed_at = now();
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let done = sqlx::query(sql)
                .bind(to_i64(file.length))
                .bind(file.blake3_hex)
                .bind(completed_at)
                .bind(id)
                .bind(tenant_id)
                .bind(to_i64(from_offset))
                .bind(completed_at + UNSHARED_TTL)
                .bind(file.crc32.map(i64::from))
                .execute(&mut *tx)
                .await?
                .rows_affected();
            guarded_update(done)?;
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Terminates an upload: shreds its key and keeps a tombstone row, with its audit event.
    pub async fn terminate_upload(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        audit: &AuditEntry,
    ) -> Result<(), DbError> {
        let shred = "DELETE FROM file_keys WHERE upload_id = $1 AND tenant_id = $2";
        let tombstone = "UPDATE uploads SET state = 'terminated', hash_state = NULL,
                             sealed_tail = NULL, store_state = NULL, updated_at = $1
                         WHERE id = $2 AND tenant_id = $3";
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(shred)
                .bind(id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query(tombstone)
                .bind(now())
                .bind(id)
                .bind(tenant_id)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() != 1 {
                // Dropping the transaction rolls it back.
                return Err(DbError::NotFound);
            }
            append_in((&mut tx).into(), audit).await?;
            tx.commit().await?;
        });
        self.flush_shredded().await;
        Ok(())
    }
}

/// A live file as tenant admins see it.
#[derive(Debug, Clone)]
pub struct LiveFile {
    /// File id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// The principal (API key or signed-in person) that uploaded it.
    pub owner_id: Uuid,
    /// Plaintext size.
    pub size: u64,
    /// Hex BLAKE3.
    pub blake3: String,
    /// When its last byte was stored.
    pub completed_at: Option<OffsetDateTime>,
    /// When it is due for destruction (its last share's end, at least 24 h after upload).
    pub expires_at: Option<OffsetDateTime>,
}

type RawLiveFile = (
    Uuid,
    String,
    Uuid,
    Option<i64>,
    Option<String>,
    Option<OffsetDateTime>,
    Option<OffsetDateTime>,
);

impl Db {
    /// Up to `limit` complete files of `tenant_id` with ids after `after`, in id order.
    pub async fn live_files(
        &self,
        tenant_id: Uuid,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<LiveFile>, DbError> {
        let sql = "SELECT id, filename, owner_id, length, blake3, completed_at, expires_at
                   FROM uploads
                   WHERE tenant_id = $1 AND state = 'complete' AND ($2 IS NULL OR id > $2)
                   ORDER BY id LIMIT $3";
        let rows: Vec<RawLiveFile> = on_pool!(self, pool => sqlx::query_as(sql)
            .bind(tenant_id)
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?);
        Ok(rows
            .into_iter()
            .map(
                |(id, name, owner_id, size, blake3, completed_at, expires_at)| LiveFile {
                    id,
                    name,
                    owner_id,
                    size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    blake3: blake3.unwrap_or_default(),
                    completed_at,
                    expires_at,
                },
            )
            .collect())
    }
}
