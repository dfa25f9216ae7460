//! The sender's view of an upload: `GET /api/v1/files/{id}`.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::{AppError, ErrorBody};
use super::path::path_id;
use crate::auth::Caller;
use crate::db::uploads::UploadState;
use crate::state::AppState;
use crate::tus::{self, upload_expiry};

/// Routes for senders' files.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_file))
}

/// Where an upload stands.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum FileState {
    /// Bytes are still arriving (tus `PATCH`).
    Uploading,
    /// Every byte arrived; the file can be shared.
    Complete,
    /// Deleted by its sender or expired unfinished; nothing is left to read.
    Terminated,
}

impl From<UploadState> for FileState {
    fn from(state: UploadState) -> Self {
        match state {
            UploadState::Uploading => FileState::Uploading,
            UploadState::Complete => FileState::Complete,
            UploadState::Terminated => FileState::Terminated,
        }
    }
}

/// An upload as its sender sees it.
#[derive(Serialize, ToSchema)]
struct FileStatus {
    /// The file id (the last segment of the tus upload URL).
    id: Uuid,
    /// The `filename` of the tus metadata.
    name: String,
    /// Its length in bytes; `null` while a deferred length is not declared yet.
    size: Option<u64>,
    /// Bytes received so far.
    offset: u64,
    /// Where the upload stands.
    state: FileState,
    /// Hex BLAKE3 of the whole file, once complete.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    blake3: Option<String>,
    /// CRC-32 (IEEE, as `zlib.crc32`) of the whole file, once complete; what the ZIP of
    /// "download all" carries. `null` for a file uploaded before Ferry kept it.
    crc32: Option<u32>,
    /// When an unfinished upload expires (24 h after its last byte); `null` otherwise.
    #[serde(with = "time::serde::rfc3339::option")]
    expires_at: Option<OffsetDateTime>,
}

/// One upload of the caller's tenant.
#[utoipa::path(
    get,
    path = "/api/v1/files/{id}",
    tag = "files",
    security(("api_key" = [])),
    params(("id" = String, Path, format = Uuid, description = "The file id")),
    responses(
        (status = 200, description = "The upload", body = FileStatus),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 404, description = "No upload with this id that this key may read",
         body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn get_file(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<FileStatus>, AppError> {
    let id = path_id(&id)?;
    let row = tus::upload_status(&state, &caller, id).await?;
    Ok(Json(FileStatus {
        id: row.id,
        name: row.filename.clone(),
        size: row.length,
        offset: row.offset,
        state: row.state.into(),
        // Unfinished: when it is abandoned; a file: when it is due for destruction.
        expires_at: match row.state {
            UploadState::Complete => row.expires_at,
            _ => upload_expiry(&row),
        },
        blake3: row.blake3,
        crc32: row.crc32,
    }))
}
