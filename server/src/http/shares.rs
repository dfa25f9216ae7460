//! Senders' share endpoints under `/api/v1/shares`.

use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::AppError;
use super::json::ApiJson;
use crate::auth::Caller;
use crate::db::tenants::Role;
use crate::shares::{self, CreateShare, ShareError};
use crate::state::AppState;

/// Routes for senders' shares.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/shares", post(create_share))
        .route("/api/v1/shares/{id}", delete(revoke_share))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateShareBody {
    files: Vec<Uuid>,
    recipients: Vec<String>,
    retention_days: Option<i64>,
    note: Option<String>,
}

#[derive(Serialize)]
struct FileView {
    id: Uuid,
    name: String,
    size: u64,
    blake3: String,
}

#[derive(Serialize)]
struct ShareView {
    id: Uuid,
    url: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    files: Vec<FileView>,
}

impl From<ShareError> for AppError {
    fn from(e: ShareError) -> Self {
        match e {
            ShareError::Invalid(message) => {
                AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
            }
            ShareError::Files(files) => files.into(),
            ShareError::Random => AppError::internal("random generator failed"),
            ShareError::Db(e) => e.into(),
        }
    }
}

async fn create_share(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateShareBody>,
) -> Result<(StatusCode, Json<ShareView>), AppError> {
    let created = shares::create_share(
        &state,
        &caller,
        CreateShare {
            files: body.files,
            recipients: body.recipients,
            retention_days: body.retention_days,
            note: body.note,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ShareView {
            id: created.id,
            url: created.url,
            expires_at: created.expires_at,
            files: created
                .files
                .into_iter()
                .map(|f| FileView {
                    id: f.id,
                    name: f.name,
                    size: f.size,
                    blake3: f.blake3,
                })
                .collect(),
        }),
    ))
}

/// Revokes a share at once: its links answer 410 from now on. Admins revoke any share of their
/// tenant, senders their own; anything else is 404.
async fn revoke_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::not_found())?;
    let only_by = match caller.role {
        Role::Admin => None,
        Role::Sender => Some(caller.key_id),
    };
    state.db.revoke_share(caller.tenant_id, id, only_by).await?;
    tracing::info!(share = %id, tenant = %caller.tenant_id, "share revoked");
    Ok(StatusCode::NO_CONTENT)
}
