//! Tenant admins' endpoints under `/api/v1/admin/`: the tenant's policy. Sender keys get 403.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::error::AppError;
use super::json::ApiJson;
use crate::auth::Caller;
use crate::db::tenants::Role;
use crate::policy::Policy;
use crate::state::AppState;
use crate::tus::max_upload_len;

/// Routes for tenant admins.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/admin/policy", get(get_policy).put(put_policy))
}

/// Refuses callers whose key is not an admin key of their tenant.
fn require_admin(caller: &Caller) -> Result<(), AppError> {
    match caller.role {
        Role::Admin => Ok(()),
        Role::Sender => Err(AppError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this endpoint needs an admin key",
        )),
    }
}

async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Policy>, AppError> {
    require_admin(&caller)?;
    Ok(Json(state.db.policy(caller.tenant_id).await?))
}

async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(policy): ApiJson<Policy>,
) -> Result<Json<Policy>, AppError> {
    require_admin(&caller)?;
    let policy = policy
        .validated(max_upload_len(&state))
        .map_err(|e| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy", e.0))?;
    state.db.set_policy(caller.tenant_id, &policy).await?;
    tracing::info!(tenant = %caller.tenant_id, "policy changed");
    Ok(Json(policy))
}
