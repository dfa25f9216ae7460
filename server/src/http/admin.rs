//! Tenant admins' endpoints under `/api/v1/admin/`: the tenant's policy. Sender keys get 403.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{AppError, ErrorBody};
use super::json::ApiJson;
use crate::auth::Caller;
use crate::db::tenants::Role;
use crate::policy::Policy;
use crate::state::AppState;
use crate::tus::max_upload_len;

/// Routes for tenant admins.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, put_policy))
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

/// The tenant's policy (the defaults until an admin sets one).
#[utoipa::path(
    get,
    path = "/api/v1/admin/policy",
    tag = "admin",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The tenant's policy", body = Policy),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Policy>, AppError> {
    require_admin(&caller)?;
    Ok(Json(state.db.policy(caller.tenant_id).await?))
}

/// Replaces the tenant's policy; the answer is the policy as stored (domains normalised).
#[utoipa::path(
    put,
    path = "/api/v1/admin/policy",
    tag = "admin",
    security(("api_key" = [])),
    request_body = Policy,
    responses(
        (status = 200, description = "The policy as stored", body = Policy),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong API key", body = ErrorBody),
        (status = 403, description = "A sender key: this needs an admin key", body = ErrorBody),
        (status = 413, description = "The body is larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 422, description = "Not a policy (`invalid`), or outside Ferry's limits \
                                      (`invalid_policy`, naming the limit)", body = ErrorBody),
        (status = 503, description = "The database is unavailable; retry", body = ErrorBody),
    )
)]
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
