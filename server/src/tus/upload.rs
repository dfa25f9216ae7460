//! Create and terminate uploads, and the rules every request on one obeys: the size limits
//! and "this upload is gone". Writing a body is in `write.rs`.

use time::OffsetDateTime;
use uuid::Uuid;

use super::error::TusError;
use super::metadata::Metadata;
use crate::audit::EventKind;
use crate::auth::{Caller, Intent};
use crate::crypto::segment::Dek;
use crate::db::uploads::{NewUpload, UploadRow, UploadState};
use crate::hash::UploadDigest;
use crate::objects::destroy_object;
use crate::policy::UNFINISHED_TTL;
use crate::state::AppState;
use crate::writer_lock::WriterGuard;

/// A creation request, parsed.
pub struct CreateRequest {
    /// `Upload-Length`, or `None` for `Upload-Defer-Length: 1`.
    pub length: Option<u64>,
    /// Raw `Upload-Metadata`.
    pub metadata: String,
}

/// When an upload that is still uploading will be abandoned.
pub fn upload_expiry(row: &UploadRow) -> Option<OffsetDateTime> {
    match row.state {
        UploadState::Uploading => row.expires_at,
        _ => None,
    }
}

/// The largest upload accepted: the configured maximum, or less if the store cannot hold it
/// (S3: 10,000 parts of at most 5 GiB).
pub fn max_upload_len(state: &AppState) -> u64 {
    state
        .config
        .tus_max_size
        .min(state.store.max_plaintext_len())
}

/// The largest length this upload may reach: the store's and configuration's maximum, or the
/// tenant's (`policy_max`) if smaller. Bounds a deferred-length upload's bytes too.
pub(super) fn ceiling(state: &AppState, policy_max: Option<u64>) -> u64 {
    policy_max.map_or(max_upload_len(state), |max| max.min(max_upload_len(state)))
}

/// Refuses a length beyond the store's limit or the tenant's policy (`policy_max`).
pub(super) fn check_length(
    state: &AppState,
    policy_max: Option<u64>,
    length: u64,
) -> Result<(), TusError> {
    let store_max = max_upload_len(state);
    if length > store_max {
        return Err(TusError::TooLarge(format!(
            "Upload-Length {length} exceeds the maximum of {store_max} bytes"
        )));
    }
    if let Some(max) = policy_max
        && length > max
    {
        return Err(TusError::TooLarge(format!(
            "Upload-Length {length} exceeds this tenant's maximum upload of {max} bytes"
        )));
    }
    Ok(())
}

/// Creates an upload with a fresh data key wrapped by the tenant's key.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    request: &CreateRequest,
) -> Result<UploadRow, TusError> {
    let metadata = Metadata::parse(&request.metadata)?;
    if let Some(length) = request.length {
        let policy = state.db.policy(caller.tenant_id).await?;
        check_length(state, policy.max_upload_bytes, length)?;
    }
    let id = Uuid::new_v4();
    let dek = Dek::generate()?;
    let wrapped = state.tenant_kek(caller.tenant_id)?.wrap(&dek, id)?;
    let filename = metadata.filename();
    let audit = state.audit(
        caller.tenant_id,
        EventKind::UploadCreated,
        caller.actor(),
        Some(id),
        serde_json::json!({ "name": filename, "length": request.length }),
    )?;
    state
        .db
        .create_upload(
            &NewUpload {
                id,
                tenant_id: caller.tenant_id,
                owner_id: caller.principal_id,
                length: request.length,
                metadata: &request.metadata,
                filename: &filename,
                wrapped_dek: &wrapped,
                hash_state: &UploadDigest::new().to_bytes(),
                expires_at: OffsetDateTime::now_utc() + UNFINISHED_TTL,
            },
            &audit,
        )
        .await?;
    Ok(state
        .db
        .upload(caller.tenant_id, id, Some(caller.principal_id))
        .await?)
}

/// Upload `id` held by this request for `intent`, and its row as read under the hold.
/// Authorized first: a key that may not touch the upload must not be able to stop its
/// writer, which taking the hold does.
pub(super) async fn hold(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    intent: Intent,
) -> Result<(WriterGuard, UploadRow), TusError> {
    let created_by = caller.must_have_created(intent);
    state.db.upload(caller.tenant_id, id, created_by).await?;
    let writer = state
        .locks
        .acquire(id)
        .await
        .map_err(|_| TusError::Locked)?;
    let row = state.db.upload(caller.tenant_id, id, created_by).await?;
    Ok((writer, row))
}

/// Terminates an upload: its key is shredded at once, then its object deleted.
pub async fn terminate(state: &AppState, caller: &Caller, id: Uuid) -> Result<(), TusError> {
    let (_writer, row) = hold(state, caller, id, Intent::Delete).await?;
    if row.state == UploadState::Terminated {
        return Err(TusError::Gone);
    }
    let audit = state.audit(
        caller.tenant_id,
        EventKind::UploadTerminated,
        caller.actor(),
        Some(id),
        serde_json::json!({ "state": row.state.as_str(), "offset": row.offset }),
    )?;
    state
        .db
        .terminate_upload(caller.tenant_id, id, &audit)
        .await?;
    // If this fails (or the process dies first), the expiry job finds the tombstone without
    // `destroyed_at` and deletes the object later; the key is already gone.
    destroy_object(state, caller.tenant_id, id).await?;
    Ok(())
}

/// The one rule for "this upload is gone" (410): terminated, or unfinished past its
/// abandonment time (the expiry job may not have removed it yet).
pub(super) fn ensure_not_gone(row: &UploadRow, now: OffsetDateTime) -> Result<(), TusError> {
    let abandoned = row.state == UploadState::Uploading && row.expires_at.is_some_and(|t| t < now);
    if row.state == UploadState::Terminated || abandoned {
        return Err(TusError::Gone);
    }
    Ok(())
}

/// Upload `id` as its creator (or an admin) may see it, whatever its state: the files API.
pub async fn upload_status(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<UploadRow, TusError> {
    Ok(state
        .db
        .upload(caller.tenant_id, id, caller.must_have_created(Intent::Read))
        .await?)
}

/// Upload `id` for a tus HEAD: as [`upload_status`], but 410 once it is gone.
pub async fn resumable_upload(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<UploadRow, TusError> {
    let row = upload_status(state, caller, id).await?;
    ensure_not_gone(&row, OffsetDateTime::now_utc())?;
    Ok(row)
}
