//! A file's stored object at the end of its life. One rule for terminate (tus DELETE) and the
//! expiry job: the key is shredded first (by the caller, with its audit event), then the
//! object is deleted, then the row records it destroyed. A failure between the steps leaves a
//! tombstone without `destroyed_at`, which the next expiry pass finishes.

use uuid::Uuid;

use crate::db::DbError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::telemetry;

/// Why an object could not be destroyed now (a later expiry pass retries).
#[derive(Debug, thiserror::Error)]
pub enum DestroyError {
    /// The store refused the delete.
    #[error("deleting the object failed")]
    Store(#[from] StoreError),
    /// The blocking delete task died.
    #[error("the delete task failed")]
    Task(#[from] tokio::task::JoinError),
    /// The database did not record it destroyed.
    #[error("recording the object destroyed failed")]
    Db(#[from] DbError),
}

/// Deletes upload `id`'s object and records it destroyed. Its key must already be shredded.
pub async fn destroy_object(
    state: &AppState,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<(), DestroyError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.delete(id))
        .await?
        .inspect_err(telemetry::store_error)?;
    state.db.mark_destroyed(tenant_id, id).await?;
    tracing::info!(upload = %id, tenant = %tenant_id, "object destroyed");
    Ok(())
}
