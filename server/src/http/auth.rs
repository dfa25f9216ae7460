//! The `Caller` extractor: turns `Authorization: Bearer <api key>` into a tenant and role.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::AppError;
use crate::auth::{Caller, parse_api_key};
use crate::db::DbError;
use crate::state::AppState;

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(AppError::unauthorized)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(AppError::unauthorized)?;
        let presented = parse_api_key(token.trim()).ok_or_else(AppError::unauthorized)?;
        let key = match state.db.api_key_by_selector(presented.selector).await {
            Ok(key) => key,
            Err(DbError::NotFound) => return Err(AppError::unauthorized()),
            Err(other) => return Err(other.into()),
        };
        if !presented.matches(&key.secret_hash) {
            return Err(AppError::unauthorized());
        }
        Ok(Caller {
            tenant_id: key.tenant_id,
            key_id: key.id,
            role: key.role,
        })
    }
}
