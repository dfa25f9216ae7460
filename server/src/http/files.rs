//! The sender's view of an upload: `GET /api/v1/files/{id}`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::AppError;
use crate::auth::Caller;
use crate::db::uploads::UploadState;
use crate::state::AppState;
use crate::tus::upload_expiry;

/// Routes for senders' files.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/files/{id}", get(get_file))
}

#[derive(Serialize)]
struct FileStatus {
    id: Uuid,
    name: String,
    size: Option<u64>,
    offset: u64,
    state: &'static str,
    blake3: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

async fn get_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FileStatus>, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::not_found())?;
    let row = state.db.upload(caller.tenant_id, id).await?;
    Ok(Json(FileStatus {
        id: row.id,
        name: row.filename.clone(),
        size: row.length,
        offset: row.offset,
        state: row.state.as_str(),
        // Unfinished: when it is abandoned; a file: when it is due for destruction.
        expires_at: match row.state {
            UploadState::Complete => row.expires_at,
            _ => upload_expiry(&row),
        },
        blake3: row.blake3,
    }))
}
