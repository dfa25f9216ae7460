//! Senders' share endpoints under `/api/v1/shares`.

use axum::extract::Path;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::AppError;
use super::json::ApiJson;
use crate::audit::{Actor, EventKind};
use crate::auth::Caller;
use crate::db::tenants::Role;
use crate::shares::{self, CreateShare, ShareError};
use crate::state::AppState;

/// Routes for senders' shares.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/shares", post(create_share))
        .route("/api/v1/shares/{id}", get(get_share).delete(revoke_share))
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
            ShareError::Crypto(e) => AppError::internal(e),
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

/// A file of a share as its sender sees it.
#[derive(Serialize)]
struct SharedFileView {
    id: Uuid,
    name: String,
    size: u64,
    /// `false` once the file is destroyed.
    available: bool,
    /// Responses that served the file's first byte through this share.
    downloads: u64,
}

#[derive(Serialize)]
struct ShareStatus {
    id: Uuid,
    /// `active`, `expired` or `revoked`.
    state: &'static str,
    created_by: Uuid,
    note: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    revoked_at: Option<OffsetDateTime>,
    recipients: Vec<String>,
    files: Vec<SharedFileView>,
}

/// Senders see their own shares, admins any of their tenant's; anything else is 404.
fn only_by(caller: &Caller) -> Option<Uuid> {
    match caller.role {
        Role::Admin => None,
        Role::Sender => Some(caller.key_id),
    }
}

/// The sender's view of a share: its state, recipients and per-file download counts. The
/// link itself is never shown again (only its hash is kept).
async fn get_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ShareStatus>, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::not_found())?;
    let share = state
        .db
        .share_details(caller.tenant_id, id, only_by(&caller))
        .await?;
    let state_name = if share.revoked_at.is_some() {
        "revoked"
    } else if share.ended_at.is_some() || share.expires_at <= OffsetDateTime::now_utc() {
        "expired"
    } else {
        "active"
    };
    Ok(Json(ShareStatus {
        id: share.id,
        state: state_name,
        created_by: share.created_by,
        note: share.note,
        created_at: share.created_at,
        expires_at: share.expires_at,
        revoked_at: share.revoked_at,
        recipients: share.recipients,
        files: share
            .files
            .into_iter()
            .map(|f| SharedFileView {
                id: f.id,
                name: f.name,
                size: f.size,
                available: f.available,
                downloads: f.downloads,
            })
            .collect(),
    }))
}

/// Revokes a share at once: its links answer 410 from now on. Admins revoke any share of their
/// tenant, senders their own; anything else is 404.
async fn revoke_share(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, AppError> {
    let id = Uuid::parse_str(&id).map_err(|_| AppError::not_found())?;
    let audit = state
        .audit(
            caller.tenant_id,
            EventKind::ShareRevoked,
            Actor::Key(caller.key_id),
            Some(id),
            serde_json::json!({}),
        )
        .map_err(AppError::internal)?;
    state
        .db
        .revoke_share(caller.tenant_id, id, only_by(&caller), &audit)
        .await?;
    tracing::info!(share = %id, tenant = %caller.tenant_id, "share revoked");
    Ok(StatusCode::NO_CONTENT)
}
